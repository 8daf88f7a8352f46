package platform

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
)

// QQ's errcodes this package treats specially; QQ documents -1, 40029 and
// 45011 and otherwise uses WeChat's codes.
const (
	qqBusy        = -1
	qqInvalidCode = 40029
	qqCodeUsed    = 40163
	qqMissingCode = 41008
	qqUserBlocked = 40226
	qqRateLimited = 45011
)

// qqSessionKeyBytes is the length of a decoded QQ session_key.
const qqSessionKeyBytes = 16

// qqExchanger is QQ's exchange: WeChat's jscode2session shape at
// api.q.qq.com. A non-zero errcode or a missing openid is a failure, even
// when the rest of the body looks like a success.
type qqExchanger struct{ c *caller }

func (x *qqExchanger) Name() string { return QQ }

type qqResponse struct {
	ErrCode    int    `json:"errcode"`
	ErrMsg     string `json:"errmsg"`
	OpenID     string `json:"openid"`
	SessionKey string `json:"session_key"`
	UnionID    string `json:"unionid"`
}

// Exchange calls GET /sns/jscode2session; extra is ignored.
func (x *qqExchanger) Exchange(ctx context.Context, code string, _ Extra) (*Session, error) {
	const api = "jscode2session"
	if err := x.c.checkCode(api, code); err != nil {
		return nil, err
	}
	req := &request{
		api:    api,
		method: http.MethodGet,
		path:   "/sns/jscode2session",
		query: url.Values{
			"appid":      {x.c.appID},
			"secret":     {x.c.secret},
			"js_code":    {code},
			"grant_type": {"authorization_code"},
		},
		secrets: []string{code},
	}
	return x.c.exchange(ctx, req, func(a answer) (*Session, error) {
		if a.status != http.StatusOK {
			return nil, x.c.errorf(api, ErrBadResponse, "unexpected http status "+strconv.Itoa(a.status), nil)
		}
		var out qqResponse
		if err := json.Unmarshal(a.body, &out); err != nil {
			return nil, x.c.notJSON(api, a.status, err)
		}
		if out.ErrCode != 0 {
			e := x.c.apiError(api, qqKind(out.ErrCode), strconv.Itoa(out.ErrCode), out.ErrMsg, req.secrets)
			e.busy = out.ErrCode == qqBusy
			return nil, e
		}
		if out.OpenID == "" {
			return nil, x.c.errorf(api, ErrBadResponse, "answer has no openid", nil)
		}
		key, err := decodeKey(out.SessionKey, qqSessionKeyBytes)
		if err != nil {
			return nil, x.c.errorf(api, ErrBadResponse, err.Error(), nil)
		}
		return &Session{OpenID: out.OpenID, UnionID: out.UnionID, SessionKey: key}, nil
	})
}

func qqKind(code int) error {
	switch code {
	case qqBusy:
		return ErrUnavailable
	case qqInvalidCode, qqCodeUsed, qqMissingCode:
		return ErrInvalidCode
	case qqUserBlocked:
		return ErrUserBlocked
	case qqRateLimited:
		return ErrRateLimited
	}
	return ErrAPI
}
