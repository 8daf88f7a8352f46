package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/wxauth/caddy-wechat-auth/store"
)

// loginUserTx is Login's user half inside a write transaction on the app's
// buckets: find the user by openid (filling in a new unionid), link by
// unionid when asked, or create it. A banned user is refused with an
// error wrapping store.ErrBanned before anything is written.
func loginUserTx(b *appBuckets, app string, nu store.NewUser, now time.Time) (u store.User, created bool, err error) {
	openID := []byte(nu.OpenID)
	if id := b.openID.Get(openID); id != nil {
		if u, err = getUserByKey(b, id); err != nil {
			return u, false, err
		}
		if u.Banned {
			return store.User{}, false, fmt.Errorf("user %d: %w", u.ID, store.ErrBanned)
		}
		if u.UnionID != "" || nu.UnionID == "" {
			return u, false, nil
		}
		u.UnionID = nu.UnionID
		u.UpdatedAt = now
		if err := putUser(b, &u); err != nil {
			return u, false, err
		}
		return u, false, indexUnionID(b, u.UnionID, u.ID)
	}
	if nu.LinkByUnionID && nu.UnionID != "" {
		if id := b.unionID.Get([]byte(nu.UnionID)); id != nil {
			if u, err = getUserByKey(b, id); err != nil {
				return u, false, err
			}
			if u.Banned {
				return store.User{}, false, fmt.Errorf("user %d: %w", u.ID, store.ErrBanned)
			}
			if err := b.openID.Put(openID, idKey(u.ID)); err != nil {
				return u, false, fmt.Errorf("indexing openid: %w", err)
			}
			return u, false, nil
		}
	}
	id, err := b.users.NextSequence()
	if err != nil {
		return u, false, fmt.Errorf("allocating user id: %w", err)
	}
	u = store.User{
		ID:        id,
		AppID:     app,
		OpenID:    nu.OpenID,
		UnionID:   nu.UnionID,
		Nickname:  nu.Nickname,
		AvatarURL: nu.AvatarURL,
		Gender:    nu.Gender,
		CreatedAt: now,
		UpdatedAt: now,
	}
	if err := putUser(b, &u); err != nil {
		return u, false, err
	}
	if err := b.openID.Put(openID, idKey(id)); err != nil {
		return u, false, fmt.Errorf("indexing openid: %w", err)
	}
	return u, true, indexUnionID(b, u.UnionID, id)
}

// User returns the app's user by id.
func (s *Store) User(ctx context.Context, app string, id uint64) (store.User, error) {
	return s.lookupUser(ctx, "looking up user", app, func(*appBuckets) []byte { return userKey(id) })
}

// UserByOpenID returns the app's user by openid.
func (s *Store) UserByOpenID(ctx context.Context, app, openID string) (store.User, error) {
	return s.lookupUser(ctx, "looking up user by openid", app, func(b *appBuckets) []byte {
		if !validKey(openID) {
			return nil
		}
		return b.openID.Get([]byte(openID))
	})
}

// UserByUnionID returns the app's user by unionid.
func (s *Store) UserByUnionID(ctx context.Context, app, unionID string) (store.User, error) {
	return s.lookupUser(ctx, "looking up user by unionid", app, func(b *appBuckets) []byte {
		if !validKey(unionID) {
			return nil
		}
		return b.unionID.Get([]byte(unionID))
	})
}

// UserByPhone returns the app's user whose phone is phone; when several
// users share it, the one with the lowest id.
func (s *Store) UserByPhone(ctx context.Context, app, phone string) (store.User, error) {
	return s.lookupUser(ctx, "looking up user by phone", app, func(b *appBuckets) []byte {
		if phone == "" {
			return nil
		}
		prefix := phonePrefix(phone)
		k, _ := b.phone.Cursor().Seek(prefix)
		if k == nil || !bytes.HasPrefix(k, prefix) || len(k) != len(prefix)+8 {
			return nil
		}
		return k[len(prefix):]
	})
}

// userKey is the users-bucket key of id; nil (no user) for the zero id.
func userKey(id uint64) []byte {
	if id == 0 {
		return nil
	}
	return idKey(id)
}

