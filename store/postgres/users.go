package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/wxauth/caddy-wechat-auth/store"
)

// userColumns are the columns scanUser reads, in its order.
const userColumns = `u.app_id, u.id, u.openid, u.unionid, u.nickname, u.avatar_url, u.gender, u.phone,
	u.created_at, u.updated_at, u.banned, u.ban_reason`

// scanUser reads one row of userColumns.
func scanUser(row pgx.Row) (store.User, error) {
	var (
		u  store.User
		id int64
	)
	err := row.Scan(&u.AppID, &id, &u.OpenID, &u.UnionID, &u.Nickname, &u.AvatarURL, &u.Gender, &u.Phone,
		&u.CreatedAt, &u.UpdatedAt, &u.Banned, &u.BanReason)
	u.ID = uint64(id)
	u.CreatedAt, u.UpdatedAt = u.CreatedAt.UTC(), u.UpdatedAt.UTC()
	return u, err
}

// checkNewUser validates what a login knows about a user.
func checkNewUser(app string, nu store.NewUser) error {
	switch {
	case !validKey(app):
		return invalid("app")
	case !validKey(nu.OpenID):
		return invalid("openid")
	case len(nu.UnionID) > maxKeyLen || !validText(nu.UnionID):
		return invalid("unionid")
	case !validText(nu.Nickname) || !validText(nu.AvatarURL):
		return invalid("profile")
	}
	return nil
}

