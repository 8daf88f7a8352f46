package handler

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/wxauth/caddy-wechat-auth/internal/token"
	"github.com/wxauth/caddy-wechat-auth/internal/websession"
	"github.com/wxauth/caddy-wechat-auth/store"
)

// webLogout answers POST <path>/logout: the cookie session ends (its
// access tokens are refused at once, its refresh token is invalid_grant),
// both cookies are cleared, and the browser goes to next (303), or gets
// 200 JSON when it asks for JSON. A browser without a live session gets
// the same answer: logging out is idempotent. A cross-origin request is
// refused (403 csrf_rejected) and ends nothing.
func (h *Handler) webLogout(w http.ResponseWriter, r *http.Request) *Error {
	if r.Method != http.MethodPost {
		return methodNotAllowed("POST")
	}
	if err := h.web.csrf.Check(r); err != nil {
		return csrfError(err)
	}
	access, refresh := h.web.cfg.Cookies.Take(r.Header)
	ctx := r.Context()
	now := h.now()
	var sid string
	if access != "" {
		if c, err := h.verifySignature(access); err == nil {
			sid = c.SessionID
		}
	}
	if sid == "" && refresh != "" && len(refresh) <= maxRefreshLen {
		rec, err := h.cfg.Store.RefreshToken(ctx, h.cfg.AppID, token.HashRefreshToken(refresh))
		switch {
		case err == nil && rec.RotatedAt.IsZero():
			sid = rec.SessionID
		case err != nil && !errors.Is(err, store.ErrNotFound):
			return internalError(fmt.Errorf("looking up refresh token: %w", err))
		}
	}
	if sid != "" {
		listed := h.cfg.Revocations.Revoked(sid)
		s, err := h.cfg.Store.RevokeSession(ctx, h.cfg.AppID, sid, store.ReasonLogout, now)
		switch {
		case errors.Is(err, store.ErrNotFound):
			s = store.Session{ID: sid, RevokedAt: now}
		case err != nil:
			return internalError(fmt.Errorf("revoking session: %w", err))
		case !listed && s.RevokeReason == store.ReasonLogout && revokedAt(s, now):
			h.metrics.Revoked(store.ReasonLogout, 1)
		}
		h.markRevoked(s)
	}
	h.clearSessionCookies(w, r)
	if wantsJSON(r) {
		writeJSON(w, http.StatusOK, struct {
			Status string `json:"status"`
		}{"success"})
		return nil
	}
	redirect(w, websession.SanitizeNext(r.URL.Query().Get("next")), http.StatusSeeOther)
	return nil
}

// csrfError is the answer to a cross-origin request carrying only a
// cookie.
func csrfError(err error) *Error {
	return &Error{Status: http.StatusForbidden, Code: CodeCSRFRejected, Err: err,
		Message: "cross-origin request refused; a cookie session only accepts same-origin requests that change something"}
}
