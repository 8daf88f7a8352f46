package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/wxauth/caddy-wechat-auth/store"
)

// SetAvatar stores a when new and makes it the user's avatar, with
// avatarURL as AvatarURL, in one transaction; the user's previous avatar
// is deleted in it when no other user refers to it.
//
// Concurrency: the app's avatar lock (lockAvatars) is taken first, then
// the user's row, so two uploads of one user run one after the other. The avatar's row is locked next (inserted, or
// updated in place): a transaction deleting it either finished first (the
// INSERT waits, then inserts it afresh) or waits for this one, and then
// its delete fails the foreign key, which deleteUnused absorbs (the avatar
// is in use again).
func (s *Store) SetAvatar(ctx context.Context, app string, userID uint64, a store.Avatar, avatarURL string, now time.Time) (store.User, error) {
	const op = "setting avatar"
	if err := a.Check(); err != nil {
		return store.User{}, fmt.Errorf("%s: %w", op, err)
	}
	if !validText(avatarURL) {
		return store.User{}, fmt.Errorf("%s: %w", op, invalid("avatar url"))
	}
	var u store.User
	err := s.inTx(ctx, op, func(ctx context.Context, tx pgx.Tx) error {
		if !validKey(app) || userID == 0 || userID > maxID {
			return store.ErrNotFound
		}
		if err := lockAvatars(ctx, tx, app); err != nil {
			return err
		}
		var locked int64
		if err := tx.QueryRow(ctx, `SELECT id FROM wechat_auth_users WHERE app_id = $1 AND id = $2 FOR UPDATE`, app, int64(userID)).Scan(&locked); err != nil {
			return err
		}
		var old string
		err := tx.QueryRow(ctx, `SELECT hash FROM wechat_auth_user_avatars WHERE app_id = $1 AND user_id = $2`, app, int64(userID)).Scan(&old)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		// Avatar changes of the app run one at a time (lockAvatars), so
		// the new avatar's row and the old one's are never locked in
		// opposite orders by two of them.
		if _, err := tx.Exec(ctx, `INSERT INTO wechat_auth_avatars AS a (app_id, hash, content_type, data, created_at)
			VALUES ($1, $2, $3, $4, $5) ON CONFLICT (app_id, hash) DO UPDATE SET created_at = a.created_at`,
			app, a.Hash, a.ContentType, a.Data, norm(now)); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO wechat_auth_user_avatars (app_id, user_id, hash) VALUES ($1, $2, $3)
			ON CONFLICT (app_id, user_id) DO UPDATE SET hash = EXCLUDED.hash`, app, int64(userID), a.Hash); err != nil {
			return err
		}
		if old != "" && old != a.Hash {
			if err := deleteUnused(ctx, tx, app, old); err != nil {
				return err
			}
		}
		u, err = scanUser(tx.QueryRow(ctx, `UPDATE wechat_auth_users u SET avatar_url = $3, updated_at = $4
			WHERE app_id = $1 AND id = $2 RETURNING `+userColumns, app, int64(userID), avatarURL, norm(now)))
		return err
	})
	if err != nil {
		return store.User{}, err
	}
	return u, nil
}

// lockAvatars takes the app's avatar lock for the rest of tx: the
// transactions that change which stored avatar a user shows (SetAvatar,
// and UpdateUser with an avatar_url) run one at a time per app, on every
// instance. Each of them creates or locks one avatar's row and deletes
// another's; run at once, two uploads swapping two shared avatars
// deadlocked (each held the row the other was deleting), and ordering the
// row locks does not help while a row can appear between the lock and
// the insert. Avatar changes are rare and quick beside the image decode
// before them, so the lock costs nothing noticeable. Take it before any
// user row, as both callers do.
func lockAvatars(ctx context.Context, tx pgx.Tx, app string) error {
	_, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('wechat_auth_avatars/' || $1, 0))`, app)
	return err
}

// releaseUserAvatar moves the user off its stored avatar (a write that
// gives the user another AvatarURL) and deletes that avatar when no other
// user refers to it.
func releaseUserAvatar(ctx context.Context, tx pgx.Tx, app string, userID uint64) error {
	var old string
	err := tx.QueryRow(ctx, `DELETE FROM wechat_auth_user_avatars WHERE app_id = $1 AND user_id = $2 RETURNING hash`, app, int64(userID)).Scan(&old)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		return err
	}
	return deleteUnused(ctx, tx, app, old)
}

