package wechatauth

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/wxauth/caddy-wechat-auth/internal/handler"
	"github.com/wxauth/caddy-wechat-auth/internal/websession"
	"github.com/wxauth/caddy-wechat-auth/internal/wechat"
	"github.com/wxauth/caddy-wechat-auth/store"
)

// WebConfig turns the module's users and sessions into cookie sessions
// for browser pages, reached three ways: a mini-program's web-view (a
// one-time ticket), a page opened inside WeChat (Official Account web
// OAuth) and a desktop browser (Open Platform website QR login). Without
// it none of its endpoints or cookies exist.
type WebConfig struct {
	// Prefix of the browser endpoints: <path>/login, /callback, /enter,
	// /ticket and /logout. Default: /wx/web
	Path string `json:"path,omitempty"`

	// Name of the access cookie; the refresh cookie is <cookie>_refresh
	// and the OAuth state cookie <cookie>_state. Default: wechat_auth
	Cookie string `json:"cookie,omitempty"`

	// Domain attribute of the cookies, so that sub-domains share them.
	// Default: none (host-only cookies).
	CookieDomain string `json:"cookie_domain,omitempty"`

	// When cookies get the Secure attribute: "auto" (when the request came
	// over https), "on" or "off". Use "on" behind a proxy that terminates
	// TLS. Default: auto
	CookieSecure string `json:"cookie_secure,omitempty"`

	// The Official Account's AppID, for OAuth inside WeChat. Default: none
	OAAppID string `json:"oa_app_id,omitempty"`

	// The Official Account's AppSecret (required with oa_app_id). Give it
	// as a placeholder ({env.*} or {file.*}). Default: none
	OAAppSecret string `json:"oa_app_secret,omitempty"`

	// Scope asked of the Official Account: snsapi_base (silent; no
	// unionid) or snsapi_userinfo (asks the user; nickname, avatar and
	// unionid). Default: snsapi_base
	OAScope string `json:"oa_scope,omitempty"`

	// The Open Platform website app's AppID, for QR login (snsapi_login)
	// outside WeChat. Default: none
	SiteAppID string `json:"site_app_id,omitempty"`

	// The website app's AppSecret (required with site_app_id). Give it as
	// a placeholder. Default: none
	SiteAppSecret string `json:"site_app_secret,omitempty"`

	// Base URL of WeChat's authorization pages; the code exchange and
	// userinfo use the module's api_base. Default: https://open.weixin.qq.com
	OAuthBase string `json:"oauth_base,omitempty"`

	// The absolute URL WeChat sends the browser back to. Default:
	// {scheme}://{host}<path>/callback of the login request.
	CallbackURL string `json:"callback_url,omitempty"`
}

// Defaults of the web block.
const (
	defaultWebPath   = "/wx/web"
	defaultWebCookie = "wechat_auth"
	defaultOAuthBase = "https://open.weixin.qq.com"
)

// applyDefaults fills in every unset field.
func (w *WebConfig) applyDefaults() {
	if w.Path == "" {
		w.Path = defaultWebPath
	}
	if w.Cookie == "" {
		w.Cookie = defaultWebCookie
	}
	if w.CookieSecure == "" {
		w.CookieSecure = string(websession.SecureAuto)
	}
	if w.OAScope == "" {
		w.OAScope = wechat.ScopeBase
	}
	if w.OAuthBase == "" {
		w.OAuthBase = defaultOAuthBase
	}
}

// validate checks what can be checked without resolving placeholders:
// pairs that go together, and every value that holds no placeholder.
func (w *WebConfig) validate() error {
	if (w.OAAppID == "") != (w.OAAppSecret == "") {
		return errors.New("web: oa_app_id and oa_app_secret go together")
	}
	if (w.SiteAppID == "") != (w.SiteAppSecret == "") {
		return errors.New("web: site_app_id and site_app_secret go together")
	}
	for _, f := range w.fields() {
		if *f.v == "" || strings.Contains(*f.v, "{") {
			continue // unset, or checked once its placeholders are resolved
		}
		if err := checkWebField(f.name, *f.v); err != nil {
			return fmt.Errorf("web: %s: %w", f.name, err)
		}
	}
	return nil
}

type webField struct {
	name string
	v    *string
}

// fields are the block's string fields by subdirective name.
func (w *WebConfig) fields() []webField {
	return []webField{
		{"path", &w.Path}, {"cookie", &w.Cookie}, {"cookie_domain", &w.CookieDomain},
		{"cookie_secure", &w.CookieSecure}, {"oa_app_id", &w.OAAppID}, {"oa_app_secret", &w.OAAppSecret},
		{"oa_scope", &w.OAScope}, {"site_app_id", &w.SiteAppID}, {"site_app_secret", &w.SiteAppSecret},
		{"oauth_base", &w.OAuthBase}, {"callback_url", &w.CallbackURL},
	}
}

