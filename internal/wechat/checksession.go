package wechat

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
)

// CheckSession asks /wxa/checksession whether sessionKey (the decoded,
// 16-byte key from Code2Session) is still the user's current session key.
// It returns nil when it is, and an error matching ErrSessionKeyInvalid
// when WeChat answers 87009 (or when sessionKey is not 16 bytes). The
// signature sent is SessionSignature(sessionKey, nil), WeChat's login-state
// signature for a GET request; the key itself is never sent. Access-token
// handling and other errors are as for PhoneNumber.
func (c *Client) CheckSession(ctx context.Context, openID string, sessionKey []byte) error {
	const api = "checksession"
	if openID == "" {
		return fmt.Errorf("wechat %s: openid is empty", api)
	}
	if len(sessionKey) != sessionKeyBytes {
		return fmt.Errorf("wechat %s: session key is %d bytes, want %d: %w", api, len(sessionKey), sessionKeyBytes, ErrSessionKeyInvalid)
	}
	sig := SessionSignature(sessionKey, nil)
	return c.withAccessToken(ctx, func(tok string) error {
		_, err := call[apiStatus](ctx, c, &request{
			api:    api,
			method: http.MethodGet,
			path:   "/wxa/checksession",
			query: url.Values{
				"access_token": {tok},
				"signature":    {sig},
				"openid":       {openID},
				"sig_method":   {"hmac_sha256"},
			},
			secrets: []string{tok, sig},
		})
		return err
	})
}

// SessionSignature returns WeChat's user login-state signature of payload
// (the POST body; nil or empty for a GET request): lower-case hex of
// HMAC-SHA256 over payload, keyed by the session key as WeChat hands it
// out, that is the standard base64 string of the 16 key bytes. This keying
// reproduces WeChat's published example (session_key
// "o0q0otL8aEzpcZL/FT9WsQ==", payload {"foo":"bar"} → 654571f7…aa0b).
func SessionSignature(sessionKey, payload []byte) string {
	mac := hmac.New(sha256.New, []byte(base64.StdEncoding.EncodeToString(sessionKey)))
	mac.Write(payload)
	return hex.EncodeToString(mac.Sum(nil))
}
