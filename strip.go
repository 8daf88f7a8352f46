package wechatauth

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/wxauth/caddy-wechat-auth/internal/handler"
	"github.com/wxauth/caddy-wechat-auth/internal/websession"
)

func init() {
	caddy.RegisterModule(Strip{})
}

// Strip removes identity headers a client sent from every request it sees,
// so that no request of the site reaches an upstream with a forged
// X-WeChat-User-ID, including requests the wechat_auth handler's matcher
// does not send to the guard. A header is removed when its name,
// lower-cased with '_' and '.' read as '-' (as CGI-style backends such as
// PHP read them), starts with the prefix: X-WeChat-User-ID,
// X_WeChat_User_ID and X.WeChat.User.ID all go.
//
// The wechat_auth Caddyfile directive adds one ahead of its route, with no
// matcher. In JSON, put it first in the site's routes (no matcher), once
// for every header_prefix the site's wechat_auth handlers use:
//
//	{"handler": "wechat_auth_strip", "header_prefix": "X-WeChat-"}
//
// With "cookie" set (the directive does so for a block with a web block),
// the module's session cookies are taken off as well and handed to the
// wechat_auth handler of that cookie name, so the upstream never sees them
// on a request outside the handler's matcher either.
//
// Headers a wechat_auth handler set earlier in the same request stay: that
// handler removed the client's headers with its prefix before setting its
// own, so what carries its prefix afterwards came from the site's
// configuration, never from the client.
type Strip struct {
	// Prefix of the identity headers to remove; the header_prefix of the
	// wechat_auth handlers it stands in front of. Placeholders such as
	// {env.*} are resolved at provision. Default: X-WeChat-
	HeaderPrefix string `json:"header_prefix,omitempty"`

	// The cookie name of a wechat_auth handler's web block (its access
	// cookie; the refresh and state cookies are <cookie>_refresh and
	// <cookie>_state). When set, those three cookies are taken off every
	// request too, so no upstream sees a session's tokens, and handed back
	// to the wechat_auth handler of that cookie name if one serves the
	// request later. Placeholders are resolved at provision. Default: none
	// (cookies are left alone).
	Cookie string `json:"cookie,omitempty"`

	prefix  string // folded: lower-case, '_' and '.' as '-'
	cookies websession.Cookies
}

// CaddyModule returns the Caddy module information.
func (Strip) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.wechat_auth_strip",
		New: func() caddy.Module { return new(Strip) },
	}
}

// Provision resolves the prefix.
func (s *Strip) Provision(caddy.Context) error {
	p := s.HeaderPrefix
	if p == "" {
		p = handler.DefaultHeaderPrefix
	}
	p = caddy.NewReplacer().ReplaceKnown(p, "")
	if err := checkField("header_prefix", p); err != nil {
		return fmt.Errorf("header_prefix: %w", err)
	}
	s.prefix = handler.FoldHeaderPrefix(p)
	if s.Cookie != "" {
		name := caddy.NewReplacer().ReplaceKnown(s.Cookie, "")
		if !websession.ValidCookieName(name) {
			return fmt.Errorf("cookie: not a cookie name: %q", name)
		}
		s.cookies = websession.Cookies{Name: name}
	}
	return nil
}

// Validate checks the prefix when it has no placeholders.
func (s *Strip) Validate() error {
	if s.Cookie != "" && !strings.Contains(s.Cookie, "{") && !websession.ValidCookieName(s.Cookie) {
		return fmt.Errorf("cookie: not a cookie name: %q", s.Cookie)
	}
	if s.HeaderPrefix == "" || strings.Contains(s.HeaderPrefix, "{") {
		return nil
	}
	if err := checkField("header_prefix", s.HeaderPrefix); err != nil {
		return fmt.Errorf("header_prefix: %w", err)
	}
	return nil
}

// ServeHTTP removes the identity headers and trailers and calls next.
func (s *Strip) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	stripIdentityHeaders(r, s.prefix)
	handler.StripTrailers(r, s.prefix)
	if s.cookies.Name != "" {
		stashCookies(r, s.cookies)
	}
	return next.ServeHTTP(w, r)
}

// cookieStashPrefix starts the name of the request variable in which a
// strip step keeps the web cookies it took off a request; the rest of the
// name is the access cookie's name.
const cookieStashPrefix = "wechat_auth.cookies:"

// stashCookies takes c's cookies off r and keeps them in a request
// variable (which a client cannot set) for the wechat_auth handler of that
// cookie name.
func stashCookies(r *http.Request, c websession.Cookies) {
	ours := c.Cut(r.Header)
	if ours == "" {
		return
	}
	key := cookieStashPrefix + c.Name
	if prev, _ := caddyhttp.GetVar(r.Context(), key).(string); prev != "" {
		ours = prev + "; " + ours
	}
	caddyhttp.SetVar(r.Context(), key, ours)
}

// unstashCookies gives a wechat_auth handler back the web cookies a strip
// step took off r, as a Cookie header, and forgets them.
func unstashCookies(r *http.Request, key string) {
	if v, _ := caddyhttp.GetVar(r.Context(), key).(string); v != "" {
		r.Header.Add("Cookie", v)
		caddyhttp.SetVar(r.Context(), key, nil)
	}
}

// guardMarkPrefix starts the name of the request variable a wechat_auth
// handler sets when it serves a request; the rest of the name is its
// folded header prefix.
const guardMarkPrefix = "wechat_auth.stripped:"

// guardMark is the request variable a wechat_auth handler with the folded
// header prefix sets.
func guardMark(folded string) string { return guardMarkPrefix + folded }

// stripIdentityHeaders removes from r every header with the folded prefix
// unless it also carries the prefix of a wechat_auth handler that already
// served r (which removed the client's such headers first).
func stripIdentityHeaders(r *http.Request, folded string) {
	var vars map[string]any
	for k := range r.Header {
		if !handler.HasHeaderPrefix(k, folded) {
			continue
		}
		if vars == nil {
			vars, _ = r.Context().Value(caddyhttp.VarsCtxKey).(map[string]any)
		}
		if !setByGuard(vars, k) {
			delete(r.Header, k)
		}
	}
}

// setByGuard reports whether name carries the prefix of a wechat_auth
// handler recorded in vars as having served the request.
func setByGuard(vars map[string]any, name string) bool {
	for key := range vars {
		if g, ok := strings.CutPrefix(key, guardMarkPrefix); ok && handler.HasHeaderPrefix(name, g) {
			return true
		}
	}
	return false
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Strip)(nil)
	_ caddy.Validator             = (*Strip)(nil)
	_ caddyhttp.MiddlewareHandler = (*Strip)(nil)
)