// checkWebField checks one resolved value of the web block.
func checkWebField(name, v string) error {
	switch name {
	case "path":
		if !strings.HasPrefix(v, "/") || (len(v) > 1 && strings.HasSuffix(v, "/")) || strings.ContainsAny(v, "?# \t") {
			return fmt.Errorf("want a path such as /wx/web (a leading /, no trailing /), got %q", v)
		}
	case "cookie":
		if !websession.ValidCookieName(v) || len(v) > 64 {
			return fmt.Errorf("not a cookie name: %q", v)
		}
	case "cookie_domain":
		if !websession.ValidCookieDomain(v) {
			return fmt.Errorf("want a domain name such as example.com, got %q", v)
		}
	case "cookie_secure":
		if _, err := websession.ParseSecureMode(v); err != nil {
			return err
		}
	case "oa_scope":
		if v != wechat.ScopeBase && v != wechat.ScopeUserInfo {
			return fmt.Errorf("want %s or %s, got %q", wechat.ScopeBase, wechat.ScopeUserInfo, v)
		}
	case "oa_app_id", "site_app_id":
		if strings.ContainsAny(v, " \t&?#/=") {
			return fmt.Errorf("not an AppID: %q", v)
		}
	case "oauth_base":
		u, err := url.Parse(v)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			return fmt.Errorf("want an absolute http(s) URL without query, got %q", v)
		}
	case "callback_url":
		u, err := url.Parse(v)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Fragment != "" || u.User != nil {
			return fmt.Errorf("want an absolute http(s) URL, got %q", v)
		}
	}
	return nil
}

// provisionWeb resolves the web block and builds the handler's part of it:
// the OAuth clients, the state-cookie key (a secret generated once and
// kept in the store, so every instance seals and opens alike) and the
// ticket store.
func (m *WeChatAuth) provisionWeb(ctx context.Context, repl *caddy.Replacer, st store.Store, sealer *handler.Sealer, appID, apiBase string) (*handler.WebConfig, error) {
	w := *m.Web // the resolved copy; the config keeps its placeholders
	w.applyDefaults()
	for _, f := range w.fields() {
		*f.v = strings.TrimSpace(repl.ReplaceKnown(*f.v, ""))
	}
	if err := w.validate(); err != nil {
		return nil, err
	}
	for _, f := range w.fields() {
		if *f.v == "" {
			continue
		}
		if err := checkWebField(f.name, *f.v); err != nil {
			return nil, fmt.Errorf("web: %s: %w", f.name, err)
		}
	}
	secure, _ := websession.ParseSecureMode(w.CookieSecure)
	key, err := m.db.generatedSecret(ctx, sealer, appID, handler.SecretWebState, m.logger)
	if err != nil {
		return nil, fmt.Errorf("web: loading the state-cookie key: %w", err)
	}
	state, err := websession.NewStateSealer(key)
	if err != nil {
		return nil, fmt.Errorf("web: %w", err)
	}
	cfg := &handler.WebConfig{
		Path:        w.Path,
		Cookies:     websession.Cookies{Name: w.Cookie, Domain: w.CookieDomain, Secure: secure},
		OAuthBase:   strings.TrimRight(w.OAuthBase, "/"),
		CallbackURL: w.CallbackURL,
		State:       state,
		Tickets:     st,
	}
	newClient := func(id, secret, what string) (*wechat.Client, error) {
		c, err := wechat.New(wechat.Config{
			BaseURL:   apiBase,
			AppID:     id,
			AppSecret: secret,
			Timeout:   time.Duration(m.Timeout),
			Logger:    m.logger.Named("wechat").With(zap.String("oauth_app", what)),
			Observe:   observeWeChat,
		})
		if err != nil {
			return nil, fmt.Errorf("web: setting up the %s client: %w", what, err)
		}
		m.webClients = append(m.webClients, c)
		return c, nil
	}
	if w.OAAppID != "" {
		c, err := newClient(w.OAAppID, w.OAAppSecret, "official account")
		if err != nil {
			return nil, err
		}
		cfg.OA = &handler.OAuthApp{AppID: w.OAAppID, Scope: w.OAScope, Client: c}
	}
	if w.SiteAppID != "" {
		c, err := newClient(w.SiteAppID, w.SiteAppSecret, "website")
		if err != nil {
			return nil, err
		}
		cfg.Site = &handler.OAuthApp{AppID: w.SiteAppID, Scope: wechat.ScopeLogin, Client: c}
	}
	return cfg, nil
}
