package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/wxauth/caddy-wechat-auth/store"
)

// loginAttempts bounds how often Login starts over after losing a race
// to create the same user.
const loginAttempts = 3

// Login finds or creates the user and stores the session and its first
// token in one transaction, all or nothing; see store.Store. A banned
// user gets store.ErrBanned and nothing is written.
//
// A login holds the user's row locked FOR SHARE from reading it to its
// commit (logins of one user share that lock; a ban, which updates the
// row, waits for them or they for it), so a login never stores a live
// session for a user a committed ban has already swept. A returning
// login also holds the user's gate shared (see userGate), so that a ban
// queued behind logins in flight is not overtaken by new ones.
//
// The common cases cost one durable commit:
//   - a returning user: one statement (one round trip) finds and locks
//     the user by openid and inserts the session and its token;
//   - a new user: after that statement found no user, one pipelined
//     batch (one round trip) reserves an id for the openid in a short
//     transaction that commits without waiting for the disk, then creates
//     the user, its openid and unionid, the session and its token in one
//     statement (see loginNew). Concurrent first logins of one openid
//     share its reservation; the losers' statements fail on the primary
//     keys, roll back whole and start over as returning logins.
//
// An id is skipped only when a login fails between reserving it and
// committing (a crash, a lost connection). Linking by unionid, or giving
// an existing user its first unionid, takes the general path: one
// transaction of several statements.
func (s *Store) Login(ctx context.Context, app string, nu store.NewUser, sess store.Session, tok store.RefreshToken, now time.Time) (store.User, store.Session, bool, error) {
	fail := func(err error) (store.User, store.Session, bool, error) {
		return store.User{}, store.Session{}, false, fmt.Errorf("logging in: %w", err)
	}
	if sess.AppID == "" {
		sess.AppID = app
	}
	if sess.AppID != app {
		return fail(invalid("app"))
	}
	if err := checkNewUser(app, nu); err != nil {
		return fail(err)
	}
	if err := checkFirstToken(sess, tok); err != nil {
		return fail(err)
	}
	now = norm(now)
	sess, tok = normSession(sess), normToken(tok)
	if sess.ExpiresAt.IsZero() {
		sess.ExpiresAt = tok.ExpiresAt
	}
	var (
		u       store.User
		created bool
	)
	err := s.call(ctx, "logging in", func(ctx context.Context) error {
		for range loginAttempts {
			var (
				done bool
				err  error
			)
			u, done, err = s.loginReturning(ctx, app, nu, &sess, &tok)
			if err != nil || done {
				return err
			}
			if u.ID != 0 || (nu.LinkByUnionID && nu.UnionID != "") {
				// A user that needs its unionid, or a login that may
				// link by unionid: the general path.
				return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
					var err error
					if u, created, err = loginUserTx(ctx, tx, app, nu, now); err != nil {
						return err
					}
					if u.Banned {
						return fmt.Errorf("user %d: %w", u.ID, store.ErrBanned)
					}
					stored := sess
					stored.UserID, stored.OpenID, stored.UnionID = u.ID, nu.OpenID, u.UnionID
					t := tok
					return insertSession(ctx, tx, &stored, &t)
				})
			}
			id, nu2, err := s.loginNew(ctx, app, nu, &sess, &tok, now)
			switch {
			case constraint(err) == "wechat_auth_openids_pkey", constraint(err) == "wechat_auth_users_pkey":
				// Created meanwhile by another login: drop a reservation
				// left unused (best effort) and start over.
				_, _ = s.pool.Exec(ctx, `DELETE FROM wechat_auth_id_reservations
					WHERE app_id = $1 AND openid = $2 AND user_id = $3`, app, nu.OpenID, id)
				continue
			case constraint(err) == "wechat_auth_id_reservations_pkey":
				continue // reserved meanwhile by another login: use that
			case err != nil:
				return err
			case nu2 == nil:
				continue // created meanwhile by another login: start over
			}
			u, created = *nu2, true
			return nil
		}
		return errors.New("the user was created and gone again during the login; try again")
	})
	if err != nil {
		return store.User{}, store.Session{}, false, err
	}
	stored := sess
	stored.UserID, stored.OpenID, stored.UnionID = u.ID, nu.OpenID, u.UnionID
	return u, stored, created, nil
}

