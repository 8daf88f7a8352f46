package handler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"go.uber.org/zap"

	"github.com/wxauth/caddy-wechat-auth/internal/websession"
	"github.com/wxauth/caddy-wechat-auth/internal/wechat"
	"github.com/wxauth/caddy-wechat-auth/store"
)

// webLogin answers GET <path>/login?next=…: it seals a new state into the
// state cookie and sends the browser to WeChat's authorization page:
// the Official Account's inside WeChat (or when there is no website app),
// the website app's QR login page otherwise.
func (h *Handler) webLogin(w http.ResponseWriter, r *http.Request) *Error {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return methodNotAllowed("GET, HEAD")
	}
	cfg := &h.web.cfg
	app, endpoint := cfg.Site, "/connect/qrconnect"
	if cfg.OA != nil && (cfg.Site == nil || strings.Contains(r.Header.Get("User-Agent"), "MicroMessenger")) {
		app, endpoint = cfg.OA, "/connect/oauth2/authorize"
	}
	if app == nil {
		return h.webFail(w, r, newError(http.StatusNotFound, CodeInvalidRequest, "no WeChat login is configured for this site"),
			"No WeChat login here", "This site has no WeChat login configured.")
	}
	nonce, err := websession.NewNonce()
	if err != nil {
		return h.webFail(w, r, internalError(err), "", "")
	}
	now := h.now()
	sealed, err := cfg.State.Seal(websession.State{
		Nonce:   nonce,
		Next:    websession.SanitizeNext(r.URL.Query().Get("next")),
		App:     app.AppID,
		Expires: now.Add(websession.MaxStateAge),
	})
	if err != nil {
		return h.webFail(w, r, internalError(err), "", "")
	}
	// WeChat checks the parameters in this order, so the query is built
	// by hand rather than by url.Values (which sorts).
	var b strings.Builder
	b.WriteString(cfg.OAuthBase)
	b.WriteString(endpoint)
	b.WriteString("?appid=")
	b.WriteString(url.QueryEscape(app.AppID))
	b.WriteString("&redirect_uri=")
	b.WriteString(url.QueryEscape(h.callbackURL(r)))
	b.WriteString("&response_type=code&scope=")
	b.WriteString(url.QueryEscape(app.Scope))
	b.WriteString("&state=")
	b.WriteString(nonce)
	b.WriteString("#wechat_redirect")
	http.SetCookie(w, cfg.Cookies.State(r, sealed, websession.MaxStateAge))
	redirect(w, b.String(), http.StatusFound)
	return nil
}

