package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/wxauth/caddy-wechat-auth/store"
)

// Export calls fn with every record of app from one consistent snapshot:
// its secrets (by name), then its users (by id), then the openids linked
// to a user besides its own (by openid, bytewise), then its avatars (by
// hash, each with its users), then its sessions
// (oldest first) each followed by its refresh tokens (oldest first). Sealed
// session keys are exported as stored. An error from fn stops the export
// and is returned wrapped. Export is bounded by ctx only, not by the
// store's per-call timeout, since fn may take its time.
func (s *Store) Export(ctx context.Context, app string, fn func(store.Record) error) error {
	if fn == nil {
		return errors.New("exporting app: nil function")
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("exporting app: %w", err)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return fmt.Errorf("exporting app: %w", store.ErrClosed)
	}
	if !validKey(app) {
		return nil
	}
	var fnErr error
	emit := func(r store.Record) error {
		if err := fn(r); err != nil {
			fnErr = err
			return err
		}
		return nil
	}
	opts := pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}
	err := pgx.BeginTxFunc(ctx, s.pool, opts, func(tx pgx.Tx) error {
		err := forEach(ctx, tx, `SELECT name, value FROM wechat_auth_secrets WHERE app_id = $1 ORDER BY name`, app,
			func(r pgx.Rows) error {
				var sr store.SecretRecord
				if err := r.Scan(&sr.Name, &sr.Value); err != nil {
					return err
				}
				return emit(store.Record{Secret: &sr})
			})
		if err != nil {
			return err
		}
		err = forEach(ctx, tx, `SELECT `+userColumns+` FROM wechat_auth_users u WHERE u.app_id = $1 ORDER BY u.id`, app,
			func(r pgx.Rows) error {
				u, err := scanUser(r)
				if err != nil {
					return err
				}
				return emit(store.Record{User: &u})
			})
		if err != nil {
			return err
		}
		err = forEach(ctx, tx, `SELECT o.openid, o.user_id FROM wechat_auth_openids o
			JOIN wechat_auth_users u ON u.app_id = o.app_id AND u.id = o.user_id
			WHERE o.app_id = $1 AND o.openid <> u.openid ORDER BY o.openid COLLATE "C"`, app,
			func(r pgx.Rows) error {
				var (
					o   store.OpenIDRecord
					uid int64
				)
				if err := r.Scan(&o.OpenID, &uid); err != nil {
					return err
				}
				o.UserID = uint64(uid)
				return emit(store.Record{OpenID: &o})
			})
		if err != nil {
			return err
		}
		if err := exportAvatars(ctx, tx, app, emit); err != nil {
			return err
		}
		last := ""
		return forEach(ctx, tx, `SELECT `+sessionColumns+`, `+tokenColumns+` FROM wechat_auth_sessions s
			LEFT JOIN wechat_auth_refresh_tokens t ON t.app_id = s.app_id AND t.session_id = s.id
			WHERE s.app_id = $1 ORDER BY s.created_at, s.id, t.issued_at, t.hash`, app,
			func(r pgx.Rows) error {
				sess, tok, err := scanSessionToken(r)
				if err != nil {
					return err
				}
				if sess.ID != last {
					last = sess.ID
					if err := emit(store.Record{Session: &sess}); err != nil {
						return err
					}
				}
				if tok == nil {
					return nil
				}
				return emit(store.Record{Token: tok})
			})
	})
	if fnErr != nil {
		return fmt.Errorf("exporting app: %w", fnErr)
	}
	if err != nil {
		return s.wrap(ctx, "exporting app", err)
	}
	return nil
}

// scanSessionTokenRow reads a row of sessionColumns then tokenColumns.
func scanSessionTokenRow(r pgx.Row) (store.Session, store.RefreshToken, error) {
	s, t, err := scanSessionToken(r)
	if err != nil || t == nil {
		return s, store.RefreshToken{}, err
	}
	return s, *t, nil
}