// loginReturning inserts the session and token of a returning user in one
// statement. done is true when it did; otherwise u is the user found
// (zero ID: none) that still needs the general path, or err is
// ErrBanned. The user row is locked (FOR SHARE) before banned is read,
// as findLoginUser does, so a ban and this login serialize. The login
// first takes the user's gate (see userGate) shared, so a ban waiting for
// the logins in flight is not starved by ever new ones.
func (s *Store) loginReturning(ctx context.Context, app string, nu store.NewUser, sess *store.Session, tok *store.RefreshToken) (u store.User, done bool, err error) {
	row := s.pool.QueryRow(ctx, `WITH u AS (
			SELECT `+userColumns+` FROM wechat_auth_openids o
			JOIN wechat_auth_users u ON u.app_id = o.app_id AND u.id = o.user_id
			WHERE o.app_id = $1 AND o.openid = $2
			AND pg_advisory_xact_lock_shared(`+userGate("$1", "o.user_id")+`) IS NOT NULL
			FOR SHARE OF u
		), s AS (
			INSERT INTO wechat_auth_sessions (app_id, id, user_id, openid, unionid, sealed_session_key, created_at, expires_at)
			SELECT $1, $3, u.id, $2, u.unionid, $4, $5, $6 FROM u
			WHERE NOT u.banned AND (u.unionid <> '' OR $7 = '')
			RETURNING id
		), t AS (
			INSERT INTO wechat_auth_refresh_tokens (app_id, hash, session_id, issued_at, expires_at, access_id, access_issued_at)
			SELECT $1, $8, s.id, $9, $10, $11, $12 FROM s
		)
		SELECT `+userColumns+`, EXISTS (SELECT 1 FROM s) FROM u`,
		app, nu.OpenID, sess.ID, sess.SealedSessionKey, sess.CreatedAt, sess.ExpiresAt, nu.UnionID,
		tok.Hash[:], tok.IssuedAt, tok.ExpiresAt, tok.AccessID, tok.AccessIssuedAt)
	var id int64
	err = row.Scan(&u.AppID, &id, &u.OpenID, &u.UnionID, &u.Nickname, &u.AvatarURL, &u.Gender, &u.Phone,
		&u.CreatedAt, &u.UpdatedAt, &u.Banned, &u.BanReason, &done)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return store.User{}, false, nil
	case err != nil:
		return store.User{}, false, sessionInsertError(err, sess.ID)
	}
	u.ID = uint64(id)
	u.CreatedAt, u.UpdatedAt = u.CreatedAt.UTC(), u.UpdatedAt.UTC()
	if u.Banned {
		return store.User{}, false, fmt.Errorf("user %d: %w", u.ID, store.ErrBanned)
	}
	return u, done, nil
}

