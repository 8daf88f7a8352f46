package handler

import (
	"context"
	"fmt"

	"github.com/wxauth/caddy-wechat-auth/store"
)

// Operator actions. Each changes the store, then puts the sessions it
// revoked on the in-memory revocation list, so their access tokens are
// refused by the guard from the moment the call returns, and counts them.

// AppID returns the app the handler serves.
func (h *Handler) AppID() string { return h.cfg.AppID }

// RevokeSession ends one session of the app (reason store.ReasonAdmin).
// Revoking a revoked session changes nothing and returns it as it is.
func (h *Handler) RevokeSession(ctx context.Context, sid string) (store.Session, error) {
	now := h.now()
	listed := h.cfg.Revocations.Revoked(sid)
	s, err := h.cfg.Store.RevokeSession(ctx, h.cfg.AppID, sid, store.ReasonAdmin, now)
	if err != nil {
		return store.Session{}, fmt.Errorf("revoking session: %w", err)
	}
	h.markRevoked(s)
	// Revoked by this call (not before): count it.
	if !listed && s.RevokeReason == store.ReasonAdmin && revokedAt(s, now) {
		h.metrics.Revoked(store.ReasonAdmin, 1)
	}
	return s, nil
}

// RevokeUserSessions ends every active session of the app's user
// (reason store.ReasonAdmin) and returns those it ended.
func (h *Handler) RevokeUserSessions(ctx context.Context, userID uint64) ([]store.Session, error) {
	ss, err := h.cfg.Store.RevokeUserSessions(ctx, h.cfg.AppID, userID, store.ReasonAdmin, h.now())
	if err != nil {
		return nil, fmt.Errorf("revoking user sessions: %w", err)
	}
	for _, s := range ss {
		h.markRevoked(s)
	}
	h.metrics.Revoked(store.ReasonAdmin, len(ss))
	return ss, nil
}

// Ban bans the app's user: every active session is ended (reason
// store.ReasonBan) and logins are refused with user_banned until Unban.
func (h *Handler) Ban(ctx context.Context, userID uint64, reason string) (store.User, []store.Session, error) {
	u, ss, err := h.cfg.Store.Ban(ctx, h.cfg.AppID, userID, reason, h.now())
	if err != nil {
		return store.User{}, nil, fmt.Errorf("banning user: %w", err)
	}
	for _, s := range ss {
		h.markRevoked(s)
	}
	h.metrics.Revoked(store.ReasonBan, len(ss))
	return u, ss, nil
}

// Unban lifts the ban of the app's user.
func (h *Handler) Unban(ctx context.Context, userID uint64) (store.User, error) {
	u, err := h.cfg.Store.Unban(ctx, h.cfg.AppID, userID, h.now())
	if err != nil {
		return store.User{}, fmt.Errorf("unbanning user: %w", err)
	}
	return u, nil
}
