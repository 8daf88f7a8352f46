package handler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/wxauth/caddy-wechat-auth/internal/platform"
	"github.com/wxauth/caddy-wechat-auth/internal/token"
	"github.com/wxauth/caddy-wechat-auth/store"
)

// maxCodeLen bounds a wx.login code (WeChat's are 32 characters).
const maxCodeLen = 256

type loginRequest struct {
	Code   string `json:"code"`
	JSCode string `json:"jscode"`
	// AnonymousCode is Douyin's anonymousCode from tt.login, passed on to
	// its exchange; other platforms ignore it.
	AnonymousCode string `json:"anonymous_code"`
	profileFields
}

// tokenPair is the token part of login and refresh answers.
type tokenPair struct {
	Status           string `json:"status"`
	Token            string `json:"token"`
	TokenType        string `json:"token_type"`
	ExpiresIn        int64  `json:"expires_in"`
	RefreshToken     string `json:"refresh_token"`
	RefreshExpiresIn int64  `json:"refresh_expires_in"`
	UserID           uint64 `json:"user_id"`
}

// login exchanges a wx.login code for a session and a token pair.
func (h *Handler) login(w http.ResponseWriter, r *http.Request) *Error {
	if l := h.cfg.LoginLimit; l != nil && r.Method == http.MethodPost {
		if ok, wait := l.Allow(h.cfg.ClientKey(r), h.now()); !ok {
			e := newError(http.StatusTooManyRequests, CodeRateLimited, "too many login attempts; try again later")
			e.RetryAfter = wait
			return e
		}
	}
	var req loginRequest
	if e := decodePost(w, r, &req, false); e != nil {
		return e
	}
	code := req.Code
	if code == "" {
		code = req.JSCode
	}
	switch {
	case code == "" && h.cfg.Platform == platform.Douyin:
		return badRequest("missing code: the user is not logged in to the Douyin app (tt.login gave only an anonymousCode); log in to the host app, then call tt.login again")
	case code == "":
		return badRequest("missing code (from " + platform.LoginCall(h.cfg.Platform) + ")")
	case len(code) > maxCodeLen || len(req.AnonymousCode) > maxCodeLen:
		return badRequest("code is too long")
	case req.Code != "" && req.JSCode != "" && req.Code != req.JSCode:
		return badRequest("code and jscode differ")
	}
	profile, e := req.profileFields.validate()
	if e != nil {
		return e
	}

	// One code, one login: requests repeating a code while its login runs
	// share that login's answer. The login runs on without the first
	// caller's cancellation, so a client that gives up does not fail the
	// others.
	ctx := context.WithoutCancel(r.Context())
	ans, err := h.logins.do(r.Context(), code, func() loginAnswer {
		body, e := h.loginOnce(ctx, code, platform.Extra{AnonymousCode: req.AnonymousCode}, profile)
		return loginAnswer{body: body, err: e}
	})
	if err != nil {
		// This request gave up waiting for the login it joined.
		return &Error{Status: http.StatusServiceUnavailable, Code: CodeWeChatUnavailable,
			Message: "the login did not finish; try again", RetryAfter: time.Second, Err: err}
	}
	if ans.err != nil {
		return ans.err
	}
	writeJSON(w, http.StatusOK, json.RawMessage(ans.body))
	return nil
}

