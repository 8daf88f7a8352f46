package platform

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
)

// baiduSessionKeyBytes is the length of a decoded Baidu session_key (an
// AES-192 key).
const baiduSessionKeyBytes = 24

// Baidu's numeric error codes of its general open API, which it does not
// document for jscode2sessionkey: 2 "service temporarily unavailable" is
// treated as busy, 4 (request limit), 17 (daily limit) and 18 (QPS limit)
// as its rate limit.
const (
	baiduUnavailable  = 2
	baiduRequestLimit = 4
	baiduDailyLimit   = 17
	baiduQPSLimit     = 18
)

// baiduExchanger is Baidu's exchange: a form POST of code, client_id (the
// AppKey) and sk (the AppSecret) to /oauth/jscode2sessionkey, answered with
// {openid, session_key} or an OAuth 2.0 {error, error_description}.
type baiduExchanger struct{ c *caller }

func (x *baiduExchanger) Name() string { return Baidu }

type baiduResponse struct {
	OpenID     string `json:"openid"`
	SessionKey string `json:"session_key"`
	// OAuth 2.0 errors.
	Error            string `json:"error"`
	ErrorDescription string `json:"error_description"`
	// Errors of Baidu's general open API, under either spelling.
	ErrNo     json.Number `json:"errno"`
	ErrMsg    string      `json:"errmsg"`
	ErrorCode json.Number `json:"error_code"`
	ErrorMsg  string      `json:"error_msg"`
}

// Exchange calls POST /oauth/jscode2sessionkey; extra is ignored.
func (x *baiduExchanger) Exchange(ctx context.Context, code string, _ Extra) (*Session, error) {
	const api = "jscode2sessionkey"
	if err := x.c.checkCode(api, code); err != nil {
		return nil, err
	}
	req := &request{
		api:     api,
		method:  http.MethodPost,
		path:    "/oauth/jscode2sessionkey",
		form:    url.Values{"code": {code}, "client_id": {x.c.appID}, "sk": {x.c.secret}},
		secrets: []string{code},
	}
	return x.c.exchange(ctx, req, func(a answer) (*Session, error) {
		var out baiduResponse
		dec := json.NewDecoder(bytes.NewReader(a.body))
		dec.UseNumber()
		if err := dec.Decode(&out); err != nil {
			return nil, x.c.notJSON(api, a.status, err)
		}
		if out.Error != "" {
			e := x.c.apiError(api, baiduOAuthKind(out.Error), out.Error, out.ErrorDescription, req.secrets)
			e.busy = out.Error == "temporarily_unavailable" || out.Error == "server_error"
			return nil, e
		}
		for _, n := range []struct {
			num json.Number
			msg string
		}{{out.ErrNo, out.ErrMsg}, {out.ErrorCode, out.ErrorMsg}} {
			if n.num == "" || n.num == "0" {
				continue
			}
			v, _ := strconv.Atoi(n.num.String())
			kind := ErrAPI
			switch v {
			case baiduUnavailable:
				kind = ErrUnavailable
			case baiduRequestLimit, baiduDailyLimit, baiduQPSLimit:
				kind = ErrRateLimited
			}
			e := x.c.apiError(api, kind, n.num.String(), n.msg, req.secrets)
			e.busy = v == baiduUnavailable
			return nil, e
		}
		if a.status != http.StatusOK {
			return nil, x.c.errorf(api, ErrBadResponse, "unexpected http status "+strconv.Itoa(a.status), nil)
		}
		if out.OpenID == "" {
			return nil, x.c.errorf(api, ErrBadResponse, "answer has no openid", nil)
		}
		key, err := decodeKey(out.SessionKey, baiduSessionKeyBytes)
		if err != nil {
			return nil, x.c.errorf(api, ErrBadResponse, err.Error(), nil)
		}
		return &Session{OpenID: out.OpenID, SessionKey: key}, nil
	})
}

// baiduOAuthKind maps an OAuth 2.0 error: invalid_grant is a bad, used or
// expired code; temporarily_unavailable and server_error mean busy;
// everything else (invalid_client: a wrong AppKey or AppSecret, …) is an
// API error.
func baiduOAuthKind(e string) error {
	switch e {
	case "invalid_grant":
		return ErrInvalidCode
	case "temporarily_unavailable", "server_error":
		return ErrUnavailable
	}
	return ErrAPI
}
