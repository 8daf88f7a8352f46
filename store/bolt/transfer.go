package bolt

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"go.etcd.io/bbolt"

	"github.com/wxauth/caddy-wechat-auth/store"
)

// Export calls fn with every record of app from one read transaction (a
// consistent snapshot): its secrets (by name), then its users (by id),
// then the openids linked to a user besides its own (by openid), then its
// avatars (by hash, each with its users), then its sessions (by id) each followed by its refresh tokens (by hash).
// Sealed session keys are exported as stored. An error from fn stops the
// export and is returned wrapped. The read transaction stays open while fn
// runs, so a slow fn delays the reuse of freed pages, not other calls.
func (s *Store) Export(ctx context.Context, app string, fn func(store.Record) error) error {
	if fn == nil {
		return errors.New("exporting app: nil function")
	}
	if err := s.enter(ctx); err != nil {
		return fmt.Errorf("exporting app: %w", err)
	}
	defer s.mu.RUnlock()
	err := s.view(func(tx *bbolt.Tx) error {
		b, err := readApp(tx, app)
		if err != nil || b == nil {
			return err
		}
		err = b.secrets.ForEach(func(k, v []byte) error {
			return fn(store.Record{Secret: &store.SecretRecord{Name: string(k), Value: bytes.Clone(v)}})
		})
		if err != nil {
			return err
		}
		err = b.users.ForEach(func(k, _ []byte) error {
			u, err := getUserByKey(b, k)
			if err != nil {
				return err
			}
			return fn(store.Record{User: &u})
		})
		if err != nil {
			return err
		}
		if err := exportLinkedOpenIDs(b, fn); err != nil {
			return err
		}
		if err := exportAvatars(b, fn); err != nil {
			return err
		}
		return b.sessions.ForEach(func(k, _ []byte) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			sess, err := getSession(b, string(k))
			if err != nil {
				return err
			}
			if err := fn(store.Record{Session: &sess}); err != nil {
				return err
			}
			prefix := sessionPrefix(sess.ID)
			c := b.sessionTokens.Cursor()
			for tk, _ := c.Seek(prefix); tk != nil && bytes.HasPrefix(tk, prefix); tk, _ = c.Next() {
				var h [32]byte
				if len(tk) != len(prefix)+len(h) {
					return fmt.Errorf("session token index entry: %w", errCorrupt)
				}
				copy(h[:], tk[len(prefix):])
				tok, err := getToken(b, h)
				if err != nil {
					return fmt.Errorf("token indexed by session: %w", err)
				}
				if err := fn(store.Record{Token: &tok}); err != nil {
					return err
				}
			}
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("exporting app: %w", err)
	}
	return nil
}

// Import writes records into app in one durable transaction, all or
// nothing; see store.Store. A record that collides with a stored one (user
// id, openid of a user or a linked openid, session id, refresh-token hash,
// secret name), or with an earlier record of the import, fails the whole
// call with store.ErrConflict. Records name app or no app. A linked
// openid's user, a session's user and a token's session must be imported
// before it or already stored. User ids are kept, and the app's id
// sequence moves past the highest one so later users get ids after it.
func (s *Store) Import(ctx context.Context, app string, recs []store.Record) error {
	if !validKey(app) {
		return errors.New("importing records: invalid app")
	}
	if err := checkRecords(app, recs); err != nil {
		return fmt.Errorf("importing records: %w", err)
	}
	if err := s.enter(ctx); err != nil {
		return fmt.Errorf("importing records: %w", err)
	}
	defer s.mu.RUnlock()
	err := s.db.Update(func(tx *bbolt.Tx) error {
		b, err := writeApp(tx, app)
		if err != nil {
			return err
		}
		var maxID uint64
		for i, r := range recs {
			if err := importRecord(b, app, r, &maxID); err != nil {
				return fmt.Errorf("record %d: %w", i+1, err)
			}
		}
		if maxID > b.users.Sequence() {
			if err := b.users.SetSequence(maxID); err != nil {
				return fmt.Errorf("moving the user id sequence: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("importing records: %w", err)
	}
	return nil
}

// checkRecords validates records before any write: exactly one field per
// record, keys the store can hold, and records of app (or of no app).
func checkRecords(app string, recs []store.Record) error {
	ofApp := func(a string) bool { return a == "" || a == app }
	for i, r := range recs {
		n := 0
		for _, set := range []bool{r.Secret != nil, r.User != nil, r.OpenID != nil, r.Session != nil, r.Token != nil, r.Avatar != nil} {
			if set {
				n++
			}
		}
		var bad string
		switch {
		case n != 1:
			bad = "a record holds exactly one of secret, user, openid, avatar, session, refresh_token"
		case r.Secret != nil:
			if !validKey(r.Secret.Name) || len(r.Secret.Value) == 0 {
				bad = "a secret needs a name and a value"
			}
		case r.User != nil:
			u := r.User
			switch {
			case !ofApp(u.AppID):
				bad = fmt.Sprintf("user of app %q", u.AppID)
			case u.ID == 0 || !validKey(u.OpenID) || len(u.UnionID) > maxKeyLen:
				bad = "a user needs an id and an openid"
			}
		case r.OpenID != nil:
			if !validKey(r.OpenID.OpenID) || r.OpenID.UserID == 0 {
				bad = "a linked openid needs an openid and a user id"
			}
		case r.Avatar != nil:
			bad = checkAvatarRecord(r.Avatar)
		case r.Session != nil:
			ss := r.Session
			switch {
			case !ofApp(ss.AppID):
				bad = fmt.Sprintf("session of app %q", ss.AppID)
			case !validKey(ss.ID) || ss.UserID == 0 || ss.ExpiresAt.IsZero():
				bad = "a session needs an id, a user id and an expiry"
			}
		default:
			t := r.Token
			if t.Hash == [32]byte{} || !validKey(t.SessionID) || t.ExpiresAt.IsZero() {
				bad = "a refresh token needs a hash, a session and an expiry"
			}
		}
		if bad != "" {
			return fmt.Errorf("record %d: %s", i+1, bad)
		}
	}
	return nil
}

// importRecord writes one checked record with its index entries.
func importRecord(b *appBuckets, app string, r store.Record, maxID *uint64) error {
	switch {
	case r.Secret != nil:
		k := []byte(r.Secret.Name)
		if b.secrets.Get(k) != nil {
			return fmt.Errorf("secret %q: %w", r.Secret.Name, store.ErrConflict)
		}
		if err := b.secrets.Put(k, bytes.Clone(r.Secret.Value)); err != nil {
			return fmt.Errorf("writing secret: %w", err)
		}
	case r.User != nil:
		u := *r.User
		u.AppID = app
		u.CreatedAt, u.UpdatedAt = u.CreatedAt.UTC(), u.UpdatedAt.UTC()
		if b.users.Get(idKey(u.ID)) != nil {
			return fmt.Errorf("user %d: %w", u.ID, store.ErrConflict)
		}
		if b.openID.Get([]byte(u.OpenID)) != nil {
			return fmt.Errorf("openid of user %d: %w", u.ID, store.ErrConflict)
		}
		if err := putUser(b, &u); err != nil {
			return err
		}
		if err := b.openID.Put([]byte(u.OpenID), idKey(u.ID)); err != nil {
			return fmt.Errorf("indexing openid: %w", err)
		}
		if err := indexUnionID(b, u.UnionID, u.ID); err != nil {
			return err
		}
		*maxID = max(*maxID, u.ID)
	case r.OpenID != nil:
		o := r.OpenID
		if b.openID.Get([]byte(o.OpenID)) != nil {
			return fmt.Errorf("linked openid: %w", store.ErrConflict)
		}
		if b.users.Get(idKey(o.UserID)) == nil {
			return fmt.Errorf("linked openid: user %d is neither imported before it nor stored", o.UserID)
		}
		if err := b.openID.Put([]byte(o.OpenID), idKey(o.UserID)); err != nil {
			return fmt.Errorf("indexing linked openid: %w", err)
		}
	case r.Avatar != nil:
		return importAvatar(b, r.Avatar)
	case r.Session != nil:
		sess := normSession(*r.Session)
		sess.AppID = app
		id := []byte(sess.ID)
		if b.sessions.Get(id) != nil {
			return fmt.Errorf("session %q: %w", sess.ID, store.ErrConflict)
		}
		if b.users.Get(idKey(sess.UserID)) == nil {
			return fmt.Errorf("session %q: user %d is neither imported before it nor stored", sess.ID, sess.UserID)
		}
		if err := putSession(b, &sess); err != nil {
			return err
		}
		if err := b.expSessions.Put(timeIDKey(sess.ExpiresAt, id), nil); err != nil {
			return fmt.Errorf("indexing session expiry: %w", err)
		}
		if err := b.allSessions.Put(userSessionKey(sess.UserID, sess.ID), nil); err != nil {
			return fmt.Errorf("indexing session by user: %w", err)
		}
		if sess.Revoked() {
			if err := b.revoked.Put(timeIDKey(sess.RevokedAt, id), idKey(sess.UserID)); err != nil {
				return fmt.Errorf("indexing revocation: %w", err)
			}
		} else if err := b.userSessions.Put(userSessionKey(sess.UserID, sess.ID), nil); err != nil {
			return fmt.Errorf("indexing session by user: %w", err)
		}
	default:
		tok := normToken(*r.Token)
		if b.refresh.Get(tok.Hash[:]) != nil {
			return fmt.Errorf("refresh token: %w", store.ErrConflict)
		}
		if b.sessions.Get([]byte(tok.SessionID)) == nil {
			return fmt.Errorf("refresh token: session %q is neither imported before it nor stored", tok.SessionID)
		}
		return addToken(b, &tok)
	}
	return nil
}

// exportLinkedOpenIDs calls fn with every openid index entry that points
// at a user whose own openid is another one: the openids linked by
// unionid.
func exportLinkedOpenIDs(b *appBuckets, fn func(store.Record) error) error {
	return b.openID.ForEach(func(k, v []byte) error {
		if len(v) != 8 {
			return fmt.Errorf("openid index entry: %w", errCorrupt)
		}
		u, err := getUserByKey(b, v)
		if err != nil {
			return fmt.Errorf("user indexed by openid: %w", err)
		}
		if u.OpenID == string(k) {
			return nil
		}
		return fn(store.Record{OpenID: &store.OpenIDRecord{OpenID: string(k), UserID: u.ID}})
	})
}
