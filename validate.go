package wechatauth

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/wxauth/caddy-wechat-auth/internal/handler"
)

// checkRefreshTTL requires refresh_ttl to be at least access_ttl + leeway
// (unset fields count with their defaults): a session is pruned once its
// refresh token expires, and its logout or ban must be kept in the store
// for as long as an access token of it still verifies.
func (m *WeChatAuth) checkRefreshTTL() error {
	access, refresh := time.Duration(m.AccessTTL), time.Duration(m.RefreshTTL)
	if access == 0 {
		access = handler.DefaultAccessTTL
	}
	if refresh == 0 {
		refresh = handler.DefaultRefreshTTL
	}
	leeway := handler.DefaultLeeway
	if m.Leeway != nil {
		leeway = time.Duration(*m.Leeway)
	}
	if refresh < access+leeway {
		return fmt.Errorf("refresh_ttl: must be at least access_ttl + leeway (%s + %s = %s), got %s: "+
			"a session ends when its refresh token expires, and its access tokens must not outlive it",
			access, leeway, access+leeway, refresh)
	}
	return nil
}

// checkField checks one resolved string value of the configuration.
func checkField(name, v string) error {
	switch {
	case strings.HasSuffix(name, "_path"):
		if !strings.HasPrefix(v, "/") {
			return fmt.Errorf("must start with /, got %q", v)
		}
		if name == "avatar_path" && strings.HasSuffix(v, "/") {
			// Avatars are served below it: "/" would take every path.
			return fmt.Errorf("must not end in / (avatars are served below it), got %q", v)
		}
	case name == "signing_key":
		if len(v) < handler.MinSecretLen {
			return fmt.Errorf("an HS256 key must be at least %d bytes, got %d", handler.MinSecretLen, len(v))
		}
	case name == "api_base":
		return checkAPIBase(v)
	case name == "header_prefix":
		if v == "" || strings.ContainsAny(v, " \t:{}") {
			return fmt.Errorf("not a header name prefix: %q", v)
		}
	}
	return nil
}

// checkAPIBase requires an absolute http(s) URL.
func checkAPIBase(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("want an absolute http(s) URL, got %q", s)
	}
	return nil
}
