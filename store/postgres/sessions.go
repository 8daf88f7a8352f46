package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/wxauth/caddy-wechat-auth/store"
)

// sessionColumns are the columns scanSession reads, in its order.
const sessionColumns = `s.app_id, s.id, s.user_id, s.openid, s.unionid, s.sealed_session_key,
	s.created_at, s.expires_at, s.refreshed_at, s.revoked_at, s.revoke_reason`

// scanSession reads one row of sessionColumns.
func scanSession(row pgx.Row) (store.Session, error) {
	var (
		s                 store.Session
		uid               int64
		refreshed, revoke pgtype.Timestamptz
	)
	err := row.Scan(&s.AppID, &s.ID, &uid, &s.OpenID, &s.UnionID, &s.SealedSessionKey,
		&s.CreatedAt, &s.ExpiresAt, &refreshed, &revoke, &s.RevokeReason)
	s.UserID = uint64(uid)
	s.CreatedAt, s.ExpiresAt = s.CreatedAt.UTC(), s.ExpiresAt.UTC()
	s.RefreshedAt, s.RevokedAt = fromTZ(refreshed), fromTZ(revoke)
	if len(s.SealedSessionKey) == 0 {
		s.SealedSessionKey = nil
	}
	return s, err
}

// tokenColumns are the columns scanToken reads, in its order.
const tokenColumns = `t.hash, t.session_id, t.issued_at, t.expires_at, t.rotated_at, t.child,
	t.access_id, t.access_issued_at`

// scanToken reads one row of tokenColumns.
func scanToken(row pgx.Row) (store.RefreshToken, error) {
	var (
		t           store.RefreshToken
		hash, child []byte
		rotated     pgtype.Timestamptz
	)
	err := row.Scan(&hash, &t.SessionID, &t.IssuedAt, &t.ExpiresAt, &rotated, &child, &t.AccessID, &t.AccessIssuedAt)
	copy(t.Hash[:], hash)
	copy(t.Child[:], child)
	t.IssuedAt, t.ExpiresAt, t.AccessIssuedAt = t.IssuedAt.UTC(), t.ExpiresAt.UTC(), t.AccessIssuedAt.UTC()
	t.RotatedAt = fromTZ(rotated)
	return t, err
}

// tz is t for a nullable timestamptz column: NULL for the zero time.
func tz(t time.Time) pgtype.Timestamptz {
	if t.IsZero() {
		return pgtype.Timestamptz{}
	}
	return pgtype.Timestamptz{Time: t, Valid: true}
}

func fromTZ(v pgtype.Timestamptz) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return v.Time.UTC()
}

// hashArg is a hash for a nullable bytea column: NULL for the zero hash.
func hashArg(h [32]byte) []byte {
	if h == [32]byte{} {
		return nil
	}
	return h[:]
}

// normSession and normToken store times as PostgreSQL keeps them, so what
// a write returns equals what a later read returns.
func normSession(s store.Session) store.Session {
	s.CreatedAt, s.ExpiresAt, s.RevokedAt, s.RefreshedAt = norm(s.CreatedAt), norm(s.ExpiresAt), norm(s.RevokedAt), norm(s.RefreshedAt)
	if len(s.SealedSessionKey) == 0 {
		s.SealedSessionKey = nil
	} else {
		s.SealedSessionKey = append([]byte(nil), s.SealedSessionKey...)
	}
	return s
}

func normToken(t store.RefreshToken) store.RefreshToken {
	t.IssuedAt, t.ExpiresAt, t.RotatedAt, t.AccessIssuedAt = norm(t.IssuedAt), norm(t.ExpiresAt), norm(t.RotatedAt), norm(t.AccessIssuedAt)
	return t
}