// loginOnce does the login of code: the exchange at the platform, the user
// and session in one durable write, the token pair. It returns the 200 body.
func (h *Handler) loginOnce(ctx context.Context, code string, extra platform.Extra, profile store.ProfilePatch) ([]byte, *Error) {
	ws, err := h.exchanger.Exchange(ctx, code, extra)
	if err != nil {
		return nil, platformError(err, h.cfg.Platform)
	}
	if ws.OpenID == "" {
		return nil, platformError(fmt.Errorf("%w: empty openid", platform.ErrBadResponse), h.cfg.Platform)
	}

	if e := h.checkLoginNickname(ctx, ws.OpenID, profile); e != nil {
		return nil, e
	}
	nu := store.NewUser{OpenID: ws.OpenID, UnionID: ws.UnionID, LinkByUnionID: h.cfg.LinkUnionID}
	if profile.Nickname != nil {
		nu.Nickname = *profile.Nickname
	}
	if profile.AvatarURL != nil {
		nu.AvatarURL = *profile.AvatarURL
	}
	if profile.Gender != nil {
		nu.Gender = *profile.Gender
	}
	now := h.now()
	sid, err := token.NewID()
	if err != nil {
		return nil, internalError(err)
	}
	jti, err := token.NewID()
	if err != nil {
		return nil, internalError(err)
	}
	refresh, err := token.NewRefreshToken()
	if err != nil {
		return nil, internalError(err)
	}
	sealed, err := h.cfg.Sealer.Seal(h.cfg.AppID, sid, ws.SessionKey)
	if err != nil {
		return nil, internalError(err)
	}
	sess := store.Session{
		ID:               sid,
		AppID:            h.cfg.AppID,
		SealedSessionKey: sealed,
		CreatedAt:        now,
		ExpiresAt:        now.Add(h.cfg.RefreshTTL),
	}
	rt := store.RefreshToken{
		Hash:           token.HashRefreshToken(refresh),
		SessionID:      sid,
		IssuedAt:       now,
		ExpiresAt:      sess.ExpiresAt,
		AccessID:       jti,
		AccessIssuedAt: now,
	}
	// User and session in one durable write, before any token leaves.
	u, sess, created, err := h.cfg.Store.Login(ctx, h.cfg.AppID, nu, sess, rt, now)
	if errors.Is(err, store.ErrBanned) {
		return nil, newError(http.StatusForbidden, CodeUserBanned, "this user is banned")
	}
	if err != nil {
		return nil, internalError(fmt.Errorf("storing login: %w", err))
	}
	pair, e := h.pair(sess, refresh, rt, now)
	if e != nil {
		return nil, e
	}
	if ce := h.log.Check(zap.InfoLevel, "wechat_auth login"); ce != nil {
		ce.Write(zap.Uint64("user_id", u.ID), zap.Bool("new_user", created))
	}
	b, err := json.Marshal(struct {
		tokenPair
		NewUser bool     `json:"new_user"`
		User    userView `json:"user"`
	}{pair, created, viewUser(u)})
	if err != nil {
		return nil, internalError(fmt.Errorf("encoding login answer: %w", err))
	}
	if created {
		h.metrics.Login(LoginOKNew)
	} else {
		h.metrics.Login(LoginOKReturning)
	}
	return b, nil
}

// pair signs the access token described by rt for sess and builds the
// answer with the refresh token's plaintext.
func (h *Handler) pair(sess store.Session, refresh string, rt store.RefreshToken, now time.Time) (tokenPair, *Error) {
	sub := token.Subject{
		UserID:    sess.UserID,
		SessionID: sess.ID,
		OpenID:    sess.OpenID,
		UnionID:   sess.UnionID,
		AppID:     sess.AppID,
		Platform:  h.claim,
	}
	access, exp, err := h.cfg.Tokens.Issue(sub, rt.AccessID, rt.AccessIssuedAt)
	if err != nil {
		return tokenPair{}, internalError(fmt.Errorf("signing access token: %w", err))
	}
	return tokenPair{
		Status:           "success",
		Token:            access,
		TokenType:        "Bearer",
		ExpiresIn:        seconds(exp.Sub(now)),
		RefreshToken:     refresh,
		RefreshExpiresIn: seconds(rt.ExpiresAt.Sub(now)),
		UserID:           sess.UserID,
	}, nil
}

// seconds is d in whole seconds, rounded up: token times are whole
// seconds, so an access token issued now with a 15m TTL says 900.
func seconds(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64((d + time.Second - 1) / time.Second)
}