// callbackURL is where WeChat sends the browser back: the configured URL,
// else <path>/callback on the request's own scheme and host.
func (h *Handler) callbackURL(r *http.Request) string {
	if u := h.web.cfg.CallbackURL; u != "" {
		return u
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host + h.web.callbackPath
}

// webTokens is the outcome of one OAuth login, shared by every request
// carrying its code (see loginFlights).
type webTokens struct {
	Pair tokenPair `json:"pair"`
}

// webCallback answers GET <path>/callback?code=…&state=…. The state must
// equal the nonce of a valid state cookie (else 400 invalid_state and
// nothing is set); without a code (the user refused) the browser goes back
// to next with no session; otherwise the code is exchanged once, the user
// found or created, a session made, its cookies set, the state cookie
// cleared, and the browser sent to next.
func (h *Handler) webCallback(w http.ResponseWriter, r *http.Request) *Error {
	if r.Method != http.MethodGet {
		return methodNotAllowed("GET")
	}
	cfg := &h.web.cfg
	q := r.URL.Query()
	badState := func(cause error) *Error {
		e := &Error{Status: http.StatusBadRequest, Code: CodeInvalidState, Err: cause,
			Message: "the login could not be verified (it may have expired, or been started in another browser); start again"}
		return h.webFail(w, r, e, "Please log in again", e.Message)
	}
	ck, err := r.Cookie(cfg.Cookies.StateName())
	if err != nil {
		return badState(errors.New("no state cookie"))
	}
	st, err := cfg.State.Open(ck.Value, h.now())
	if err != nil {
		return badState(err)
	}
	if !websession.StateMatches(st.Nonce, q.Get("state")) {
		return badState(errors.New("state parameter does not match the state cookie"))
	}
	var app *OAuthApp
	for _, a := range []*OAuthApp{cfg.OA, cfg.Site} {
		if a != nil && a.AppID == st.App {
			app = a
		}
	}
	if app == nil {
		return badState(errors.New("the state names an OAuth app that is no longer configured"))
	}
	// From here on the state is spent, whatever the outcome.
	http.SetCookie(w, cfg.Cookies.Clear(r, cfg.Cookies.StateName()))
	next := websession.SanitizeNext(st.Next)
	code := q.Get("code")
	if code == "" {
		// The user said no: back to where they were, without a session.
		redirect(w, next, http.StatusFound)
		return nil
	}
	if len(code) > maxCodeLen {
		return h.webFail(w, r, badCodeError(), "", "")
	}
	if l := h.cfg.LoginLimit; l != nil {
		// Web logins count against the same per-client limit as
		// mini-program logins, before WeChat is asked.
		if ok, wait := l.Allow(h.cfg.ClientKey(r), h.now()); !ok {
			e := newError(http.StatusTooManyRequests, CodeRateLimited, "too many login attempts; try again later")
			e.RetryAfter = wait
			h.metrics.Login(e.Code)
			return h.webFail(w, r, e, "Too many login attempts", "Too many login attempts from here. Wait a little, then try again.")
		}
	}
	ctx := context.WithoutCancel(r.Context())
	ans, err := h.web.codes.do(r.Context(), app.AppID+"\x00"+code, func() loginAnswer {
		body, e := h.oauthLoginOnce(ctx, app, code)
		return loginAnswer{body: body, err: e}
	})
	if err != nil {
		return h.webFail(w, r, &Error{Status: http.StatusServiceUnavailable, Code: CodeWeChatUnavailable,
			Message: "the login did not finish; try again", RetryAfter: time.Second, Err: err}, "", "")
	}
	if ans.err != nil {
		h.metrics.Login(ans.err.Code)
		title, text := "", ""
		switch ans.err.Code {
		case CodeSnapshotUser:
			title, text = "Open this page in WeChat", "This page was opened in a preview. Open it in WeChat to log in."
		case CodeInvalidCode:
			title = "Please log in again"
		}
		return h.webFail(w, r, ans.err, title, text)
	}
	var out webTokens
	if err := json.Unmarshal(ans.body, &out); err != nil {
		return h.webFail(w, r, internalError(fmt.Errorf("decoding shared login: %w", err)), "", "")
	}
	h.setSessionCookies(w, r, out.Pair)
	redirect(w, next, http.StatusFound)
	return nil
}

func badCodeError() *Error {
	return newError(http.StatusBadRequest, CodeInvalidCode, "the login code is invalid, expired or already used; log in again")
}

// oauthLoginOnce does the login of one OAuth code: the exchange, userinfo
// for a new user with a profile scope, the user (the holder of this
// openid; else the holder of the unionid WeChat gave; else a new user)
// and a new session in one durable write. It returns the shared answer.
func (h *Handler) oauthLoginOnce(ctx context.Context, app *OAuthApp, code string) ([]byte, *Error) {
	tok, err := app.Client.OAuthExchange(ctx, code)
	if err != nil {
		e := wechatError(err)
		if e.Code == CodeInvalidCode {
			e.Message = badCodeError().Message
		}
		return nil, e
	}
	if tok.SnapshotUser {
		return nil, newError(http.StatusForbidden, CodeSnapshotUser, "this page was opened in a preview; open it in WeChat to log in")
	}
	nu := store.NewUser{OpenID: tok.OpenID, UnionID: tok.UnionID, LinkByUnionID: true}
	if app.Scope != wechat.ScopeBase {
		h.fillProfile(ctx, app, tok, &nu)
	}
	now := h.now()
	sess, rt, refresh, err := h.newSessionRecords(now)
	if err != nil {
		return nil, internalError(err)
	}
	u, stored, created, err := h.cfg.Store.Login(ctx, h.cfg.AppID, nu, sess, rt, now)
	if errors.Is(err, store.ErrBanned) {
		return nil, newError(http.StatusForbidden, CodeUserBanned, "this user is banned")
	}
	if err != nil {
		return nil, internalError(fmt.Errorf("storing web login: %w", err))
	}
	pair, e := h.pair(stored, refresh, rt, now)
	if e != nil {
		return nil, e
	}
	b, err := json.Marshal(webTokens{Pair: pair})
	if err != nil {
		return nil, internalError(err)
	}
	if created {
		h.metrics.Login(LoginOKNew)
	} else {
		h.metrics.Login(LoginOKReturning)
	}
	if ce := h.log.Check(zap.InfoLevel, "wechat_auth web login"); ce != nil {
		ce.Write(zap.Uint64("user_id", u.ID), zap.Bool("new_user", created), zap.String("oauth_app", app.AppID))
	}
	return b, nil
}

// fillProfile asks userinfo for the nickname, avatar and gender of a user
// that does not exist yet (a profile is taken only on creation). A
// failure costs only the profile: the login goes on without it.
func (h *Handler) fillProfile(ctx context.Context, app *OAuthApp, tok *wechat.OAuthToken, nu *store.NewUser) {
	if _, err := h.web.cfg.Tickets.UserByOpenID(ctx, h.cfg.AppID, tok.OpenID); !errors.Is(err, store.ErrNotFound) {
		return // known already (or the store is failing: the login will say so)
	}
	info, err := app.Client.UserInfo(ctx, tok.AccessToken, tok.OpenID)
	if err != nil {
		if ce := h.log.Check(zap.WarnLevel, "wechat_auth web login without profile: userinfo failed"); ce != nil {
			ce.Write(zap.Error(err))
		}
		return
	}
	if nu.UnionID == "" {
		nu.UnionID = info.UnionID
	}
	if n := cleanNickname(info.Nickname); n != "" {
		nu.Nickname = n
	}
	if u, err := url.Parse(info.HeadImgURL); err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != "" && len(info.HeadImgURL) <= 2048 {
		nu.AvatarURL = info.HeadImgURL
	}
	nu.Gender = info.Gender
}

// cleanNickname keeps a WeChat nickname within the profile rules (at most
// 64 characters, no control characters), or returns "".
func cleanNickname(s string) string {
	if !utf8.ValidString(s) {
		return ""
	}
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return -1
		}
		return r
	}, strings.TrimSpace(s))
	if utf8.RuneCountInString(s) > 64 {
		r := []rune(s)
		s = string(r[:64])
	}
	return s
}