// checkFirstToken validates a new session and its first refresh token.
func checkFirstToken(sess store.Session, tok store.RefreshToken) error {
	switch {
	case !validKey(sess.ID):
		return invalid("session id")
	case tok.SessionID != sess.ID:
		return invalid("refresh token belongs to another session")
	case sess.Revoked():
		return invalid("session is already revoked")
	case tok.Hash == [32]byte{}:
		return invalid("missing refresh token hash")
	case tok.ExpiresAt.IsZero():
		return invalid("missing refresh token expiry")
	case !tok.RotatedAt.IsZero() || tok.Child != [32]byte{}:
		return invalid("first refresh token is already rotated")
	case !validText(tok.AccessID) || len(tok.AccessID) > maxKeyLen:
		return invalid("access id")
	}
	return nil
}

// insertSession writes a session and its first token. A missing user is
// ErrNotFound and a taken session id or token hash errDuplicate; both
// abort the transaction.
func insertSession(ctx context.Context, tx pgx.Tx, sess *store.Session, tok *store.RefreshToken) error {
	_, err := tx.Exec(ctx, `INSERT INTO wechat_auth_sessions
		(app_id, id, user_id, openid, unionid, sealed_session_key, created_at, expires_at, refreshed_at, revoked_at, revoke_reason)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULL, '')`,
		sess.AppID, sess.ID, int64(sess.UserID), sess.OpenID, sess.UnionID, sess.SealedSessionKey,
		sess.CreatedAt, sess.ExpiresAt, tz(sess.RefreshedAt))
	switch code := pgCode(err); {
	case code == "23503": // foreign key: no such user
		return fmt.Errorf("user %d of app %q: %w", sess.UserID, sess.AppID, store.ErrNotFound)
	case code == "23505":
		return fmt.Errorf("session %q: %w", sess.ID, errDuplicate)
	case err != nil:
		return fmt.Errorf("writing session: %w", err)
	}
	return insertToken(ctx, tx, sess.AppID, tok)
}

