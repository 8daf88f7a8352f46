package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"time"

	"go.etcd.io/bbolt"

	"github.com/wxauth/caddy-wechat-auth/store"
)

// Avatar buckets, nested in an app's bucket. They are created by the first
// write that needs them, so a file written before avatars existed opens
// unchanged (no format version step): a read of an app without them finds
// no avatars.
var (
	// bucketAvatars: hash (32) -> len(content type) (1) || content type || data.
	bucketAvatars = []byte("avatars")
	// bucketUserAvatar: user id (8) -> hash (32) of the user's avatar.
	bucketUserAvatar = []byte("user_avatar")
	// bucketAvatarUsers: hash (32) || user id (8) -> empty; the users of
	// an avatar, so deleting the last reference finds it cheaply.
	bucketAvatarUsers = []byte("avatar_users")
)

// avatarBuckets are the avatar buckets of one app.
type avatarBuckets struct {
	blobs, userAvatar, avatarUsers *bbolt.Bucket
}

// avatarsOf returns the app's avatar buckets. With create (the tx must be
// writable) missing buckets are created; without, it returns nil when the
// app has never stored an avatar.
func avatarsOf(b *appBuckets, create bool) (*avatarBuckets, error) {
	if b.root == nil {
		return nil, fmt.Errorf("app %q has no root bucket: %w", b.name, errCorrupt)
	}
	names := [][]byte{bucketAvatars, bucketUserAvatar, bucketAvatarUsers}
	var bs [3]*bbolt.Bucket
	for i, n := range names {
		if create {
			var err error
			if bs[i], err = b.root.CreateBucketIfNotExists(n); err != nil {
				return nil, fmt.Errorf("creating bucket %q of app %q: %w", n, b.name, err)
			}
		} else if bs[i] = b.root.Bucket(n); bs[i] == nil {
			return nil, nil
		}
	}
	return &avatarBuckets{blobs: bs[0], userAvatar: bs[1], avatarUsers: bs[2]}, nil
}

// hashKey decodes an avatar hash (64 hex digits) into its 32-byte key.
func hashKey(h string) ([]byte, bool) {
	if !store.ValidAvatarHash(h) {
		return nil, false
	}
	k, err := hex.DecodeString(h)
	return k, err == nil
}

func encodeAvatar(a *store.Avatar) []byte {
	v := make([]byte, 0, 1+len(a.ContentType)+len(a.Data))
	v = append(v, byte(len(a.ContentType)))
	v = append(v, a.ContentType...)
	return append(v, a.Data...)
}

func decodeAvatar(k, v []byte) (store.Avatar, error) {
	if len(v) < 1 || len(v) < 1+int(v[0]) {
		return store.Avatar{}, fmt.Errorf("avatar record of %d bytes: %w", len(v), errCorrupt)
	}
	n := 1 + int(v[0])
	return store.Avatar{
		Hash:        hex.EncodeToString(k),
		ContentType: string(v[1:n]),
		Data:        bytes.Clone(v[n:]),
	}, nil
}

// SetAvatar stores a when new and makes it the user's avatar, with
// avatarURL as AvatarURL, in one durable write; the user's previous avatar
// is deleted in that write when no other user refers to it.
func (s *Store) SetAvatar(ctx context.Context, app string, userID uint64, a store.Avatar, avatarURL string, now time.Time) (store.User, error) {
	const op = "setting avatar"
	if err := a.Check(); err != nil {
		return store.User{}, fmt.Errorf("%s: %w", op, err)
	}
	key, _ := hashKey(a.Hash)
	now = now.UTC()
	return writeIn(s, ctx, op, app, func(b *appBuckets) (store.User, error, error) {
		uk := idKey(userID)
		raw := b.users.Get(uk)
		if raw == nil {
			return store.User{}, store.ErrNotFound, nil
		}
		u, err := decodeUser(app, userID, raw)
		if err != nil {
			return u, nil, err
		}
		ab, err := avatarsOf(b, true)
		if err != nil {
			return u, nil, err
		}
		if ab.blobs.Get(key) == nil {
			if err := ab.blobs.Put(key, encodeAvatar(&a)); err != nil {
				return u, nil, fmt.Errorf("writing avatar: %w", err)
			}
		}
		if err := releaseAvatar(ab, userID, key); err != nil {
			return u, nil, err
		}
		if err := ab.userAvatar.Put(uk, key); err != nil {
			return u, nil, fmt.Errorf("indexing the user's avatar: %w", err)
		}
		if err := ab.avatarUsers.Put(append(bytes.Clone(key), uk...), nil); err != nil {
			return u, nil, fmt.Errorf("indexing the avatar's users: %w", err)
		}
		u.AvatarURL = avatarURL
		u.UpdatedAt = now
		return u, nil, putUser(b, &u)
	})
}

