package platform

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
)

// Douyin's err_no values this package treats specially. Its v2
// jscode2session documents err_no/err_tips without listing the values; the
// values below are those of its documented v1 jscode2session (-1 system
// error, 40018 bad code, 40019 bad anonymous_code). Every other non-zero
// err_no is a plain API error.
const (
	douyinBusy             = -1
	douyinBadCode          = 40018
	douyinBadAnonymousCode = 40019
)

// douyinSessionKeyBytes is the length of a decoded Douyin session_key.
const douyinSessionKeyBytes = 16

// douyinExchanger is Douyin's (ByteDance's) exchange: POST JSON to
// /api/apps/v2/jscode2session, answered with err_no/err_tips and a data
// object.
type douyinExchanger struct{ c *caller }

func (x *douyinExchanger) Name() string { return Douyin }

type douyinRequest struct {
	AppID         string `json:"appid"`
	Secret        string `json:"secret"`
	Code          string `json:"code"`
	AnonymousCode string `json:"anonymous_code,omitempty"`
}

type douyinResponse struct {
	ErrNo   *int64 `json:"err_no"`
	ErrTips string `json:"err_tips"`
	Data    struct {
		SessionKey      string `json:"session_key"`
		OpenID          string `json:"openid"`
		AnonymousOpenID string `json:"anonymous_openid"`
		UnionID         string `json:"unionid"`
	} `json:"data"`
}

// Exchange calls POST /api/apps/v2/jscode2session with the code and, when
// given, extra.AnonymousCode. A login needs the code: without it (the user
// is not logged in to the host app) the error matches ErrNoCode.
func (x *douyinExchanger) Exchange(ctx context.Context, code string, extra Extra) (*Session, error) {
	const api = "jscode2session"
	if err := x.c.checkCode(api, code); err != nil {
		return nil, err
	}
	if len(extra.AnonymousCode) > maxCodeBytes {
		return nil, x.c.errorf(api, ErrInvalidCode, "anonymous_code too long", nil)
	}
	req := &request{
		api:     api,
		method:  http.MethodPost,
		path:    "/api/apps/v2/jscode2session",
		json:    douyinRequest{AppID: x.c.appID, Secret: x.c.secret, Code: code, AnonymousCode: extra.AnonymousCode},
		secrets: []string{code, extra.AnonymousCode},
	}
	return x.c.exchange(ctx, req, func(a answer) (*Session, error) {
		if a.status != http.StatusOK {
			return nil, x.c.errorf(api, ErrBadResponse, "unexpected http status "+strconv.Itoa(a.status), nil)
		}
		var out douyinResponse
		if err := json.Unmarshal(a.body, &out); err != nil {
			return nil, x.c.notJSON(api, a.status, err)
		}
		if out.ErrNo == nil {
			return nil, x.c.errorf(api, ErrBadResponse, "answer has no err_no", nil)
		}
		if n := *out.ErrNo; n != 0 {
			e := x.c.apiError(api, douyinKind(n), strconv.FormatInt(n, 10), out.ErrTips, req.secrets)
			e.busy = n == douyinBusy
			return nil, e
		}
		if out.Data.OpenID == "" {
			return nil, x.c.errorf(api, ErrBadResponse, "answer has no openid", nil)
		}
		key, err := decodeKey(out.Data.SessionKey, douyinSessionKeyBytes)
		if err != nil {
			return nil, x.c.errorf(api, ErrBadResponse, err.Error(), nil)
		}
		return &Session{OpenID: out.Data.OpenID, UnionID: out.Data.UnionID, SessionKey: key}, nil
	})
}

func douyinKind(n int64) error {
	switch n {
	case douyinBusy:
		return ErrUnavailable
	case douyinBadCode, douyinBadAnonymousCode:
		return ErrInvalidCode
	}
	return ErrAPI
}
