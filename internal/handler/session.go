package handler

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/wxauth/caddy-wechat-auth/internal/token"
	"github.com/wxauth/caddy-wechat-auth/store"
)

// maxRefreshLen bounds a presented refresh token (ours are 43 characters).
const maxRefreshLen = 512

type refreshRequest struct {
	RefreshToken string `json:"refresh_token"`
}

// refresh rotates a refresh token: the presented one is spent and a new
// pair is answered. A retry of the same token within the retry window
// (Config.RefreshGrace) gets the same pair; a later replay revokes the whole
// session.
func (h *Handler) refresh(w http.ResponseWriter, r *http.Request) *Error {
	var req refreshRequest
	if e := decodePost(w, r, &req, false); e != nil {
		return e
	}
	if req.RefreshToken == "" {
		return badRequest("missing refresh_token")
	}
	pair, e := h.rotateRefresh(r.Context(), req.RefreshToken)
	if e != nil {
		return e
	}
	writeJSON(w, http.StatusOK, pair)
	return nil
}

// rotateRefresh rotates the presented refresh token and returns the new
// pair: the refresh endpoint's work, also done inline by the cookie guard.
// A retry within the grace window gets the same pair; a later replay
// revokes the whole session. Every outcome is counted.
func (h *Handler) rotateRefresh(ctx context.Context, presented string) (tokenPair, *Error) {
	if len(presented) > maxRefreshLen {
		return tokenPair{}, h.refreshRefused("invalid refresh token")
	}
	now := h.now()
	hash := token.HashRefreshToken(presented)
	// The child is derived from the parent, so a retried rotation can hand
	// out the same child without its plaintext ever being stored.
	child := token.DeriveRefreshToken(h.cfg.RefreshSecret, presented)
	jti, err := token.NewID()
	if err != nil {
		return tokenPair{}, internalError(err)
	}
	next := store.RefreshToken{ // the store fills in SessionID from the presented token
		Hash:           token.HashRefreshToken(child),
		IssuedAt:       now,
		ExpiresAt:      now.Add(h.cfg.RefreshTTL),
		AccessID:       jti,
		AccessIssuedAt: now,
	}
	res, err := h.cfg.Store.Rotate(ctx, h.cfg.AppID, hash, next, now, h.grace)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return tokenPair{}, h.refreshRefused("invalid refresh token")
	case errors.Is(err, store.ErrExpired):
		return tokenPair{}, h.refreshRefused("refresh token expired; log in again")
	case errors.Is(err, store.ErrRevoked):
		return tokenPair{}, h.refreshRefused("the session has ended; log in again")
	case err != nil:
		return tokenPair{}, internalError(fmt.Errorf("rotating refresh token: %w", err))
	}
	switch res.Outcome {
	case store.Rotated, store.Retried:
		if res.Token.Hash != next.Hash {
			// Only possible when the derivation secret changed between
			// the rotation and its retry.
			return tokenPair{}, h.refreshRefused("invalid refresh token")
		}
		pair, e := h.pair(res.Session, child, res.Token, now)
		if e != nil {
			return tokenPair{}, e
		}
		if res.Outcome == store.Rotated {
			h.metrics.Refresh(RefreshOK)
		} else {
			h.metrics.Refresh(RefreshRetry)
		}
		return pair, nil
	case store.Reused:
		h.markRevoked(res.Session)
		h.metrics.Refresh(RefreshReuseDetected)
		h.metrics.Revoked(store.ReasonReuse, 1)
		if ce := h.log.Check(zap.WarnLevel, "wechat_auth refresh token reused; session revoked"); ce != nil {
			ce.Write(zap.Uint64("user_id", res.Session.UserID))
		}
		return tokenPair{}, invalidGrant("refresh token already used; the session has been revoked")
	default:
		return tokenPair{}, internalError(fmt.Errorf("rotating refresh token: unknown outcome %d", res.Outcome))
	}
}

// refreshRefused is a refresh's invalid_grant answer, counted.
func (h *Handler) refreshRefused(msg string) *Error {
	h.metrics.Refresh(RefreshInvalid)
	return invalidGrant(msg)
}

type logoutRequest struct {
	RefreshToken string   `json:"refresh_token"`
	All          flexBool `json:"all"`
}