// releaseAvatar drops the user's reference to its stored avatar, unless
// that avatar is keep, and deletes the avatar when no user refers to it
// any more. keep may be nil.
func releaseAvatar(ab *avatarBuckets, userID uint64, keep []byte) error {
	uk := idKey(userID)
	old := ab.userAvatar.Get(uk)
	if old == nil || bytes.Equal(old, keep) {
		return nil
	}
	old = bytes.Clone(old)
	if err := ab.userAvatar.Delete(uk); err != nil {
		return fmt.Errorf("unindexing the user's avatar: %w", err)
	}
	if err := ab.avatarUsers.Delete(append(bytes.Clone(old), uk...)); err != nil {
		return fmt.Errorf("unindexing the avatar's user: %w", err)
	}
	if k, _ := ab.avatarUsers.Cursor().Seek(old); k != nil && bytes.HasPrefix(k, old) {
		return nil // another user still shows it
	}
	if err := ab.blobs.Delete(old); err != nil {
		return fmt.Errorf("deleting an avatar no one uses: %w", err)
	}
	return nil
}

// releaseUserAvatar is releaseAvatar for a write that moves the user's
// AvatarURL elsewhere (UpdateUser); apps that never stored an avatar have
// nothing to release.
func releaseUserAvatar(b *appBuckets, userID uint64) error {
	if b.root == nil || b.root.Bucket(bucketUserAvatar) == nil {
		return nil
	}
	ab, err := avatarsOf(b, true)
	if err != nil {
		return err
	}
	return releaseAvatar(ab, userID, nil)
}

// Avatar returns the app's avatar by hash (store.ErrNotFound).
func (s *Store) Avatar(ctx context.Context, app, hash string) (store.Avatar, error) {
	key, ok := hashKey(hash)
	if !ok {
		return store.Avatar{}, fmt.Errorf("reading avatar: %w", store.ErrNotFound)
	}
	return readIn(s, ctx, "reading avatar", app, func(b *appBuckets) (store.Avatar, error) {
		ab, err := avatarsOf(b, false)
		if err != nil {
			return store.Avatar{}, err
		}
		var v []byte
		if ab != nil {
			v = ab.blobs.Get(key)
		}
		if v == nil {
			return store.Avatar{}, store.ErrNotFound
		}
		return decodeAvatar(key, v)
	})
}

// exportAvatars calls fn with every avatar of the app and its users.
func exportAvatars(b *appBuckets, fn func(store.Record) error) error {
	ab, err := avatarsOf(b, false)
	if err != nil || ab == nil {
		return err
	}
	return ab.blobs.ForEach(func(k, v []byte) error {
		a, err := decodeAvatar(k, v)
		if err != nil {
			return err
		}
		rec := &store.AvatarRecord{Avatar: a, Users: []uint64{}}
		c := ab.avatarUsers.Cursor()
		for uk, _ := c.Seek(k); uk != nil && bytes.HasPrefix(uk, k); uk, _ = c.Next() {
			if len(uk) != len(k)+8 {
				return fmt.Errorf("avatar user index entry: %w", errCorrupt)
			}
			rec.Users = append(rec.Users, binary.BigEndian.Uint64(uk[len(k):]))
		}
		return fn(store.Record{Avatar: rec})
	})
}

// importAvatar writes an imported avatar and points its users at it. An
// avatar already stored under the hash is the same image and is kept; a
// user that already has a stored avatar is a conflict.
func importAvatar(b *appBuckets, r *store.AvatarRecord) error {
	key, _ := hashKey(r.Hash)
	ab, err := avatarsOf(b, true)
	if err != nil {
		return err
	}
	if ab.blobs.Get(key) == nil {
		if err := ab.blobs.Put(key, encodeAvatar(&r.Avatar)); err != nil {
			return fmt.Errorf("writing avatar: %w", err)
		}
	}
	for _, id := range r.Users {
		uk := idKey(id)
		if b.users.Get(uk) == nil {
			return fmt.Errorf("avatar: user %d is neither imported before it nor stored", id)
		}
		if ab.userAvatar.Get(uk) != nil {
			return fmt.Errorf("avatar of user %d: %w", id, store.ErrConflict)
		}
		if err := ab.userAvatar.Put(uk, key); err != nil {
			return fmt.Errorf("indexing the user's avatar: %w", err)
		}
		if err := ab.avatarUsers.Put(append(bytes.Clone(key), uk...), nil); err != nil {
			return fmt.Errorf("indexing the avatar's users: %w", err)
		}
	}
	return nil
}

// checkAvatarRecord validates an imported avatar before any write.
func checkAvatarRecord(r *store.AvatarRecord) string {
	if err := r.Check(); err != nil {
		return err.Error()
	}
	if len(r.Users) == 0 {
		return "an avatar needs the users whose avatar it is"
	}
	for _, id := range r.Users {
		if id == 0 {
			return "an avatar's user ids must be positive"
		}
	}
	return ""
}