// insertToken writes a refresh token; a taken hash is errDuplicate.
func insertToken(ctx context.Context, tx pgx.Tx, app string, tok *store.RefreshToken) error {
	_, err := tx.Exec(ctx, `INSERT INTO wechat_auth_refresh_tokens
		(app_id, hash, session_id, issued_at, expires_at, rotated_at, child, access_id, access_issued_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
		app, tok.Hash[:], tok.SessionID, tok.IssuedAt, tok.ExpiresAt, tz(tok.RotatedAt), hashArg(tok.Child),
		tok.AccessID, tok.AccessIssuedAt)
	switch pgCode(err) {
	case "":
		return nil
	case "23505":
		return fmt.Errorf("refresh token: %w", errDuplicate)
	}
	return fmt.Errorf("writing refresh token: %w", err)
}

// pgCode is the SQLSTATE of a server error, or "".
func pgCode(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

// Session returns the app's session id, revoked or not.
func (s *Store) Session(ctx context.Context, app, id string) (store.Session, error) {
	var sess store.Session
	err := s.call(ctx, "looking up session", func(ctx context.Context) error {
		if !validKey(app) || !validKey(id) {
			return store.ErrNotFound
		}
		var err error
		sess, err = scanSession(s.pool.QueryRow(ctx, `SELECT `+sessionColumns+` FROM wechat_auth_sessions s
			WHERE s.app_id = $1 AND s.id = $2`, app, id))
		return err
	})
	if err != nil {
		return store.Session{}, err
	}
	return sess, nil
}

// RefreshToken returns the app's refresh-token record with hash.
func (s *Store) RefreshToken(ctx context.Context, app string, hash [32]byte) (store.RefreshToken, error) {
	var tok store.RefreshToken
	err := s.call(ctx, "looking up refresh token", func(ctx context.Context) error {
		if !validKey(app) || hash == [32]byte{} {
			return store.ErrNotFound
		}
		var err error
		tok, err = scanToken(s.pool.QueryRow(ctx, `SELECT `+tokenColumns+` FROM wechat_auth_refresh_tokens t
			WHERE t.app_id = $1 AND t.hash = $2`, app, hash[:]))
		return err
	})
	if err != nil {
		return store.RefreshToken{}, err
	}
	return tok, nil
}

// Rotate presents the refresh token with hash; see store.Store and
// store.RotateOutcome. The presented token and its session are locked
// for the transaction, so concurrent rotations of one token, in any
// process, run one after the other: one Rotated, the rest Retried.
func (s *Store) Rotate(ctx context.Context, app string, hash [32]byte, next store.RefreshToken, now time.Time, grace time.Duration) (store.RotateResult, error) {
	switch {
	case hash == [32]byte{} || !validKey(app):
		return store.RotateResult{}, fmt.Errorf("rotating refresh token: %w", store.ErrNotFound)
	case now.IsZero():
		return store.RotateResult{}, errors.New("rotating refresh token: zero time")
	case next.Hash == [32]byte{} || next.Hash == hash:
		return store.RotateResult{}, errors.New("rotating refresh token: invalid next token hash")
	case next.ExpiresAt.IsZero():
		return store.RotateResult{}, errors.New("rotating refresh token: missing next token expiry")
	case !validText(next.AccessID) || len(next.AccessID) > maxKeyLen || !validText(next.SessionID):
		return store.RotateResult{}, errors.New("rotating refresh token: invalid next token")
	}
	now = norm(now)
	next = normToken(next)
	next.RotatedAt, next.Child = time.Time{}, [32]byte{}
	grace = max(grace, 0)
	var res store.RotateResult
	err := s.call(ctx, "rotating refresh token", func(ctx context.Context) error {
		var (
			done bool
			err  error
		)
		if res, done, err = rotateCurrent(ctx, s.pool, app, hash, next, now); err != nil || done {
			return err
		}
		return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			res, err = rotateTx(ctx, tx, app, hash, next, now, grace)
			return err
		})
	})
	if err != nil {
		return store.RotateResult{}, err
	}
	return res, nil
}

// rotateCurrent is Rotate's common case in one statement: the presented
// token is its active session's current token, not expired, so it is
// locked with its session, marked rotated, the next token stored and the
// session's expiry moved. done is false (and nothing written) when any
// of that does not hold; the general path then decides.
func rotateCurrent(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, app string, hash [32]byte, next store.RefreshToken, now time.Time) (store.RotateResult, bool, error) {
	var res store.RotateResult
	// After waiting for a lock, FOR UPDATE returns the rows as committed
	// by then, so "cur" is current and a concurrent rotation makes "cur"
	// empty here. The user is read, not locked: a ban revokes the session
	// under the session's row lock, so a ban committed first leaves the
	// session revoked here, and one committing later revokes it after.
	row := q.QueryRow(ctx, `WITH cur AS (
			SELECT t.hash, t.session_id FROM wechat_auth_refresh_tokens t
			JOIN wechat_auth_sessions s ON s.app_id = t.app_id AND s.id = t.session_id
			JOIN wechat_auth_users u ON u.app_id = s.app_id AND u.id = s.user_id
			WHERE t.app_id = $1 AND t.hash = $2 AND t.rotated_at IS NULL AND s.revoked_at IS NULL
			AND NOT u.banned AND $3 < t.expires_at AND ($5 = '' OR $5 = s.id)
			FOR UPDATE OF t, s
		), r AS (
			UPDATE wechat_auth_refresh_tokens t SET rotated_at = $3, child = $4
			FROM cur WHERE t.app_id = $1 AND t.hash = cur.hash
		), n AS (
			INSERT INTO wechat_auth_refresh_tokens
			(app_id, hash, session_id, issued_at, expires_at, access_id, access_issued_at)
			SELECT $1, $4, cur.session_id, $6, $7, $8, $9 FROM cur
		)
		UPDATE wechat_auth_sessions s SET expires_at = $7, refreshed_at = $3
		FROM cur WHERE s.app_id = $1 AND s.id = cur.session_id
		RETURNING `+sessionColumns,
		app, hash[:], now, next.Hash[:], next.SessionID, next.IssuedAt, next.ExpiresAt, next.AccessID, next.AccessIssuedAt)
	sess, err := scanSession(row)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return res, false, nil
	case constraint(err) == "wechat_auth_refresh_tokens_pkey":
		return res, false, fmt.Errorf("next token: %w", errDuplicate)
	case err != nil:
		return res, false, fmt.Errorf("rotating: %w", err)
	}
	nt := next
	nt.SessionID = sess.ID
	return store.RotateResult{Outcome: store.Rotated, Session: sess, Token: nt}, true, nil
}

// rotateTx is Rotate's work inside a transaction.
func rotateTx(ctx context.Context, tx pgx.Tx, app string, hash [32]byte, next store.RefreshToken, now time.Time, grace time.Duration) (store.RotateResult, error) {
	var res store.RotateResult
	// Lock the token and its session: every writer of a session's tokens
	// or revocation state holds the session row, and after waiting for a
	// lock the rows are read again as committed, so what is read here is
	// current.
	sess, tok, err := scanSessionTokenRow(tx.QueryRow(ctx, `SELECT `+sessionColumns+`, `+tokenColumns+`
		FROM wechat_auth_refresh_tokens t
		JOIN wechat_auth_sessions s ON s.app_id = t.app_id AND s.id = t.session_id
		WHERE t.app_id = $1 AND t.hash = $2 FOR UPDATE OF t, s`, app, hash[:]))
	if err != nil {
		return res, fmt.Errorf("refresh token: %w", err)
	}
	switch {
	case sess.Revoked():
		return res, store.ErrRevoked
	case !now.Before(tok.ExpiresAt):
		return res, store.ErrExpired
	}
	// A banned user's session is refused as a revoked one, whatever the
	// token's state: no pair is issued or handed out again for it.
	var banned bool
	if err := tx.QueryRow(ctx, `SELECT banned FROM wechat_auth_users WHERE app_id = $1 AND id = $2`,
		app, int64(sess.UserID)).Scan(&banned); err != nil {
		return res, fmt.Errorf("reading the session's user: %w", err)
	}
	if banned {
		return res, fmt.Errorf("user %d is banned: %w", sess.UserID, store.ErrRevoked)
	}

	if tok.RotatedAt.IsZero() { // current: rotate
		nt := next
		if nt.SessionID == "" {
			nt.SessionID = sess.ID
		}
		if nt.SessionID != sess.ID {
			return res, invalid("next token belongs to another session")
		}
		// One statement: mark the token rotated, store the next one, move
		// the session's expiry.
		_, err := tx.Exec(ctx, `WITH r AS (
				UPDATE wechat_auth_refresh_tokens SET rotated_at = $3, child = $4
				WHERE app_id = $1 AND hash = $2
			), n AS (
				INSERT INTO wechat_auth_refresh_tokens
				(app_id, hash, session_id, issued_at, expires_at, access_id, access_issued_at)
				VALUES ($1, $4, $5, $6, $7, $8, $9)
			)
			UPDATE wechat_auth_sessions SET expires_at = $7, refreshed_at = $3 WHERE app_id = $1 AND id = $5`,
			app, hash[:], now, nt.Hash[:], sess.ID, nt.IssuedAt, nt.ExpiresAt, nt.AccessID, nt.AccessIssuedAt)
		if constraint(err) == "wechat_auth_refresh_tokens_pkey" {
			return res, fmt.Errorf("next token: %w", errDuplicate)
		}
		if err != nil {
			return res, fmt.Errorf("rotating: %w", err)
		}
		sess.ExpiresAt, sess.RefreshedAt = nt.ExpiresAt, now
		return store.RotateResult{Outcome: store.Rotated, Session: sess, Token: nt}, nil
	}

	child, err := scanToken(tx.QueryRow(ctx, `SELECT `+tokenColumns+` FROM wechat_auth_refresh_tokens t
		WHERE t.app_id = $1 AND t.hash = $2`, app, tok.Child[:]))
	switch {
	case errors.Is(err, pgx.ErrNoRows): // pruned: treat as not current
	case err != nil:
		return res, fmt.Errorf("reading child token: %w", err)
	case child.RotatedAt.IsZero() && !now.After(tok.RotatedAt.Add(grace)):
		if !now.Before(child.ExpiresAt) {
			return res, store.ErrExpired
		}
		return store.RotateResult{Outcome: store.Retried, Session: sess, Token: child}, nil
	}
	if err := revokeTx(ctx, tx, &sess, store.ReasonReuse, now); err != nil {
		return res, err
	}
	return store.RotateResult{Outcome: store.Reused, Session: sess, Token: tok}, nil
}

// revokedAtSQL is the time a revocation is stamped with: the database's
// clock when the statement runs, or the caller's now if that is later.
// Every instance sharing the database then counts a revocation's window
// from one clock, so an instance whose clock is behind cannot shorten how
// long the others refuse the session's tokens; a clock ahead only makes
// them refuse longer. $3 is the caller's now.
const revokedAtSQL = `GREATEST(clock_timestamp(), $3::timestamptz)`

// revokeTx marks an active session revoked, stamped by revokedAtSQL, and
// appends the revocation to the feed, notifying listeners at commit.
func revokeTx(ctx context.Context, tx pgx.Tx, sess *store.Session, reason string, now time.Time) error {
	var at time.Time
	if err := tx.QueryRow(ctx, `UPDATE wechat_auth_sessions SET revoked_at = `+revokedAtSQL+`, revoke_reason = $4
		WHERE app_id = $1 AND id = $2 RETURNING revoked_at`, sess.AppID, sess.ID, now, reason).Scan(&at); err != nil {
		return fmt.Errorf("revoking session: %w", err)
	}
	sess.RevokedAt, sess.RevokeReason = at.UTC(), reason
	return feedTx(ctx, tx, []store.Session{*sess})
}

// feedTx appends revoked sessions to the revocation feed and sends one
// notification (delivered at commit, and only if it commits).
func feedTx(ctx context.Context, tx pgx.Tx, ss []store.Session) error {
	if len(ss) == 0 {
		return nil
	}
	var (
		apps, ids, reasons []string
		uids               []int64
		ats                []time.Time
	)
	for _, s := range ss {
		apps, ids, uids, ats, reasons = append(apps, s.AppID), append(ids, s.ID), append(uids, int64(s.UserID)), append(ats, s.RevokedAt), append(reasons, s.RevokeReason)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO wechat_auth_revocations (app_id, session_id, user_id, revoked_at, reason)
		SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::timestamptz[], $5::text[])`,
		apps, ids, uids, ats, reasons); err != nil {
		return fmt.Errorf("writing revocation feed: %w", err)
	}
	if _, err := tx.Exec(ctx, `SELECT pg_notify($1, '')`, notifyChannel); err != nil {
		return fmt.Errorf("notifying revocation: %w", err)
	}
	return nil
}

