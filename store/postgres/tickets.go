package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/wxauth/caddy-wechat-auth/store"
)

// CreateTicket stores a web-view ticket of a live session; see
// store.Store. Tickets of the app that expired before now are deleted in
// the same transaction.
func (s *Store) CreateTicket(ctx context.Context, app string, t store.Ticket, now time.Time) error {
	switch {
	case !validKey(app):
		return errors.New("creating ticket: invalid app")
	case !validKey(t.SessionID):
		return errors.New("creating ticket: invalid session id")
	case t.Hash == [32]byte{}:
		return errors.New("creating ticket: missing hash")
	case t.ExpiresAt.IsZero() || len(t.Next) > 4096 || !validText(t.Next):
		return errors.New("creating ticket: missing expiry or bad next")
	case t.UserID == 0 || t.UserID > maxID:
		return errors.New("creating ticket: missing user id")
	}
	return s.inTx(ctx, "creating ticket", func(ctx context.Context, tx pgx.Tx) error {
		sess, err := scanSession(tx.QueryRow(ctx, `SELECT `+sessionColumns+` FROM wechat_auth_sessions s
			WHERE s.app_id = $1 AND s.id = $2 FOR SHARE`, app, t.SessionID))
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			return fmt.Errorf("session %q: %w", t.SessionID, store.ErrNotFound)
		case err != nil:
			return err
		case sess.Revoked():
			return fmt.Errorf("session %q: %w", sess.ID, store.ErrRevoked)
		case !now.Before(sess.ExpiresAt):
			return fmt.Errorf("session %q: %w", sess.ID, store.ErrExpired)
		case sess.UserID != t.UserID:
			return invalid("ticket user is not the session's user")
		}
		if _, err := tx.Exec(ctx, `DELETE FROM wechat_auth_web_tickets WHERE app_id = $1 AND expires_at <= $2`, app, now); err != nil {
			return fmt.Errorf("deleting expired tickets: %w", err)
		}
		_, err = tx.Exec(ctx, `INSERT INTO wechat_auth_web_tickets (app_id, hash, session_id, user_id, next, created_at, expires_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7)`,
			app, t.Hash[:], t.SessionID, int64(t.UserID), t.Next, norm(t.CreatedAt), norm(t.ExpiresAt))
		switch pgCode(err) {
		case "":
			return nil
		case "23505":
			return fmt.Errorf("ticket: %w", errDuplicate)
		}
		return fmt.Errorf("writing ticket: %w", err)
	})
}

// RedeemTicket consumes a ticket and stores the new session in one
// transaction; see store.Store. The DELETE ... RETURNING makes the
// redemption single-use across instances: of two concurrent calls, the
// second finds no row.
func (s *Store) RedeemTicket(ctx context.Context, app string, hash [32]byte, sess store.Session, tok store.RefreshToken, now time.Time) (store.Ticket, store.Session, error) {
	fail := func(err error) (store.Ticket, store.Session, error) {
		return store.Ticket{}, store.Session{}, fmt.Errorf("redeeming ticket: %w", err)
	}
	if sess.AppID == "" {
		sess.AppID = app
	}
	if !validKey(app) || sess.AppID != app {
		return fail(invalid("app"))
	}
	if err := checkFirstToken(sess, tok); err != nil {
		return fail(err)
	}
	sess, tok = normSession(sess), normToken(tok)
	if sess.ExpiresAt.IsZero() {
		sess.ExpiresAt = tok.ExpiresAt
	}
	var (
		t       store.Ticket
		stored  store.Session
		refused error
	)
	err := s.inTx(ctx, "redeeming ticket", func(ctx context.Context, tx pgx.Tx) error {
		refused = nil
		var (
			h   []byte
			uid int64
		)
		err := tx.QueryRow(ctx, `DELETE FROM wechat_auth_web_tickets WHERE app_id = $1 AND hash = $2
			RETURNING hash, session_id, user_id, next, created_at, expires_at`, app, hash[:]).
			Scan(&h, &t.SessionID, &uid, &t.Next, &t.CreatedAt, &t.ExpiresAt)
		if errors.Is(err, pgx.ErrNoRows) {
			refused = fmt.Errorf("ticket: %w", store.ErrNotFound)
			return nil
		}
		if err != nil {
			return err
		}
		copy(t.Hash[:], h)
		t.UserID = uint64(uid)
		t.CreatedAt, t.ExpiresAt = t.CreatedAt.UTC(), t.ExpiresAt.UTC()
		// From here on a refusal commits: the ticket stays consumed.
		if !now.Before(t.ExpiresAt) {
			refused = fmt.Errorf("ticket: %w", store.ErrExpired)
			return nil
		}
		var banned bool
		var unionID string
		asking, err := scanSession(tx.QueryRow(ctx, `SELECT `+sessionColumns+` FROM wechat_auth_sessions s
			WHERE s.app_id = $1 AND s.id = $2 FOR SHARE`, app, t.SessionID))
		switch {
		case errors.Is(err, pgx.ErrNoRows), err == nil && asking.Revoked():
			refused = fmt.Errorf("ticket's session: %w", store.ErrRevoked)
			return nil
		case err != nil:
			return err
		case !now.Before(asking.ExpiresAt):
			refused = fmt.Errorf("ticket's session: %w", store.ErrExpired)
			return nil
		}
		if err := tx.QueryRow(ctx, `SELECT banned, unionid FROM wechat_auth_users WHERE app_id = $1 AND id = $2 FOR SHARE`,
			app, int64(asking.UserID)).Scan(&banned, &unionID); err != nil {
			return fmt.Errorf("reading the ticket's user: %w", err)
		}
		if banned {
			refused = fmt.Errorf("user %d: %w", asking.UserID, store.ErrBanned)
			return nil
		}
		stored = sess
		stored.UserID, stored.OpenID, stored.UnionID = asking.UserID, asking.OpenID, unionID
		if stored.UnionID == "" {
			stored.UnionID = asking.UnionID
		}
		t2 := tok
		return insertSession(ctx, tx, &stored, &t2)
	})
	if err == nil && refused != nil {
		err = fmt.Errorf("redeeming ticket: %w", refused)
	}
	if err != nil {
		return store.Ticket{}, store.Session{}, err
	}
	return t, stored, nil
}