// loginNew creates the user of nu with its session and token, in one
// pipelined batch of two transactions:
//
//   - the first reserves an id for the openid, unless a user or a
//     reservation has it already: it bumps the app's counter and commits
//     without waiting for the disk (it becomes durable with the second's
//     commit, which flushes the log past it), so the counter's row lock is
//     never held across a flush;
//   - the second, a durable one-statement transaction, creates the user
//     with the reserved id, its openid and unionid, the session and its
//     token, and drops the reservation.
//
// u is nil when no user was created because a user has the openid by now
// (no reservation was made). id is the id reserved, 0 when none was read.
// Concurrent first logins of one openid share its reservation: the
// losers' statements fail on the primary keys, roll back whole, and the
// caller starts over.
func (s *Store) loginNew(ctx context.Context, app string, nu store.NewUser, sess *store.Session, tok *store.RefreshToken, now time.Time) (id int64, u *store.User, err error) {
	var b pgx.Batch
	b.Queue(`BEGIN`)
	b.Queue(`SET LOCAL synchronous_commit = off`)
	// Take the app's counter lock first, so that the next statement, which
	// reads as of its own start, sees every login that reserved or
	// created a user before the lock was released to this one.
	b.Queue(`INSERT INTO wechat_auth_apps (app_id) VALUES ($1) ON CONFLICT DO NOTHING`, app)
	b.Queue(`SELECT 1 FROM wechat_auth_apps WHERE app_id = $1 FOR UPDATE`, app)
	b.Queue(`WITH r AS (
			SELECT user_id FROM wechat_auth_id_reservations WHERE app_id = $1 AND openid = $2
		), c AS (
			INSERT INTO wechat_auth_apps AS a (app_id, last_user_id)
			SELECT $1, 1 WHERE NOT EXISTS (SELECT 1 FROM r)
			AND NOT EXISTS (SELECT 1 FROM wechat_auth_openids WHERE app_id = $1 AND openid = $2)
			ON CONFLICT (app_id) DO UPDATE SET last_user_id = a.last_user_id + 1
			RETURNING last_user_id
		), n AS (
			INSERT INTO wechat_auth_id_reservations (app_id, openid, user_id)
			SELECT $1, $2, last_user_id FROM c
			RETURNING user_id
		)
		SELECT user_id FROM r UNION ALL SELECT user_id FROM n`, app, nu.OpenID).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			if err := rows.Scan(&id); err != nil {
				return err
			}
		}
		return rows.Err()
	})
	b.Queue(`COMMIT`)
	var created store.User
	found := false
	b.Queue(`WITH r AS (
			SELECT user_id FROM wechat_auth_id_reservations WHERE app_id = $1 AND openid = $2
		), c AS (
			DELETE FROM wechat_auth_id_reservations WHERE app_id = $1 AND openid = $2
		), u AS (
			INSERT INTO wechat_auth_users AS u (app_id, id, openid, unionid, nickname, avatar_url, gender, created_at, updated_at)
			SELECT $1, r.user_id, $2, $3, $4, $5, $6, $7, $7 FROM r
			RETURNING `+userColumns+`
		), o AS (
			INSERT INTO wechat_auth_openids (app_id, openid, user_id) SELECT $1, $2, u.id FROM u
		), x AS (
			INSERT INTO wechat_auth_unionids (app_id, unionid, user_id) SELECT $1, $3, u.id FROM u
			WHERE $3 <> '' ON CONFLICT DO NOTHING
		), s AS (
			INSERT INTO wechat_auth_sessions (app_id, id, user_id, openid, unionid, sealed_session_key, created_at, expires_at)
			SELECT $1, $8, u.id, $2, $3, $9, $10, $11 FROM u
			RETURNING id
		), t AS (
			INSERT INTO wechat_auth_refresh_tokens (app_id, hash, session_id, issued_at, expires_at, access_id, access_issued_at)
			SELECT $1, $12, s.id, $13, $14, $15, $16 FROM s
		)
		SELECT * FROM u`,
		app, nu.OpenID, nu.UnionID, nu.Nickname, nu.AvatarURL, nu.Gender, now,
		sess.ID, sess.SealedSessionKey, sess.CreatedAt, sess.ExpiresAt,
		tok.Hash[:], tok.IssuedAt, tok.ExpiresAt, tok.AccessID, tok.AccessIssuedAt).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var err error
			if created, err = scanUser(rows); err != nil {
				return err
			}
			found = true
		}
		return rows.Err()
	})
	err = s.pool.SendBatch(ctx, &b).Close()
	switch constraint(err) {
	case "":
	case "wechat_auth_openids_pkey", "wechat_auth_users_pkey", "wechat_auth_id_reservations_pkey":
		return id, nil, err
	default:
		return id, nil, sessionInsertError(err, sess.ID)
	}
	if err != nil {
		return id, nil, fmt.Errorf("creating user: %w", err)
	}
	if !found {
		return id, nil, nil
	}
	return id, &created, nil
}

// sessionInsertError maps a failed session or token insert: a taken
// session id or token hash is errDuplicate.
func sessionInsertError(err error, sid string) error {
	switch constraint(err) {
	case "wechat_auth_sessions_pkey":
		return fmt.Errorf("session %q: %w", sid, errDuplicate)
	case "wechat_auth_refresh_tokens_pkey":
		return fmt.Errorf("refresh token: %w", errDuplicate)
	}
	return err
}

// constraint is the name of the constraint a server error violated, or
// "".
func constraint(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.ConstraintName
	}
	return ""
}

// userGate is the SQL expression of the advisory lock key of the app's
// user id (both SQL expressions). A login holds it shared and a ban
// exclusively: PostgreSQL queues a shared request behind a waiting
// exclusive one, which row locks do not (a row share-locked by one login
// after another would keep a ban's update waiting as long as logins of
// the user overlap). Two users sharing a key only wait for each other
// now and then.
func userGate(app, id string) string {
	return "hashtextextended(" + app + " || '/' || " + id + ", 2003792232)"
}