// loginUserTx is Login's user half inside a transaction: find the user by
// openid (filling in a new unionid), link by unionid when asked, or create
// it. Creating takes the app's row lock first and looks again, so
// concurrent first logins of one openid, in this process or another,
// create one user; the primary key on (app_id, openid) makes that a
// guarantee rather than a consequence of the lock.
func loginUserTx(ctx context.Context, tx pgx.Tx, app string, nu store.NewUser, now time.Time) (store.User, bool, error) {
	u, found, err := findLoginUser(ctx, tx, app, nu, now)
	if err != nil || found {
		return u, false, err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO wechat_auth_apps (app_id) VALUES ($1) ON CONFLICT DO NOTHING`, app); err != nil {
		return u, false, fmt.Errorf("registering app: %w", err)
	}
	var last int64
	if err := tx.QueryRow(ctx, `SELECT last_user_id FROM wechat_auth_apps WHERE app_id = $1 FOR UPDATE`, app).Scan(&last); err != nil {
		return u, false, fmt.Errorf("locking app: %w", err)
	}
	// Another creator may have committed while this one waited.
	if u, found, err = findLoginUser(ctx, tx, app, nu, now); err != nil || found {
		return u, false, err
	}
	// A login in flight may have reserved an id for this openid: take it
	// (that login then finds the user), else the next one.
	id := last + 1
	var reserved int64
	err = tx.QueryRow(ctx, `DELETE FROM wechat_auth_id_reservations WHERE app_id = $1 AND openid = $2 RETURNING user_id`,
		app, nu.OpenID).Scan(&reserved)
	switch {
	case err == nil:
		id = reserved
	case !errors.Is(err, pgx.ErrNoRows):
		return u, false, fmt.Errorf("reading id reservation: %w", err)
	}
	u = store.User{
		ID:        uint64(id),
		AppID:     app,
		OpenID:    nu.OpenID,
		UnionID:   nu.UnionID,
		Nickname:  nu.Nickname,
		AvatarURL: nu.AvatarURL,
		Gender:    nu.Gender,
		CreatedAt: now,
		UpdatedAt: now,
	}
	if err := insertUser(ctx, tx, &u); err != nil {
		return u, false, err
	}
	if id > last {
		if _, err := tx.Exec(ctx, `UPDATE wechat_auth_apps SET last_user_id = $2 WHERE app_id = $1`, app, id); err != nil {
			return u, false, fmt.Errorf("allocating user id: %w", err)
		}
	}
	return u, true, nil
}

// insertUser writes a new user with its openid and unionid index rows.
func insertUser(ctx context.Context, tx pgx.Tx, u *store.User) error {
	_, err := tx.Exec(ctx, `INSERT INTO wechat_auth_users
		(app_id, id, openid, unionid, nickname, avatar_url, gender, phone, created_at, updated_at, banned, ban_reason)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
		u.AppID, int64(u.ID), u.OpenID, u.UnionID, u.Nickname, u.AvatarURL, u.Gender, u.Phone,
		u.CreatedAt, u.UpdatedAt, u.Banned, u.BanReason)
	if err != nil {
		return fmt.Errorf("writing user: %w", err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO wechat_auth_openids (app_id, openid, user_id) VALUES ($1, $2, $3)`,
		u.AppID, u.OpenID, int64(u.ID)); err != nil {
		return fmt.Errorf("indexing openid: %w", err)
	}
	return indexUnionID(ctx, tx, u.AppID, u.UnionID, u.ID)
}

// indexUnionID points unionid at id unless it is empty or already taken.
func indexUnionID(ctx context.Context, tx pgx.Tx, app, unionID string, id uint64) error {
	if unionID == "" {
		return nil
	}
	if _, err := tx.Exec(ctx, `INSERT INTO wechat_auth_unionids (app_id, unionid, user_id) VALUES ($1, $2, $3)
		ON CONFLICT DO NOTHING`, app, unionID, int64(id)); err != nil {
		return fmt.Errorf("indexing unionid: %w", err)
	}
	return nil
}

// findLoginUser finds the user a login of nu names: by openid (giving it
// nu.UnionID when it has none), or, with LinkByUnionID, by unionid (then
// indexing the openid to it). found is false when a user must be created.
//
// The user found is locked (FOR SHARE) until the transaction ends, and
// read as committed once the lock is held, so a ban (which updates the
// user row) and the login run one after the other: a ban committed first
// is seen here (ErrBanned), and a ban that comes later waits for the
// login's commit and then revokes the session the login stored.
func findLoginUser(ctx context.Context, tx pgx.Tx, app string, nu store.NewUser, now time.Time) (u store.User, found bool, err error) {
	u, err = scanUser(tx.QueryRow(ctx, `SELECT `+userColumns+` FROM wechat_auth_openids o
		JOIN wechat_auth_users u ON u.app_id = o.app_id AND u.id = o.user_id
		WHERE o.app_id = $1 AND o.openid = $2 FOR SHARE OF u`, app, nu.OpenID))
	switch {
	case err == nil:
		if u.Banned {
			return u, false, fmt.Errorf("user %d: %w", u.ID, store.ErrBanned)
		}
		if u.UnionID != "" || nu.UnionID == "" {
			return u, true, nil
		}
		// Only the first login that knows the unionid fills it in.
		filled, err := scanUser(tx.QueryRow(ctx, `UPDATE wechat_auth_users u SET unionid = $3, updated_at = $4
			WHERE app_id = $1 AND id = $2 AND unionid = '' RETURNING `+userColumns,
			app, int64(u.ID), nu.UnionID, now))
		if errors.Is(err, pgx.ErrNoRows) { // someone else filled it in
			u, err = userByID(ctx, tx, app, u.ID)
			return u, err == nil, err
		}
		if err != nil {
			return u, false, fmt.Errorf("setting unionid: %w", err)
		}
		u = filled
		return u, true, indexUnionID(ctx, tx, app, u.UnionID, u.ID)
	case !errors.Is(err, pgx.ErrNoRows):
		return u, false, fmt.Errorf("looking up openid: %w", err)
	}
	if !nu.LinkByUnionID || nu.UnionID == "" {
		return u, false, nil
	}
	u, err = scanUser(tx.QueryRow(ctx, `SELECT `+userColumns+` FROM wechat_auth_unionids x
		JOIN wechat_auth_users u ON u.app_id = x.app_id AND u.id = x.user_id
		WHERE x.app_id = $1 AND x.unionid = $2 FOR SHARE OF u`, app, nu.UnionID))
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return u, false, nil
	case err != nil:
		return u, false, fmt.Errorf("looking up unionid: %w", err)
	case u.Banned:
		return u, false, fmt.Errorf("user %d: %w", u.ID, store.ErrBanned)
	}
	tag, err := tx.Exec(ctx, `INSERT INTO wechat_auth_openids (app_id, openid, user_id) VALUES ($1, $2, $3)
		ON CONFLICT DO NOTHING`, app, nu.OpenID, int64(u.ID))
	if err != nil {
		return u, false, fmt.Errorf("indexing openid: %w", err)
	}
	if tag.RowsAffected() == 0 {
		// A concurrent login indexed the openid first: use its user.
		u, err = scanUser(tx.QueryRow(ctx, `SELECT `+userColumns+` FROM wechat_auth_openids o
			JOIN wechat_auth_users u ON u.app_id = o.app_id AND u.id = o.user_id
			WHERE o.app_id = $1 AND o.openid = $2 FOR SHARE OF u`, app, nu.OpenID))
		if err != nil {
			return u, false, fmt.Errorf("looking up openid: %w", err)
		}
		if u.Banned {
			return u, false, fmt.Errorf("user %d: %w", u.ID, store.ErrBanned)
		}
	}
	return u, true, nil
}

// userByID reads the app's user id inside tx, locking it as a login does
// (see findLoginUser).
func userByID(ctx context.Context, tx pgx.Tx, app string, id uint64) (store.User, error) {
	return scanUser(tx.QueryRow(ctx, `SELECT `+userColumns+` FROM wechat_auth_users u WHERE u.app_id = $1 AND u.id = $2 FOR SHARE`, app, int64(id)))
}

// User returns the app's user by id.
func (s *Store) User(ctx context.Context, app string, id uint64) (store.User, error) {
	return s.queryUser(ctx, "looking up user", validKey(app) && id > 0 && id <= maxID,
		`SELECT `+userColumns+` FROM wechat_auth_users u WHERE u.app_id = $1 AND u.id = $2`, app, int64(id))
}

// UserByOpenID returns the app's user by openid.
func (s *Store) UserByOpenID(ctx context.Context, app, openID string) (store.User, error) {
	return s.queryUser(ctx, "looking up user by openid", validKey(app) && validKey(openID),
		`SELECT `+userColumns+` FROM wechat_auth_openids o JOIN wechat_auth_users u ON u.app_id = o.app_id AND u.id = o.user_id
		WHERE o.app_id = $1 AND o.openid = $2`, app, openID)
}

// UserByUnionID returns the app's user by unionid.
func (s *Store) UserByUnionID(ctx context.Context, app, unionID string) (store.User, error) {
	return s.queryUser(ctx, "looking up user by unionid", validKey(app) && validKey(unionID),
		`SELECT `+userColumns+` FROM wechat_auth_unionids x JOIN wechat_auth_users u ON u.app_id = x.app_id AND u.id = x.user_id
		WHERE x.app_id = $1 AND x.unionid = $2`, app, unionID)
}

// UserByPhone returns the app's user whose phone is phone, the lowest id
// when several share it.
func (s *Store) UserByPhone(ctx context.Context, app, phone string) (store.User, error) {
	return s.queryUser(ctx, "looking up user by phone", validKey(app) && phone != "" && validText(phone),
		`SELECT `+userColumns+` FROM wechat_auth_users u WHERE u.app_id = $1 AND u.phone = $2 ORDER BY u.id LIMIT 1`, app, phone)
}

// maxID is the largest user id PostgreSQL's bigint holds.
const maxID = 1<<63 - 1

// queryUser reads one user with sql; when valid is false the arguments
// cannot name a user and the answer is ErrNotFound without a query.
func (s *Store) queryUser(ctx context.Context, op string, valid bool, sql string, args ...any) (store.User, error) {
	var u store.User
	err := s.call(ctx, op, func(ctx context.Context) error {
		if !valid {
			return store.ErrNotFound
		}
		var err error
		u, err = scanUser(s.pool.QueryRow(ctx, sql, args...))
		return err
	})
	if err != nil {
		return store.User{}, err
	}
	return u, nil
}

// UpdateUser applies patch to the app's user id and returns the result. An
// empty patch changes nothing and returns the user as stored.
func (s *Store) UpdateUser(ctx context.Context, app string, id uint64, patch store.ProfilePatch, now time.Time) (store.User, error) {
	if patch.Nickname == nil && patch.AvatarURL == nil && patch.Gender == nil && patch.Phone == nil {
		return s.User(ctx, app, id)
	}
	for _, p := range []*string{patch.Nickname, patch.AvatarURL, patch.Phone} {
		if p != nil && !validText(*p) {
			return store.User{}, fmt.Errorf("updating user: %w", invalid("profile text"))
		}
	}
	var u store.User
	update := func(ctx context.Context, q interface {
		QueryRow(context.Context, string, ...any) pgx.Row
	}) error {
		if !validKey(app) || id == 0 || id > maxID {
			return store.ErrNotFound
		}
		var err error
		u, err = scanUser(q.QueryRow(ctx, `UPDATE wechat_auth_users u SET
			nickname = coalesce($3, nickname), avatar_url = coalesce($4, avatar_url),
			gender = coalesce($5, gender), phone = coalesce($6, phone), updated_at = $7
			WHERE app_id = $1 AND id = $2 RETURNING `+userColumns,
			app, int64(id), patch.Nickname, patch.AvatarURL, patch.Gender, patch.Phone, norm(now)))
		return err
	}
	var err error
	if patch.AvatarURL != nil {
		// A new avatar_url moves the user off its stored avatar (avatars.go).
		err = s.inTx(ctx, "updating user", func(ctx context.Context, tx pgx.Tx) error {
			if err := lockAvatars(ctx, tx, app); err != nil {
				return err
			}
			if err := update(ctx, tx); err != nil {
				return err
			}
			return releaseUserAvatar(ctx, tx, app, id)
		})
	} else {
		err = s.call(ctx, "updating user", func(ctx context.Context) error { return update(ctx, s.pool) })
	}
	if err != nil {
		return store.User{}, err
	}
	return u, nil
}

// norm drops the monotonic reading and sub-microsecond part of t (what
// PostgreSQL keeps) and puts it in UTC, so what a write returns equals
// what a later read returns.
func norm(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.Round(0).Truncate(time.Microsecond).UTC()
}
