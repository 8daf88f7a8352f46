package wechatauth

import (
	"cmp"
	"net/http"

	"github.com/caddyserver/caddy/v2"
	"github.com/wxauth/caddy-wechat-auth/internal/platform"
	"github.com/wxauth/caddy-wechat-auth/internal/token"
)

// setPlaceholders provides the {http.auth.user.*} placeholders of a
// verified request (c) or an anonymous one (nil); Caddy's access log shows
// http.auth.user.id as user_id. One provider answers all seven, which costs
// less per request than seven replacer Sets.
func setPlaceholders(r *http.Request, c *token.Claims) {
	repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	if !ok {
		return
	}
	if c == nil {
		repl.Map(anonymousPlaceholders)
		return
	}
	repl.Map(func(key string) (any, bool) {
		switch key {
		case "http.auth.user.id":
			return c.Subject, true
		case "http.auth.user.openid":
			return c.OpenID, true
		case "http.auth.user.unionid":
			return c.UnionID, true
		case "http.auth.user.appid":
			return c.AppID, true
		case "http.auth.user.sid":
			return c.SessionID, true
		case "http.auth.user.platform":
			return cmp.Or(c.Platform, platform.WeChat), true
		}
		return nil, false
	})
}

// anonymousPlaceholders answers the {http.auth.user.*} placeholders of an
// anonymous request (optional mode): known, and empty.
func anonymousPlaceholders(key string) (any, bool) {
	switch key {
	case "http.auth.user.id", "http.auth.user.openid", "http.auth.user.unionid",
		"http.auth.user.appid", "http.auth.user.sid", "http.auth.user.platform":
		return "", true
	}
	return nil, false
}