// scanSessionToken reads a row of sessionColumns then tokenColumns, the
// token part possibly NULL (a session without tokens).
func scanSessionToken(r pgx.Row) (store.Session, *store.RefreshToken, error) {
	var (
		s                         store.Session
		uid                       int64
		refreshed, revoked        pgtype.Timestamptz
		hash, child               []byte
		tsid, accessID            pgtype.Text
		issued, expires, accessAt pgtype.Timestamptz
		rotated                   pgtype.Timestamptz
	)
	err := r.Scan(&s.AppID, &s.ID, &uid, &s.OpenID, &s.UnionID, &s.SealedSessionKey,
		&s.CreatedAt, &s.ExpiresAt, &refreshed, &revoked, &s.RevokeReason,
		&hash, &tsid, &issued, &expires, &rotated, &child, &accessID, &accessAt)
	if err != nil {
		return s, nil, err
	}
	s.UserID = uint64(uid)
	s.CreatedAt, s.ExpiresAt = s.CreatedAt.UTC(), s.ExpiresAt.UTC()
	s.RefreshedAt, s.RevokedAt = fromTZ(refreshed), fromTZ(revoked)
	if len(s.SealedSessionKey) == 0 {
		s.SealedSessionKey = nil
	}
	if hash == nil {
		return s, nil, nil
	}
	t := &store.RefreshToken{
		SessionID:      tsid.String,
		IssuedAt:       fromTZ(issued),
		ExpiresAt:      fromTZ(expires),
		RotatedAt:      fromTZ(rotated),
		AccessID:       accessID.String,
		AccessIssuedAt: fromTZ(accessAt),
	}
	copy(t.Hash[:], hash)
	copy(t.Child[:], child)
	return s, t, nil
}

