package platform

import (
	"context"
	"errors"
	"testing"

	"github.com/wxauth/caddy-wechat-auth/internal/wechat"
)

// codeClient is a WeChat client stand-in answering one session or error.
type codeClient struct {
	s   *wechat.Session
	err error
}

func (c codeClient) Code2Session(context.Context, string) (*wechat.Session, error) { return c.s, c.err }

// TestWeChatExchange: WeChat's failure is passed on without a session; its
// success keeps the identity and the session key.
func TestWeChatExchange(t *testing.T) {
	fail := NewWeChat(codeClient{s: &wechat.Session{OpenID: "stale"}, err: wechat.ErrInvalidCode})
	if s, err := fail.Exchange(context.Background(), testCode, Extra{}); s != nil || !errors.Is(err, ErrInvalidCode) {
		t.Fatalf("failed exchange: %+v, %v", s, err)
	}
	ok := NewWeChat(codeClient{s: &wechat.Session{OpenID: "o", UnionID: "u", SessionKey: []byte("0123456789abcdef")}})
	s, err := ok.Exchange(context.Background(), testCode, Extra{})
	if err != nil || s.OpenID != "o" || s.UnionID != "u" || string(s.SessionKey) != "0123456789abcdef" || ok.Name() != WeChat {
		t.Fatalf("exchange: %+v, %v", s, err)
	}
}