// RevokeSession revokes the app's session id with reason, stamped with the
// database's clock or now, whichever is later. Revoking a revoked session
// returns it unchanged.
func (s *Store) RevokeSession(ctx context.Context, app, id, reason string, now time.Time) (store.Session, error) {
	if now.IsZero() {
		return store.Session{}, errors.New("revoking session: zero time")
	}
	if !validText(reason) {
		return store.Session{}, errors.New("revoking session: invalid reason")
	}
	now = norm(now)
	var sess store.Session
	err := s.inTx(ctx, "revoking session", func(ctx context.Context, tx pgx.Tx) error {
		if !validKey(app) || !validKey(id) {
			return store.ErrNotFound
		}
		var err error
		sess, err = scanSession(tx.QueryRow(ctx, `SELECT `+sessionColumns+` FROM wechat_auth_sessions s
			WHERE s.app_id = $1 AND s.id = $2 FOR UPDATE`, app, id))
		if err != nil {
			return fmt.Errorf("session %q: %w", id, err)
		}
		if sess.Revoked() {
			return nil
		}
		return revokeTx(ctx, tx, &sess, reason, now)
	})
	if err != nil {
		return store.Session{}, err
	}
	return sess, nil
}

// RevokeUserSessions revokes every active session of the app's user and
// returns those it revoked, in session id order. An unknown user is
// ErrNotFound; a user without active sessions gets an empty result.
func (s *Store) RevokeUserSessions(ctx context.Context, app string, userID uint64, reason string, now time.Time) ([]store.Session, error) {
	if now.IsZero() {
		return nil, errors.New("revoking user sessions: zero time")
	}
	if !validText(reason) {
		return nil, errors.New("revoking user sessions: invalid reason")
	}
	now = norm(now)
	var out []store.Session
	err := s.inTx(ctx, "revoking user sessions", func(ctx context.Context, tx pgx.Tx) error {
		if !validKey(app) || userID == 0 || userID > maxID {
			return store.ErrNotFound
		}
		var one int
		if err := tx.QueryRow(ctx, `SELECT 1 FROM wechat_auth_users WHERE app_id = $1 AND id = $2`, app, int64(userID)).Scan(&one); err != nil {
			return fmt.Errorf("user %d: %w", userID, err)
		}
		var err error
		out, err = revokeUserTx(ctx, tx, app, userID, reason, now)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// revokeUserTx revokes every active session of a user, all stamped with
// one time (revokedAtSQL), and returns them, in session id order.
func revokeUserTx(ctx context.Context, tx pgx.Tx, app string, userID uint64, reason string, now time.Time) ([]store.Session, error) {
	rows, err := tx.Query(ctx, `WITH at AS (SELECT `+revokedAtSQL+` AS t)
		UPDATE wechat_auth_sessions s SET revoked_at = at.t, revoke_reason = $4
		FROM at WHERE s.app_id = $1 AND s.user_id = $2 AND s.revoked_at IS NULL RETURNING `+sessionColumns,
		app, int64(userID), now, reason)
	if err != nil {
		return nil, fmt.Errorf("revoking sessions: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Session, error) { return scanSession(r) })
	if err != nil {
		return nil, fmt.Errorf("revoking sessions: %w", err)
	}
	sortSessions(out)
	return out, feedTx(ctx, tx, out)
}

// sortSessions orders sessions by id.
func sortSessions(ss []store.Session) {
	slices.SortFunc(ss, func(a, b store.Session) int { return strings.Compare(a.ID, b.ID) })
}

// Revocations lists the app's sessions revoked at or after since, oldest
// first.
func (s *Store) Revocations(ctx context.Context, app string, since time.Time) ([]store.Revocation, error) {
	var out []store.Revocation
	err := s.call(ctx, "listing revocations", func(ctx context.Context) error {
		if !validKey(app) {
			return nil
		}
		rows, err := s.pool.Query(ctx, `SELECT app_id, id, user_id, revoked_at FROM wechat_auth_sessions
			WHERE app_id = $1 AND revoked_at IS NOT NULL AND revoked_at >= $2 ORDER BY revoked_at, id`, app, since)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, scanRevocation)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// scanRevocation reads app_id, session id, user_id, revoked_at.
func scanRevocation(r pgx.CollectableRow) (store.Revocation, error) {
	var (
		rv  store.Revocation
		uid int64
	)
	err := r.Scan(&rv.AppID, &rv.SessionID, &uid, &rv.RevokedAt)
	rv.UserID, rv.RevokedAt = uint64(uid), rv.RevokedAt.UTC()
	return rv, err
}

// UserSessions lists a user's sessions, newest first.
func (s *Store) UserSessions(ctx context.Context, app string, userID uint64) ([]store.Session, error) {
	var out []store.Session
	err := s.call(ctx, "listing user sessions", func(ctx context.Context) error {
		if !validKey(app) || userID == 0 || userID > maxID {
			return store.ErrNotFound
		}
		return pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{AccessMode: pgx.ReadOnly, IsoLevel: pgx.RepeatableRead}, func(tx pgx.Tx) error {
			var one int
			if err := tx.QueryRow(ctx, `SELECT 1 FROM wechat_auth_users WHERE app_id = $1 AND id = $2`, app, int64(userID)).Scan(&one); err != nil {
				return fmt.Errorf("user %d: %w", userID, err)
			}
			rows, err := tx.Query(ctx, `SELECT `+sessionColumns+` FROM wechat_auth_sessions s
				WHERE s.app_id = $1 AND s.user_id = $2 ORDER BY s.created_at DESC, s.id DESC`, app, int64(userID))
			if err != nil {
				return err
			}
			out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Session, error) { return scanSession(r) })
			return err
		})
	})
	if err != nil {
		return nil, err
	}
	if out == nil {
		out = []store.Session{}
	}
	return out, nil
}

// Ban marks the user banned and revokes its active sessions (ReasonBan)
// in one transaction; see store.Store.
func (s *Store) Ban(ctx context.Context, app string, userID uint64, reason string, now time.Time) (store.User, []store.Session, error) {
	if now.IsZero() {
		return store.User{}, nil, errors.New("banning user: zero time")
	}
	if !validText(reason) {
		return store.User{}, nil, errors.New("banning user: invalid reason")
	}
	now = norm(now)
	var (
		u       store.User
		revoked []store.Session
	)
	err := s.inTx(ctx, "banning user", func(ctx context.Context, tx pgx.Tx) error {
		if !validKey(app) || userID == 0 || userID > maxID {
			return store.ErrNotFound
		}
		// The user's gate, exclusively: logins that have it shared finish
		// first, and later ones wait for the ban (see userGate).
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(`+userGate("$1::text", "$2::bigint")+`)`, app, int64(userID)); err != nil {
			return fmt.Errorf("waiting for the user's logins: %w", err)
		}
		var err error
		u, err = scanUser(tx.QueryRow(ctx, `UPDATE wechat_auth_users u SET banned = true, ban_reason = $3, updated_at = $4
			WHERE app_id = $1 AND id = $2 RETURNING `+userColumns, app, int64(userID), reason, now))
		if err != nil {
			return fmt.Errorf("user %d: %w", userID, err)
		}
		revoked, err = revokeUserTx(ctx, tx, app, userID, store.ReasonBan, now)
		return err
	})
	if err != nil {
		return store.User{}, nil, err
	}
	return u, revoked, nil
}

// Unban lifts a ban (idempotent).
func (s *Store) Unban(ctx context.Context, app string, userID uint64, now time.Time) (store.User, error) {
	if now.IsZero() {
		return store.User{}, errors.New("unbanning user: zero time")
	}
	now = norm(now)
	var u store.User
	err := s.inTx(ctx, "unbanning user", func(ctx context.Context, tx pgx.Tx) error {
		if !validKey(app) || userID == 0 || userID > maxID {
			return store.ErrNotFound
		}
		var err error
		u, err = scanUser(tx.QueryRow(ctx, `UPDATE wechat_auth_users u SET banned = false, ban_reason = '',
			updated_at = CASE WHEN banned THEN $3 ELSE updated_at END
			WHERE app_id = $1 AND id = $2 RETURNING `+userColumns, app, int64(userID), now))
		if err != nil {
			return fmt.Errorf("user %d: %w", userID, err)
		}
		return nil
	})
	if err != nil {
		return store.User{}, err
	}
	return u, nil
}

// Stats counts the app's users and its sessions neither revoked nor
// expired at now.
func (s *Store) Stats(ctx context.Context, app string, now time.Time) (store.Stats, error) {
	var st store.Stats
	err := s.call(ctx, "counting users and sessions", func(ctx context.Context) error {
		if !validKey(app) {
			return nil
		}
		return s.pool.QueryRow(ctx, `SELECT
			(SELECT count(*) FROM wechat_auth_users WHERE app_id = $1),
			(SELECT count(*) FROM wechat_auth_sessions WHERE app_id = $1 AND revoked_at IS NULL AND expires_at > $2)`,
			app, norm(now)).Scan(&st.Users, &st.ActiveSessions)
	})
	if err != nil {
		return store.Stats{}, err
	}
	return st, nil
}
