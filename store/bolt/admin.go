package bolt

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"time"

	"go.etcd.io/bbolt"

	"github.com/wxauth/caddy-wechat-auth/store"
)

// maxBanReason bounds the reason stored with a ban.
const maxBanReason = 1024

// UserSessions lists the sessions of the app's user userID, newest first
// (ties broken by session id), revoked ones included until Prune removes
// them. An unknown user is ErrNotFound.
func (s *Store) UserSessions(ctx context.Context, app string, userID uint64) ([]store.Session, error) {
	return readIn(s, ctx, "listing user sessions", app, func(b *appBuckets) ([]store.Session, error) {
		if userID == 0 || b.users.Get(idKey(userID)) == nil {
			return nil, fmt.Errorf("user %d of app %q: %w", userID, app, store.ErrNotFound)
		}
		out := []store.Session{}
		prefix := idKey(userID)
		c := b.allSessions.Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			sess, err := getSession(b, string(k[len(prefix):]))
			if err != nil {
				return nil, fmt.Errorf("session indexed by user: %w: %w", errCorrupt, err)
			}
			out = append(out, sess)
		}
		sort.Slice(out, func(i, j int) bool {
			if !out[i].CreatedAt.Equal(out[j].CreatedAt) {
				return out[i].CreatedAt.After(out[j].CreatedAt)
			}
			return out[i].ID < out[j].ID
		})
		return out, nil
	})
}

// Ban marks the app's user banned with reason and revokes every active
// session of the user (reason store.ReasonBan) in one durable write. It
// returns the user and the sessions it revoked now, in session id order.
func (s *Store) Ban(ctx context.Context, app string, userID uint64, reason string, now time.Time) (store.User, []store.Session, error) {
	switch {
	case now.IsZero():
		return store.User{}, nil, errors.New("banning user: zero time")
	case len(reason) > maxBanReason:
		return store.User{}, nil, fmt.Errorf("banning user: reason longer than %d bytes", maxBanReason)
	}
	now = now.UTC()
	type result struct {
		u       store.User
		revoked []store.Session
	}
	res, err := writeIn(s, ctx, "banning user", app, func(b *appBuckets) (result, error, error) {
		u, refused, err := readUserForWrite(b, userID)
		if refused != nil || err != nil {
			return result{}, refused, err
		}
		if !u.Banned || u.BanReason != reason {
			u.Banned, u.BanReason, u.UpdatedAt = true, reason, now
			if err := putUser(b, &u); err != nil {
				return result{}, nil, err
			}
		}
		revoked, err := revokeActiveSessions(b, userID, store.ReasonBan, now)
		return result{u, revoked}, nil, err
	})
	return res.u, res.revoked, err
}

// Unban lifts the ban of the app's user userID; unbanning a user who is
// not banned changes nothing.
func (s *Store) Unban(ctx context.Context, app string, userID uint64, now time.Time) (store.User, error) {
	if now.IsZero() {
		return store.User{}, errors.New("unbanning user: zero time")
	}
	now = now.UTC()
	return writeIn(s, ctx, "unbanning user", app, func(b *appBuckets) (store.User, error, error) {
		u, refused, err := readUserForWrite(b, userID)
		if refused != nil || err != nil || !u.Banned {
			return u, refused, err
		}
		u.Banned, u.BanReason, u.UpdatedAt = false, "", now
		return u, nil, putUser(b, &u)
	})
}

// readUserForWrite reads a user inside a write: an unknown user is a
// refusal (ErrNotFound), an undecodable one a failure.
func readUserForWrite(b *appBuckets, userID uint64) (u store.User, refused, err error) {
	k := userKey(userID)
	if k == nil || b.users.Get(k) == nil {
		return u, fmt.Errorf("user %d of app %q: %w", userID, b.name, store.ErrNotFound), nil
	}
	u, err = getUserByKey(b, k)
	return u, nil, err
}

// revokeActiveSessions revokes every active session of a user with reason
// and returns them in session id order.
func revokeActiveSessions(b *appBuckets, userID uint64, reason string, now time.Time) ([]store.Session, error) {
	// Collect first: revoking deletes from the index being scanned.
	var ids []string
	prefix := idKey(userID)
	c := b.userSessions.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		ids = append(ids, string(k[len(prefix):]))
	}
	var revoked []store.Session
	for _, id := range ids {
		sess, err := getSession(b, id)
		if err != nil {
			return nil, fmt.Errorf("session indexed by user: %w: %w", errCorrupt, err)
		}
		if sess.Revoked() {
			continue
		}
		if err := revokeSession(b, &sess, reason, now); err != nil {
			return nil, err
		}
		revoked = append(revoked, sess)
	}
	return revoked, nil
}

// Stats counts the app's users (a stored counter: one read) and its
// sessions that are neither revoked nor expired at now (a scan of the
// active-session index, decoding only sessions already past their expiry
// and not yet pruned). An app without data has zero of both.
func (s *Store) Stats(ctx context.Context, app string, now time.Time) (store.Stats, error) {
	if err := s.enter(ctx); err != nil {
		return store.Stats{}, fmt.Errorf("counting: %w", err)
	}
	defer s.mu.RUnlock()
	var st store.Stats
	err := s.view(func(tx *bbolt.Tx) error {
		b, err := readApp(tx, app)
		if err != nil || b == nil {
			return err
		}
		users, err := userCount(b)
		if err != nil {
			return err
		}
		st.Users = int64(users)
		c := b.userSessions.Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			st.ActiveSessions++
		}
		// Active sessions that expired but are not pruned yet.
		end := appendTimeKey(nil, now.UTC())
		ec := b.expSessions.Cursor()
		for k, _ := ec.First(); k != nil; k, _ = ec.Next() {
			if len(k) <= timeKeyLen {
				return fmt.Errorf("session expiry index entry: %w", errCorrupt)
			}
			if bytes.Compare(k[:timeKeyLen], end) > 0 {
				break
			}
			sess, err := getSession(b, string(k[timeKeyLen:]))
			if isNotFound(err) {
				continue
			}
			if err != nil {
				return err
			}
			if !sess.Revoked() {
				st.ActiveSessions--
			}
		}
		return nil
	})
	if err != nil {
		return store.Stats{}, fmt.Errorf("counting: %w", err)
	}
	return st, nil
}

// Backup writes a consistent snapshot of the whole database file to w
// from one read transaction, so logins and refreshes go on while it runs,
// and returns the bytes written. The snapshot is a bbolt file that Open
// (or any bbolt tool) opens as is. Cancelling ctx stops the copy.
//
// While the snapshot is written, a write that needs the file to grow
// waits for it to finish (bbolt cannot remap under an open read
// transaction); a write that fits in the current file does not.
func (s *Store) Backup(ctx context.Context, w io.Writer) (int64, error) {
	if err := s.enter(ctx); err != nil {
		return 0, fmt.Errorf("backing up: %w", err)
	}
	defer s.mu.RUnlock()
	var n int64
	err := s.view(func(tx *bbolt.Tx) error {
		var err error
		n, err = tx.WriteTo(ctxWriter{ctx, w})
		return err
	})
	if err != nil {
		return n, fmt.Errorf("backing up: %w", err)
	}
	return n, nil
}

// ctxWriter fails writes once its context is done.
type ctxWriter struct {
	ctx context.Context
	w   io.Writer
}

func (c ctxWriter) Write(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.w.Write(p)
}

// Interface guard.
var _ store.Backuper = (*Store)(nil)