// logout revokes the session of the presented access token (or refresh
// token), or with "all" every session of its user. It is idempotent.
func (h *Handler) logout(w http.ResponseWriter, r *http.Request) *Error {
	var req logoutRequest
	if e := decodePost(w, r, &req, true); e != nil {
		return e
	}
	ctx := r.Context()
	now := h.now()
	var sid string
	var uid uint64
	var ended bool // the session was revoked before this call
	raw, _ := h.findTokenSource(r)
	var accessErr error
	if raw != "" {
		// A token of an already revoked session may log out again.
		c, err := h.verifySignature(raw)
		if err == nil {
			sid, uid = c.SessionID, c.UserID
		}
		accessErr = err
	}
	switch {
	case sid != "":
	case req.RefreshToken != "":
		// No usable access token (none, or an expired one): the refresh
		// token in the body names the session.
		if len(req.RefreshToken) > maxRefreshLen {
			return invalidGrant("invalid refresh token")
		}
		rec, e := h.logoutRefreshToken(ctx, req.RefreshToken, now)
		if e != nil {
			return e
		}
		s, err := h.cfg.Store.Session(ctx, h.cfg.AppID, rec.SessionID)
		if err != nil {
			return storeError(err, invalidGrant("invalid refresh token"))
		}
		sid, uid, ended = s.ID, s.UserID, s.Revoked()
	case accessErr != nil:
		return guardError(accessErr)
	default:
		return guardError(errNoToken)
	}

	// A session that has ended may log out again (idempotent), but it no
	// longer speaks for its user: "all" is honoured only from a live one.
	// From an ended session it is answered 200 only when that session was
	// ended by a logout everywhere (a client repeating one); otherwise the
	// answer must not claim that the user's other sessions ended.
	var allRefused bool
	if bool(req.All) {
		if !ended && !h.cfg.Revocations.Revoked(sid) {
			ss, err := h.cfg.Store.RevokeUserSessions(ctx, h.cfg.AppID, uid, store.ReasonLogoutAll, now)
			if err != nil {
				return internalError(fmt.Errorf("revoking sessions: %w", err))
			}
			for _, s := range ss {
				h.markRevoked(s)
			}
			h.metrics.Revoked(store.ReasonLogoutAll, len(ss))
		} else {
			s, err := h.cfg.Store.Session(ctx, h.cfg.AppID, sid)
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				return internalError(fmt.Errorf("reading session: %w", err))
			}
			allRefused = err != nil || s.RevokeReason != store.ReasonLogoutAll
		}
	}
	listed := h.cfg.Revocations.Revoked(sid)
	s, err := h.cfg.Store.RevokeSession(ctx, h.cfg.AppID, sid, store.ReasonLogout, now)
	switch {
	case errors.Is(err, store.ErrNotFound):
		// Pruned already: its tokens can still be live, so list it.
		s = store.Session{ID: sid, RevokedAt: now}
	case err != nil:
		return internalError(fmt.Errorf("revoking session: %w", err))
	case !listed && s.RevokeReason == store.ReasonLogout && revokedAt(s, now):
		h.metrics.Revoked(store.ReasonLogout, 1) // revoked by this call
	}
	h.markRevoked(s)
	if allRefused {
		return invalidGrant("this session has ended, so it cannot log out the user's other sessions: log in again to log out everywhere")
	}
	writeJSON(w, http.StatusOK, struct {
		Status string `json:"status"`
	}{"success"})
	return nil
}

// logoutRefreshToken returns the record of a refresh token presented to
// log out, if it may end its session: the session's current token, or one
// rotated within the retry window (Config.RefreshGrace) whose child is
// still current (a logout that crossed a refresh in flight: a retried
// refresh would hand its presenter the current pair anyway). A token
// spent longer ago, or an expired one, is refused, so an old token found
// somewhere cannot log anyone out.
func (h *Handler) logoutRefreshToken(ctx context.Context, presented string, now time.Time) (store.RefreshToken, *Error) {
	refused := invalidGrant("invalid refresh token")
	rec, err := h.cfg.Store.RefreshToken(ctx, h.cfg.AppID, token.HashRefreshToken(presented))
	if err != nil {
		return rec, storeError(err, refused)
	}
	if !now.Before(rec.ExpiresAt) {
		return rec, refused
	}
	if rec.RotatedAt.IsZero() {
		return rec, nil
	}
	if now.After(rec.RotatedAt.Add(h.grace)) {
		return rec, refused
	}
	child, err := h.cfg.Store.RefreshToken(ctx, h.cfg.AppID, rec.Child)
	switch {
	case err != nil:
		return rec, storeError(err, refused)
	case child.SessionID != rec.SessionID || !child.RotatedAt.IsZero() || !now.Before(child.ExpiresAt):
		return rec, refused
	}
	return rec, nil
}

// markRevoked puts a revoked session on the in-memory list for as long as
// one of its access tokens could still be accepted by any handler of the
// app.
func (h *Handler) markRevoked(s store.Session) {
	h.cfg.Revocations.Add(s.ID, s.RevokedAt, h.now())
}

// LoadRevocations fills the revocation list from the store: every session
// revoked recently enough that an access token of it, living accessTTL
// with leeway, could still be accepted at now. Once the store has answered
// the list's window is widened to cover such tokens; a failed load leaves
// the list as it was.
func LoadRevocations(ctx context.Context, st interface {
	Revocations(ctx context.Context, app string, since time.Time) ([]store.Revocation, error)
}, app string, revs *Revocations, accessTTL, leeway time.Duration, now time.Time) error {
	window := revocationWindow(accessTTL, leeway)
	rs, err := st.Revocations(ctx, app, now.Add(-window))
	if err != nil {
		return fmt.Errorf("loading revocations: %w", err)
	}
	revs.Widen(window)
	for _, rv := range rs {
		revs.Add(rv.SessionID, rv.RevokedAt, now)
	}
	return nil
}

// revokedAt reports whether s was revoked at now, the time this call asked
// for: a store may keep times to the microsecond (PostgreSQL does), so the
// stored time is compared with now at that precision. A session revoked by
// an earlier call has an earlier RevokedAt.
func revokedAt(s store.Session, now time.Time) bool {
	return !s.RevokedAt.Before(now.Truncate(time.Microsecond))
}
