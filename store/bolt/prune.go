package bolt

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/bbolt"

	"github.com/wxauth/caddy-wechat-auth/store"
)

// pruneChunk bounds the records one Prune transaction deletes, so a large
// sweep never holds the writer lock (and delays logins) for long.
const pruneChunk = 1024

// Prune deletes, across all apps, sessions and refresh tokens that expired
// before now and sessions revoked before revokedBefore (with their
// tokens), and returns how many records it deleted (sessions plus tokens).
// It walks the expiry and revocation indexes, so its cost follows what it
// deletes, not the size of the store. It commits in chunks; if it fails or
// ctx is cancelled part-way, the chunks already committed stay deleted
// (each deletion is complete) and the count says how many.
func (s *Store) Prune(ctx context.Context, now, revokedBefore time.Time) (int, error) {
	if err := s.enter(ctx); err != nil {
		return 0, fmt.Errorf("pruning store: %w", err)
	}
	defer s.mu.RUnlock()
	nowKey := appendTimeKey(nil, now.UTC())
	revKey := appendTimeKey(nil, revokedBefore.UTC())

	total := 0
	for {
		if err := ctx.Err(); err != nil {
			return total, fmt.Errorf("pruning store: %w", err)
		}
		n := 0
		err := s.db.Update(func(tx *bbolt.Tx) error {
			n = 0
			apps, err := appNames(tx)
			if err != nil {
				return err
			}
			for _, app := range apps {
				b, err := readApp(tx, app)
				if err != nil {
					return err
				}
				if b == nil {
					continue
				}
				d, err := pruneApp(b, nowKey, revKey, pruneChunk-n)
				n += d
				if err != nil {
					return err
				}
				if n >= pruneChunk {
					break
				}
			}
			return nil
		})
		if err != nil {
			return total, fmt.Errorf("pruning store: %w", err)
		}
		total += n
		if n < pruneChunk {
			return total, nil
		}
	}
}

// pruneApp deletes up to about budget records of one app: expired
// sessions, then old revoked sessions, then expired tokens of live
// sessions. It returns how many it deleted.
func pruneApp(b *appBuckets, nowKey, revKey []byte, budget int) (int, error) {
	n := 0
	for _, phase := range []struct {
		index *bbolt.Bucket
		end   []byte
	}{
		{b.expSessions, nowKey}, // sessions that expired before now
		{b.revoked, revKey},     // sessions revoked before revokedBefore
	} {
		for _, k := range keysBefore(phase.index, phase.end, budget-n) {
			d, err := deleteSession(b, string(k[timeKeyLen:]))
			n += d
			if err != nil {
				return n, err
			}
			if d == 0 { // an entry without its session: drop it
				if err := phase.index.Delete(k); err != nil {
					return n, fmt.Errorf("dropping stale index entry: %w", err)
				}
			}
		}
		if n >= budget {
			return n, nil
		}
	}
	// Tokens that expired before now, of sessions still alive.
	for _, k := range keysBefore(b.expTokens, nowKey, budget-n) {
		var hash [32]byte
		if len(k) != timeKeyLen+len(hash) {
			return n, fmt.Errorf("token expiry index entry: %w", errCorrupt)
		}
		copy(hash[:], k[timeKeyLen:])
		ok, err := deleteToken(b, hash)
		if err != nil {
			return n, err
		}
		if ok {
			n++
		} else if err := b.expTokens.Delete(k); err != nil {
			return n, fmt.Errorf("dropping stale index entry: %w", err)
		}
	}
	return n, nil
}

// keysBefore returns copies of up to limit keys of a time||id index that
// sort before end and carry an id.
func keysBefore(bkt *bbolt.Bucket, end []byte, limit int) [][]byte {
	var keys [][]byte
	c := bkt.Cursor()
	for k, _ := c.First(); k != nil && len(keys) < limit && bytes.Compare(k, end) < 0; k, _ = c.Next() {
		if len(k) > timeKeyLen {
			keys = append(keys, append([]byte(nil), k...))
		}
	}
	return keys
}

// deleteSession deletes a session, its refresh tokens and every index
// entry that names them, and returns how many records (session plus
// tokens) it deleted. A missing session deletes nothing.
func deleteSession(b *appBuckets, id string) (int, error) {
	sess, err := getSession(b, id)
	if isNotFound(err) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	n := 0
	prefix := sessionPrefix(id)
	var hashes [][32]byte
	c := b.sessionTokens.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		var h [32]byte
		if len(k) != len(prefix)+len(h) {
			return n, fmt.Errorf("session token index entry: %w", errCorrupt)
		}
		copy(h[:], k[len(prefix):])
		hashes = append(hashes, h)
	}
	for _, h := range hashes {
		ok, err := deleteToken(b, h)
		if err != nil {
			return n, err
		}
		if ok {
			n++
		}
		// deleteToken drops the session_tokens entry only when the token
		// record exists; drop it here in any case.
		if err := b.sessionTokens.Delete(sessionTokenKey(id, h)); err != nil {
			return n, fmt.Errorf("unindexing refresh token by session: %w", err)
		}
	}
	kid := []byte(id)
	keys := []struct {
		bkt *bbolt.Bucket
		key []byte
	}{
		{b.sessions, kid},
		{b.userSessions, userSessionKey(sess.UserID, id)},
		{b.allSessions, userSessionKey(sess.UserID, id)},
		{b.expSessions, timeIDKey(sess.ExpiresAt, kid)},
		{b.revoked, timeIDKey(sess.RevokedAt, kid)}, // absent unless revoked
	}
	for _, d := range keys {
		if err := d.bkt.Delete(d.key); err != nil {
			return n, fmt.Errorf("deleting session: %w", err)
		}
	}
	return n + 1, nil
}

// deleteToken deletes a refresh token and its index entries, reporting
// whether the record existed.
func deleteToken(b *appBuckets, hash [32]byte) (bool, error) {
	tok, err := getToken(b, hash)
	if isNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if err := b.refresh.Delete(hash[:]); err != nil {
		return false, fmt.Errorf("deleting refresh token: %w", err)
	}
	if err := b.expTokens.Delete(timeIDKey(tok.ExpiresAt, hash[:])); err != nil {
		return false, fmt.Errorf("unindexing refresh token expiry: %w", err)
	}
	if err := b.sessionTokens.Delete(sessionTokenKey(tok.SessionID, hash)); err != nil {
		return false, fmt.Errorf("unindexing refresh token by session: %w", err)
	}
	return true, nil
}

func isNotFound(err error) bool { return errors.Is(err, store.ErrNotFound) }