// forEach runs fn on every row of sql with the single argument arg.
func forEach(ctx context.Context, tx pgx.Tx, sql string, arg any, fn func(pgx.Rows) error) error {
	rows, err := tx.Query(ctx, sql, arg)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := fn(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

// importSet is a checked import: the records of each kind, in file order.
type importSet struct {
	secrets  []store.SecretRecord
	users    []store.User
	openids  []store.OpenIDRecord
	sessions []store.Session
	tokens   []store.RefreshToken
	avatars  []store.AvatarRecord
	maxID    uint64
}

// checkImport validates records for Import into app: exactly one field
// set per record, keys that the store can hold, records of app (an empty
// AppID means app), and no duplicates within the import itself (those are
// ErrConflict too; a linked openid may not repeat a user's openid).
func checkImport(app string, recs []store.Record) (importSet, error) {
	var (
		set      importSet
		users    = map[uint64]bool{}
		openids  = map[string]bool{}
		sessions = map[string]bool{}
		hashes   = map[[32]byte]bool{}
		secrets  = map[string]bool{}
	)
	ofApp := func(a string) bool { return a == "" || a == app }
	for i, r := range recs {
		n := 0
		for _, set := range []bool{r.Secret != nil, r.User != nil, r.OpenID != nil, r.Session != nil, r.Token != nil, r.Avatar != nil} {
			if set {
				n++
			}
		}
		if n != 1 {
			return set, fmt.Errorf("record %d: %w: a record holds exactly one of secret, user, openid, avatar, session, refresh_token", i+1, errInvalid)
		}
		switch {
		case r.Secret != nil:
			sr := *r.Secret
			switch {
			case !validKey(sr.Name) || len(sr.Value) == 0:
				return set, fmt.Errorf("record %d: %w", i+1, invalid("secret needs a name and a value"))
			case secrets[sr.Name]:
				return set, fmt.Errorf("record %d: secret %q twice: %w", i+1, sr.Name, store.ErrConflict)
			}
			secrets[sr.Name] = true
			set.secrets = append(set.secrets, sr)
		case r.User != nil:
			u := *r.User
			switch {
			case !ofApp(u.AppID):
				return set, fmt.Errorf("record %d: %w", i+1, invalid(fmt.Sprintf("user of app %q", u.AppID)))
			case u.ID == 0 || u.ID > maxID || !validKey(u.OpenID) || len(u.UnionID) > maxKeyLen:
				return set, fmt.Errorf("record %d: %w", i+1, invalid("user needs an id and an openid"))
			case !validText(u.UnionID) || !validText(u.Nickname) || !validText(u.AvatarURL) || !validText(u.Phone) || !validText(u.BanReason):
				return set, fmt.Errorf("record %d: %w", i+1, invalid("user text"))
			case users[u.ID] || openids[u.OpenID]:
				return set, fmt.Errorf("record %d: user %d twice: %w", i+1, u.ID, store.ErrConflict)
			}
			users[u.ID], openids[u.OpenID] = true, true
			u.AppID = app
			u.CreatedAt, u.UpdatedAt = norm(u.CreatedAt), norm(u.UpdatedAt)
			set.users = append(set.users, u)
			set.maxID = max(set.maxID, u.ID)
		case r.OpenID != nil:
			o := *r.OpenID
			switch {
			case !validKey(o.OpenID) || o.UserID == 0 || o.UserID > maxID:
				return set, fmt.Errorf("record %d: %w", i+1, invalid("linked openid needs an openid and a user id"))
			case !validText(o.OpenID):
				return set, fmt.Errorf("record %d: %w", i+1, invalid("linked openid text"))
			case openids[o.OpenID]:
				return set, fmt.Errorf("record %d: openid twice: %w", i+1, store.ErrConflict)
			}
			openids[o.OpenID] = true
			set.openids = append(set.openids, o)
		case r.Avatar != nil:
			if err := checkAvatarRecord(r.Avatar); err != nil {
				return set, fmt.Errorf("record %d: %w", i+1, err)
			}
			set.avatars = append(set.avatars, *r.Avatar)
		case r.Session != nil:
			sess := normSession(*r.Session)
			switch {
			case !ofApp(sess.AppID):
				return set, fmt.Errorf("record %d: %w", i+1, invalid(fmt.Sprintf("session of app %q", sess.AppID)))
			case !validKey(sess.ID) || sess.UserID == 0 || sess.UserID > maxID || sess.ExpiresAt.IsZero():
				return set, fmt.Errorf("record %d: %w", i+1, invalid("session needs an id, a user id and an expiry"))
			case !validText(sess.OpenID) || !validText(sess.UnionID) || !validText(sess.RevokeReason):
				return set, fmt.Errorf("record %d: %w", i+1, invalid("session text"))
			case sessions[sess.ID]:
				return set, fmt.Errorf("record %d: session %q twice: %w", i+1, sess.ID, store.ErrConflict)
			}
			sessions[sess.ID] = true
			sess.AppID = app
			set.sessions = append(set.sessions, sess)
		default:
			tok := normToken(*r.Token)
			switch {
			case tok.Hash == [32]byte{} || !validKey(tok.SessionID) || tok.ExpiresAt.IsZero():
				return set, fmt.Errorf("record %d: %w", i+1, invalid("refresh token needs a hash, a session and an expiry"))
			case !validText(tok.AccessID):
				return set, fmt.Errorf("record %d: %w", i+1, invalid("refresh token text"))
			case hashes[tok.Hash]:
				return set, fmt.Errorf("record %d: refresh token twice: %w", i+1, store.ErrConflict)
			}
			hashes[tok.Hash] = true
			set.tokens = append(set.tokens, tok)
		}
	}
	return set, nil
}

// Import writes records into app in one transaction, all or nothing; see
// store.Store. A record that collides with a stored one (user id, openid
// of a user or a linked openid, session id, refresh-token hash, secret
// name) fails the whole call with ErrConflict. A linked openid's user, a
// session's user and a token's session must be in the import or already
// stored. User ids are kept and later users get ids after the highest one.
// Imported revoked sessions are appended to the revocation feed, so
// running instances refuse their access tokens too.
func (s *Store) Import(ctx context.Context, app string, recs []store.Record) error {
	if !validKey(app) {
		return errors.New("importing records: invalid app")
	}
	set, err := checkImport(app, recs)
	if err != nil {
		return fmt.Errorf("importing records: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("importing records: %w", err)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return fmt.Errorf("importing records: %w", store.ErrClosed)
	}
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO wechat_auth_apps (app_id) VALUES ($1) ON CONFLICT DO NOTHING`, app); err != nil {
			return err
		}
		// Lock the app's id counter: no user is created while ids move.
		var last int64
		if err := tx.QueryRow(ctx, `SELECT last_user_id FROM wechat_auth_apps WHERE app_id = $1 FOR UPDATE`, app).Scan(&last); err != nil {
			return err
		}
		if err := copyRows(ctx, tx, "wechat_auth_secrets", []string{"app_id", "name", "value"}, len(set.secrets), func(i int) []any {
			sr := set.secrets[i]
			return []any{app, sr.Name, sr.Value}
		}); err != nil {
			return conflict("secret", err)
		}
		if err := copyRows(ctx, tx, "wechat_auth_users", []string{"app_id", "id", "openid", "unionid", "nickname", "avatar_url", "gender", "phone", "created_at", "updated_at", "banned", "ban_reason"}, len(set.users), func(i int) []any {
			u := set.users[i]
			return []any{app, int64(u.ID), u.OpenID, u.UnionID, u.Nickname, u.AvatarURL, u.Gender, u.Phone, u.CreatedAt, u.UpdatedAt, u.Banned, u.BanReason}
		}); err != nil {
			return conflict("user", err)
		}
		if err := copyRows(ctx, tx, "wechat_auth_openids", []string{"app_id", "openid", "user_id"}, len(set.users), func(i int) []any {
			return []any{app, set.users[i].OpenID, int64(set.users[i].ID)}
		}); err != nil {
			return conflict("user openid", err)
		}
		if err := copyRows(ctx, tx, "wechat_auth_openids", []string{"app_id", "openid", "user_id"}, len(set.openids), func(i int) []any {
			return []any{app, set.openids[i].OpenID, int64(set.openids[i].UserID)}
		}); err != nil {
			return conflict("linked openid", err)
		}
		for _, u := range set.users {
			if err := indexUnionID(ctx, tx, app, u.UnionID, u.ID); err != nil {
				return err
			}
		}
		if err := importAvatars(ctx, tx, app, set.avatars); err != nil {
			return err
		}
		if err := copyRows(ctx, tx, "wechat_auth_sessions", []string{"app_id", "id", "user_id", "openid", "unionid", "sealed_session_key", "created_at", "expires_at", "refreshed_at", "revoked_at", "revoke_reason"}, len(set.sessions), func(i int) []any {
			ss := set.sessions[i]
			return []any{app, ss.ID, int64(ss.UserID), ss.OpenID, ss.UnionID, ss.SealedSessionKey, ss.CreatedAt, ss.ExpiresAt, tz(ss.RefreshedAt), tz(ss.RevokedAt), ss.RevokeReason}
		}); err != nil {
			return conflict("session", err)
		}
		if err := copyRows(ctx, tx, "wechat_auth_refresh_tokens", []string{"app_id", "hash", "session_id", "issued_at", "expires_at", "rotated_at", "child", "access_id", "access_issued_at"}, len(set.tokens), func(i int) []any {
			t := set.tokens[i]
			return []any{app, t.Hash[:], t.SessionID, t.IssuedAt, t.ExpiresAt, tz(t.RotatedAt), hashArg(t.Child), t.AccessID, t.AccessIssuedAt}
		}); err != nil {
			return conflict("refresh token", err)
		}
		var revoked []store.Session
		for _, ss := range set.sessions {
			if ss.Revoked() {
				revoked = append(revoked, ss)
			}
		}
		if err := feedTx(ctx, tx, revoked); err != nil {
			return err
		}
		// Ids reserved by logins in flight may now belong to imported
		// users: drop the reservations (those logins start over).
		if _, err := tx.Exec(ctx, `DELETE FROM wechat_auth_id_reservations WHERE app_id = $1`, app); err != nil {
			return err
		}
		if int64(set.maxID) > last {
			if _, err := tx.Exec(ctx, `UPDATE wechat_auth_apps SET last_user_id = $2 WHERE app_id = $1`, app, int64(set.maxID)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return s.wrap(ctx, "importing records", err)
	}
	return nil
}

// copyRows bulk-inserts n rows built by row into table.
func copyRows(ctx context.Context, tx pgx.Tx, table string, cols []string, n int, row func(int) []any) error {
	if n == 0 {
		return nil
	}
	_, err := tx.CopyFrom(ctx, pgx.Identifier{table}, cols, pgx.CopyFromSlice(n, func(i int) ([]any, error) {
		return row(i), nil
	}))
	return err
}

// conflict maps a failed bulk insert of what: a unique violation is
// ErrConflict; a missing user or session (foreign key) is a refusal that
// names it.
func conflict(what string, err error) error {
	switch pgCode(err) {
	case "23505":
		return fmt.Errorf("a %s already exists: %w", what, store.ErrConflict)
	case "23503":
		return fmt.Errorf("%w: a %s refers to a user or session that is neither imported nor stored", errInvalid, what)
	}
	return err
}
