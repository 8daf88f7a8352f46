package wechat

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
)

// PhoneInfo is the phone number WeChat returns for a getPhoneNumber code.
type PhoneInfo struct {
	// PhoneNumber is the number as the user entered it, with the country
	// code for numbers outside mainland China ("+1 202..." style).
	PhoneNumber string
	// PurePhoneNumber is the number without the country code.
	PurePhoneNumber string
	// CountryCode is the country calling code without "+", e.g. "86".
	CountryCode string
	// WatermarkAppID is the appid in WeChat's watermark; PhoneNumber has
	// checked that it equals the client's AppID.
	WatermarkAppID string
	// WatermarkTimestamp is the Unix time in the watermark.
	WatermarkTimestamp int64
}

// phoneRequest is the body of getuserphonenumber.
type phoneRequest struct {
	Code string `json:"code"`
}

// phoneResponse is WeChat's answer to getuserphonenumber.
type phoneResponse struct {
	apiStatus
	PhoneInfo *struct {
		PhoneNumber     string     `json:"phoneNumber"`
		PurePhoneNumber string     `json:"purePhoneNumber"`
		CountryCode     flexString `json:"countryCode"`
		Watermark       struct {
			Timestamp int64  `json:"timestamp"`
			AppID     string `json:"appid"`
		} `json:"watermark"`
	} `json:"phone_info"`
}

// PhoneNumber exchanges the code from the mini-program's getPhoneNumber
// button at /wxa/business/getuserphonenumber. It uses AccessToken and,
// when WeChat rejects the token (40001, 40014, 42001), forces one refresh
// and retries once. A watermark.appid other than the client's AppID is
// ErrWatermark and nothing is returned. Other errors are as for
// Code2Session; an empty code is refused locally with ErrInvalidCode.
func (c *Client) PhoneNumber(ctx context.Context, code string) (*PhoneInfo, error) {
	const api = "getuserphonenumber"
	if code == "" {
		return nil, fmt.Errorf("wechat %s: empty code: %w", api, ErrInvalidCode)
	}
	if len(code) > maxCodeBytes {
		return nil, fmt.Errorf("wechat %s: code longer than %d bytes: %w", api, maxCodeBytes, ErrInvalidCode)
	}
	var out *phoneResponse
	err := c.withAccessToken(ctx, func(tok string) error {
		var err error
		out, err = call[phoneResponse](ctx, c, &request{
			api:     api,
			method:  http.MethodPost,
			path:    "/wxa/business/getuserphonenumber",
			query:   url.Values{"access_token": {tok}},
			body:    phoneRequest{Code: code},
			secrets: []string{code, tok},
		})
		return err
	})
	if err != nil {
		return nil, err
	}
	pi := out.PhoneInfo
	if pi == nil || pi.PhoneNumber == "" {
		return nil, c.fail(api, &httpError{api: api, kind: ErrBadResponse, detail: "answer has no phone_info.phoneNumber"})
	}
	if pi.Watermark.AppID != c.appID {
		return nil, c.fail(api, fmt.Errorf("wechat %s: watermark appid is not this app's: %w", api, ErrWatermark))
	}
	return &PhoneInfo{
		PhoneNumber:        pi.PhoneNumber,
		PurePhoneNumber:    pi.PurePhoneNumber,
		CountryCode:        string(pi.CountryCode),
		WatermarkAppID:     pi.Watermark.AppID,
		WatermarkTimestamp: pi.Watermark.Timestamp,
	}, nil
}

// flexString decodes a JSON string or number as a string. WeChat documents
// countryCode as a string, but a number must not make a valid answer fail.
type flexString string

// UnmarshalJSON implements json.Unmarshaler.
func (f *flexString) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if bytes.Equal(b, []byte("null")) {
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*f = flexString(s)
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return err
	}
	*f = flexString(n.String())
	return nil
}