// deleteUnused deletes the app's avatar hash unless a user refers to it.
// The delete runs in a savepoint: when a concurrent transaction has just
// committed a reference to it, the foreign key refuses the delete, and the
// avatar simply stays.
func deleteUnused(ctx context.Context, tx pgx.Tx, app, hash string) error {
	sp, err := tx.Begin(ctx)
	if err != nil {
		return err
	}
	_, err = sp.Exec(ctx, `DELETE FROM wechat_auth_avatars a WHERE a.app_id = $1 AND a.hash = $2
		AND NOT EXISTS (SELECT 1 FROM wechat_auth_user_avatars x WHERE x.app_id = $1 AND x.hash = $2)`, app, hash)
	if pgCode(err) == "23503" {
		return sp.Rollback(ctx)
	}
	if err != nil {
		_ = sp.Rollback(ctx)
		return err
	}
	return sp.Commit(ctx)
}

// Avatar returns the app's avatar by hash (store.ErrNotFound).
func (s *Store) Avatar(ctx context.Context, app, hash string) (store.Avatar, error) {
	a := store.Avatar{Hash: hash}
	err := s.call(ctx, "reading avatar", func(ctx context.Context) error {
		if !validKey(app) || !store.ValidAvatarHash(hash) {
			return store.ErrNotFound
		}
		return s.pool.QueryRow(ctx, `SELECT content_type, data FROM wechat_auth_avatars WHERE app_id = $1 AND hash = $2`,
			app, hash).Scan(&a.ContentType, &a.Data)
	})
	if err != nil {
		return store.Avatar{}, err
	}
	return a, nil
}

// exportAvatars emits every avatar of the app that a user refers to, with
// its users, by hash.
func exportAvatars(ctx context.Context, tx pgx.Tx, app string, emit func(store.Record) error) error {
	return forEach(ctx, tx, `SELECT a.hash, a.content_type, a.data, array_agg(x.user_id ORDER BY x.user_id)
		FROM wechat_auth_avatars a JOIN wechat_auth_user_avatars x ON x.app_id = a.app_id AND x.hash = a.hash
		WHERE a.app_id = $1 GROUP BY a.hash, a.content_type, a.data ORDER BY a.hash`, app,
		func(r pgx.Rows) error {
			var (
				rec store.AvatarRecord
				ids []int64
			)
			if err := r.Scan(&rec.Hash, &rec.ContentType, &rec.Data, &ids); err != nil {
				return err
			}
			for _, id := range ids {
				rec.Users = append(rec.Users, uint64(id))
			}
			return emit(store.Record{Avatar: &rec})
		})
}

// checkAvatarRecord validates an imported avatar before any write.
func checkAvatarRecord(r *store.AvatarRecord) error {
	if err := r.Check(); err != nil {
		return fmt.Errorf("%w: %v", errInvalid, err)
	}
	if len(r.Users) == 0 {
		return invalid("an avatar needs the users whose avatar it is")
	}
	for _, id := range r.Users {
		if id == 0 || id > maxID {
			return invalid("an avatar's user ids must be positive")
		}
	}
	return nil
}

// importAvatars writes imported avatars and points their users at them.
// An avatar already stored under a hash is the same image and is kept; a
// user that already has a stored avatar is a conflict.
func importAvatars(ctx context.Context, tx pgx.Tx, app string, recs []store.AvatarRecord) error {
	for _, r := range recs {
		if _, err := tx.Exec(ctx, `INSERT INTO wechat_auth_avatars (app_id, hash, content_type, data)
			VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING`, app, r.Hash, r.ContentType, r.Data); err != nil {
			return err
		}
		for _, id := range r.Users {
			if _, err := tx.Exec(ctx, `INSERT INTO wechat_auth_user_avatars (app_id, user_id, hash) VALUES ($1, $2, $3)`,
				app, int64(id), r.Hash); err != nil {
				return conflict("user avatar", err)
			}
		}
	}
	return nil
}
