package platform

import (
	"context"

	"github.com/wxauth/caddy-wechat-auth/internal/wechat"
)

// wechatExchanger is WeChat's exchange: jscode2session through the WeChat
// client, which also serves the phone-number API and shares its retry,
// error and metrics rules.
type wechatExchanger struct {
	c interface {
		Code2Session(ctx context.Context, code string) (*wechat.Session, error)
	}
}

// NewWeChat returns the Exchanger of WeChat backed by c.
func NewWeChat(c interface {
	Code2Session(ctx context.Context, code string) (*wechat.Session, error)
}) Exchanger {
	return &wechatExchanger{c: c}
}

func (x *wechatExchanger) Name() string { return WeChat }

// Exchange calls jscode2session; extra is ignored.
func (x *wechatExchanger) Exchange(ctx context.Context, code string, _ Extra) (*Session, error) {
	s, err := x.c.Code2Session(ctx, code)
	if err != nil {
		return nil, err
	}
	return &Session{OpenID: s.OpenID, UnionID: s.UnionID, SessionKey: s.SessionKey}, nil
}
