package handler

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/wxauth/caddy-wechat-auth/internal/token"
	"github.com/wxauth/caddy-wechat-auth/internal/websession"
	"github.com/wxauth/caddy-wechat-auth/internal/wechat"
	"github.com/wxauth/caddy-wechat-auth/store"
)

// Browser sessions: with a WebConfig the handler also serves browser
// pages. The same users and sessions become cookie sessions: the access
// cookie holds an access token, the refresh cookie its refresh token. A
// browser gets them three ways: a mini-program's web-view redeems a ticket
// (<path>/ticket, <path>/enter), a page inside WeChat goes through the
// Official Account's OAuth, a desktop browser through the website app's
// QR login (<path>/login, <path>/callback). <path>/logout ends a cookie
// session.

// Error codes of the browser endpoints and the cookie guard.
const (
	CodeInvalidState = "invalid_state"
	CodeCSRFRejected = "csrf_rejected"
	CodeSnapshotUser = "snapshot_user"
)

// WebStore is the part of store.Store the browser endpoints use.
type WebStore interface {
	CreateTicket(ctx context.Context, app string, t store.Ticket, now time.Time) error
	RedeemTicket(ctx context.Context, app string, hash [32]byte, s store.Session, tok store.RefreshToken, now time.Time) (store.Ticket, store.Session, error)
	UserByOpenID(ctx context.Context, app, openID string) (store.User, error)
}

// OAuthClient is the part of WeChat's web OAuth API the callback uses;
// *wechat.Client implements it.
type OAuthClient interface {
	OAuthExchange(ctx context.Context, code string) (*wechat.OAuthToken, error)
	UserInfo(ctx context.Context, accessToken, openID string) (*wechat.UserInfo, error)
}

// OAuthApp is one WeChat OAuth app: an Official Account (inside WeChat)
// or an Open Platform website app (QR login).
type OAuthApp struct {
	AppID  string
	Scope  string // snsapi_base, snsapi_userinfo or snsapi_login
	Client OAuthClient
}

// WebConfig turns on browser sessions. Path, State and Tickets are
// required; OA and Site are optional (without either, login answers 404
// and an unauthenticated page gets a 401 page instead of a redirect).
type WebConfig struct {
	Path        string // prefix of the endpoints, e.g. /wx/web
	Cookies     websession.Cookies
	OA          *OAuthApp // Official Account: OAuth inside WeChat
	Site        *OAuthApp // website app: QR login outside WeChat
	OAuthBase   string    // base URL of WeChat's authorization pages, without trailing /
	CallbackURL string    // default: {scheme}://{host}<Path>/callback of the login request
	State       *websession.StateSealer
	Tickets     WebStore
}

// web is the handler's browser-session state.
type web struct {
	cfg   WebConfig
	csrf  *http.CrossOriginProtection
	codes loginSharer // OAuth callbacks in flight, by app and code

	loginPath, callbackPath, logoutPath string
}

// newWeb checks cfg and registers the browser endpoints with add.
func (h *Handler) newWeb(cfg *WebConfig, add func(string, func(http.ResponseWriter, *http.Request) *Error) error) error {
	switch {
	case cfg.Path == "" || cfg.Path[0] != '/':
		return fmt.Errorf("handler: web path %q must start with /", cfg.Path)
	case !websession.ValidCookieName(cfg.Cookies.Name):
		return fmt.Errorf("handler: web cookie name %q is not a cookie name", cfg.Cookies.Name)
	case cfg.State == nil:
		return errors.New("handler: web: missing state sealer")
	case cfg.Tickets == nil:
		return errors.New("handler: web: missing ticket store")
	}
	for _, a := range []*OAuthApp{cfg.OA, cfg.Site} {
		if a != nil && (a.AppID == "" || a.Client == nil || a.Scope == "") {
			return errors.New("handler: web: an OAuth app needs an app id, a scope and a client")
		}
	}
	if cfg.Cookies.Secure == "" {
		cfg.Cookies.Secure = websession.SecureAuto
	}
	base := strings.TrimRight(cfg.Path, "/")
	w := &web{
		cfg:          *cfg,
		csrf:         http.NewCrossOriginProtection(),
		codes:        newLoginFlights(),
		loginPath:    base + "/login",
		callbackPath: base + "/callback",
		logoutPath:   base + "/logout",
	}
	h.web = w
	for _, e := range []struct {
		path string
		fn   func(http.ResponseWriter, *http.Request) *Error
	}{
		{base + "/ticket", h.webTicket},
		{base + "/enter", h.webEnter},
		{w.loginPath, h.webLogin},
		{w.callbackPath, h.webCallback},
		{w.logoutPath, h.webLogout},
	} {
		if err := add(e.path, e.fn); err != nil {
			return err
		}
	}
	return nil
}

// hasOAuth reports whether an OAuth app is configured, so a browser can
// be sent to log in.
func (w *web) hasOAuth() bool { return w.cfg.OA != nil || w.cfg.Site != nil }

// setSessionCookies puts a token pair on the answer as the two cookies.
func (h *Handler) setSessionCookies(w http.ResponseWriter, r *http.Request, p tokenPair) {
	c := h.web.cfg.Cookies
	http.SetCookie(w, c.Access(r, p.Token, time.Duration(p.ExpiresIn)*time.Second))
	http.SetCookie(w, c.Refresh(r, p.RefreshToken, time.Duration(p.RefreshExpiresIn)*time.Second))
}

// clearSessionCookies deletes the two session cookies.
func (h *Handler) clearSessionCookies(w http.ResponseWriter, r *http.Request) {
	c := h.web.cfg.Cookies
	http.SetCookie(w, c.Clear(r, c.Name))
	http.SetCookie(w, c.Clear(r, c.RefreshName()))
}

// redirect answers a redirect to a same-origin path (already sanitised)
// or to WeChat, never cached.
func redirect(w http.ResponseWriter, location string, status int) {
	h := w.Header()
	h.Set("Location", location)
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "no-referrer")
	w.WriteHeader(status)
}

// isNavigation reports whether r is a browser loading a page: GET or HEAD
// accepting text/html.
func isNavigation(r *http.Request) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return false
	}
	for _, v := range r.Header.Values("Accept") {
		if strings.Contains(v, "text/html") {
			return true
		}
	}
	return false
}

// wantsJSON reports whether the request asks for a JSON answer.
func wantsJSON(r *http.Request) bool {
	for _, v := range r.Header.Values("Accept") {
		if strings.Contains(v, "application/json") {
			return true
		}
	}
	return false
}

// newSessionRecords builds a new session created at now and its first
// refresh token, with the token's plaintext.
func (h *Handler) newSessionRecords(now time.Time) (store.Session, store.RefreshToken, string, error) {
	sid, err := token.NewID()
	if err != nil {
		return store.Session{}, store.RefreshToken{}, "", err
	}
	jti, err := token.NewID()
	if err != nil {
		return store.Session{}, store.RefreshToken{}, "", err
	}
	refresh, err := token.NewRefreshToken()
	if err != nil {
		return store.Session{}, store.RefreshToken{}, "", err
	}
	sess := store.Session{ID: sid, AppID: h.cfg.AppID, CreatedAt: now, ExpiresAt: now.Add(h.cfg.RefreshTTL)}
	rt := store.RefreshToken{
		Hash:           token.HashRefreshToken(refresh),
		SessionID:      sid,
		IssuedAt:       now,
		ExpiresAt:      sess.ExpiresAt,
		AccessID:       jti,
		AccessIssuedAt: now,
	}
	return sess, rt, refresh, nil
}