// lookupUser reads the user whose id key find returns (nil: not found).
func (s *Store) lookupUser(ctx context.Context, op, app string, find func(*appBuckets) []byte) (store.User, error) {
	return readIn(s, ctx, op, app, func(b *appBuckets) (store.User, error) {
		id := find(b)
		if id == nil {
			return store.User{}, store.ErrNotFound
		}
		return getUserByKey(b, id)
	})
}

// UpdateUser applies patch to the app's user id and returns the result. An
// empty patch changes nothing and returns the user as stored.
func (s *Store) UpdateUser(ctx context.Context, app string, id uint64, patch store.ProfilePatch, now time.Time) (store.User, error) {
	if patch.Nickname == nil && patch.AvatarURL == nil && patch.Gender == nil && patch.Phone == nil {
		return s.lookupUser(ctx, "updating user", app, func(*appBuckets) []byte { return userKey(id) })
	}
	now = now.UTC()
	return writeIn(s, ctx, "updating user", app, func(b *appBuckets) (store.User, error, error) {
		var raw []byte
		if k := userKey(id); k != nil {
			raw = b.users.Get(k)
		}
		if raw == nil {
			return store.User{}, store.ErrNotFound, nil
		}
		u, err := decodeUser(app, id, raw)
		if err != nil {
			return u, nil, err
		}
		if patch.Nickname != nil {
			u.Nickname = *patch.Nickname
		}
		if patch.AvatarURL != nil {
			u.AvatarURL = *patch.AvatarURL
			if err := releaseUserAvatar(b, id); err != nil {
				return u, nil, err
			}
		}
		if patch.Gender != nil {
			u.Gender = *patch.Gender
		}
		if patch.Phone != nil {
			u.Phone = *patch.Phone
		}
		u.UpdatedAt = now
		return u, nil, putUser(b, &u)
	})
}

// getUserByKey reads the user whose 8-byte id key is k (ErrNotFound when
// no user has it).
func getUserByKey(b *appBuckets, k []byte) (store.User, error) {
	if len(k) != 8 {
		return store.User{}, fmt.Errorf("user id key of %d bytes: %w", len(k), errCorrupt)
	}
	id := binary.BigEndian.Uint64(k)
	raw := b.users.Get(k)
	if raw == nil {
		return store.User{}, fmt.Errorf("user %d of app %q: %w", id, b.name, store.ErrNotFound)
	}
	return decodeUser(b.name, id, raw)
}

// putUser writes a user record, keeping the phone index and the user
// counter in step with it: every path that writes a user goes through
// here.
func putUser(b *appBuckets, u *store.User) error {
	k := idKey(u.ID)
	oldPhone := ""
	if raw := b.users.Get(k); raw == nil {
		n, err := userCount(b)
		if err != nil {
			return err
		}
		if err := putUserCount(b, n+1); err != nil {
			return err
		}
	} else {
		old, err := decodeUser(b.name, u.ID, raw)
		if err != nil {
			return err
		}
		oldPhone = old.Phone
	}
	if err := b.users.Put(k, encodeUser(u)); err != nil {
		return fmt.Errorf("writing user %d: %w", u.ID, err)
	}
	if oldPhone == u.Phone {
		return nil
	}
	if oldPhone != "" {
		if err := b.phone.Delete(phoneKey(oldPhone, u.ID)); err != nil {
			return fmt.Errorf("unindexing phone: %w", err)
		}
	}
	if u.Phone != "" {
		if err := b.phone.Put(phoneKey(u.Phone, u.ID), nil); err != nil {
			return fmt.Errorf("indexing phone: %w", err)
		}
	}
	return nil
}

// indexUnionID points unionid at id unless it is empty or already taken:
// an index entry keeps pointing at the first user that had the unionid.
func indexUnionID(b *appBuckets, unionID string, id uint64) error {
	if unionID == "" {
		return nil
	}
	k := []byte(unionID)
	if b.unionID.Get(k) != nil {
		return nil
	}
	if err := b.unionID.Put(k, idKey(id)); err != nil {
		return fmt.Errorf("indexing unionid: %w", err)
	}
	return nil
}
