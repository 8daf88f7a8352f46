package bolt

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/bbolt"

	"github.com/wxauth/caddy-wechat-auth/store"
)

// errDuplicate reports an id or hash that is already taken.
var errDuplicate = errors.New("already exists")

// createSessionTx stores a new session and its first refresh token inside
// a write transaction on the app's buckets. Refusals that write nothing (unknown user, duplicate id or
// hash) come back as refused; err is a failure that must roll back.
func createSessionTx(b *appBuckets, sess *store.Session, tok *store.RefreshToken) (refused, err error) {
	switch {
	case b.users.Get(idKey(sess.UserID)) == nil:
		return fmt.Errorf("user %d of app %q: %w", sess.UserID, sess.AppID, store.ErrNotFound), nil
	case b.sessions.Get([]byte(sess.ID)) != nil:
		return fmt.Errorf("session %q: %w", sess.ID, errDuplicate), nil
	case b.refresh.Get(tok.Hash[:]) != nil:
		return fmt.Errorf("refresh token: %w", errDuplicate), nil
	}
	if err := putSession(b, sess); err != nil {
		return nil, err
	}
	if err := b.userSessions.Put(userSessionKey(sess.UserID, sess.ID), nil); err != nil {
		return nil, fmt.Errorf("indexing session by user: %w", err)
	}
	if err := b.allSessions.Put(userSessionKey(sess.UserID, sess.ID), nil); err != nil {
		return nil, fmt.Errorf("indexing session by user: %w", err)
	}
	if err := b.expSessions.Put(timeIDKey(sess.ExpiresAt, []byte(sess.ID)), nil); err != nil {
		return nil, fmt.Errorf("indexing session expiry: %w", err)
	}
	return nil, addToken(b, tok)
}

// Login finds or creates the user and stores the session and its first
// token in one durable transaction; see store.Store.
func (s *Store) Login(ctx context.Context, app string, nu store.NewUser, sess store.Session, tok store.RefreshToken, now time.Time) (store.User, store.Session, bool, error) {
	fail := func(err error) (store.User, store.Session, bool, error) {
		return store.User{}, store.Session{}, false, fmt.Errorf("logging in: %w", err)
	}
	if sess.AppID == "" {
		sess.AppID = app
	}
	switch {
	case !validKey(app) || sess.AppID != app:
		return fail(errors.New("invalid app"))
	case !validKey(nu.OpenID):
		return fail(errors.New("invalid openid"))
	case len(nu.UnionID) > maxKeyLen:
		return fail(errors.New("invalid unionid"))
	case !validKey(sess.ID):
		return fail(errors.New("invalid session id"))
	case tok.SessionID != sess.ID:
		return fail(errors.New("refresh token belongs to another session"))
	case sess.Revoked():
		return fail(errors.New("session is already revoked"))
	case tok.Hash == [32]byte{}:
		return fail(errors.New("missing refresh token hash"))
	case tok.ExpiresAt.IsZero():
		return fail(errors.New("missing refresh token expiry"))
	case !tok.RotatedAt.IsZero() || tok.Child != [32]byte{}:
		return fail(errors.New("first refresh token is already rotated"))
	}
	if err := s.enter(ctx); err != nil {
		return fail(err)
	}
	defer s.mu.RUnlock()
	now = now.UTC()
	sess = normSession(sess)
	tok = normToken(tok)
	if sess.ExpiresAt.IsZero() {
		sess.ExpiresAt = tok.ExpiresAt
	}
	var (
		u       store.User
		stored  store.Session
		created bool
		refused error
	)
	err := s.write(func(tx *bbolt.Tx) error {
		refused = nil
		b, err := writeApp(tx, app)
		if err != nil {
			return err
		}
		if u, created, err = loginUserTx(b, app, nu, now); err != nil {
			if errors.Is(err, store.ErrBanned) {
				// Refused before anything was written: not a rollback.
				refused = err
				return nil
			}
			return err
		}
		stored = sess
		stored.UserID, stored.OpenID, stored.UnionID = u.ID, nu.OpenID, u.UnionID
		t := tok
		refused, err := createSessionTx(b, &stored, &t)
		if err == nil {
			// A refused session must not leave a new user behind: roll
			// the whole transaction back.
			err = refused
		}
		return err
	})
	if err == nil {
		err = refused
	}
	if err != nil {
		return fail(err)
	}
	return u, stored, created, nil
}

// Session returns the app's session id, revoked or not.
func (s *Store) Session(ctx context.Context, app, id string) (store.Session, error) {
	return readIn(s, ctx, "looking up session", app, func(b *appBuckets) (store.Session, error) {
		return getSession(b, id)
	})
}

// RefreshToken returns the app's refresh-token record with hash.
func (s *Store) RefreshToken(ctx context.Context, app string, hash [32]byte) (store.RefreshToken, error) {
	return readIn(s, ctx, "looking up refresh token", app, func(b *appBuckets) (store.RefreshToken, error) {
		return getToken(b, hash)
	})
}

// Rotate presents the refresh token with hash; see store.Store and
// store.RotateOutcome. next.SessionID may be left empty (it is filled
// in); when set it must name the presented token's session. A negative
// grace counts as zero.
func (s *Store) Rotate(ctx context.Context, app string, hash [32]byte, next store.RefreshToken, now time.Time, grace time.Duration) (store.RotateResult, error) {
	switch {
	case hash == [32]byte{}:
		return store.RotateResult{}, fmt.Errorf("rotating refresh token: %w", store.ErrNotFound)
	case now.IsZero():
		return store.RotateResult{}, errors.New("rotating refresh token: zero time")
	case next.Hash == [32]byte{} || next.Hash == hash:
		return store.RotateResult{}, errors.New("rotating refresh token: invalid next token hash")
	case next.ExpiresAt.IsZero():
		return store.RotateResult{}, errors.New("rotating refresh token: missing next token expiry")
	}
	now = now.UTC()
	next = normToken(next)
	next.RotatedAt, next.Child = time.Time{}, [32]byte{}
	grace = max(grace, 0)
	return writeIn(s, ctx, "rotating refresh token", app, func(b *appBuckets) (store.RotateResult, error, error) {
		return rotateTx(b, hash, next, now, grace)
	})
}

// rotateTx is Rotate's work inside a write transaction on the app's
// buckets; see writeIn for its three results.
func rotateTx(b *appBuckets, hash [32]byte, next store.RefreshToken, now time.Time, grace time.Duration) (res store.RotateResult, refused, err error) {
	tok, err := getToken(b, hash)
	if errors.Is(err, store.ErrNotFound) {
		return res, err, nil
	}
	if err != nil {
		return res, nil, err
	}
	sess, err := getSession(b, tok.SessionID)
	if err != nil {
		// Tokens die with their session: a token without one is
		// corruption, not an unknown token.
		return res, nil, fmt.Errorf("session of refresh token: %w: %w", errCorrupt, err)
	}
	switch {
	case sess.Revoked():
		return res, store.ErrRevoked, nil
	case !now.Before(tok.ExpiresAt):
		return res, store.ErrExpired, nil
	}
	// A banned user's session is refused as a revoked one, whatever the
	// token's state: no pair is issued or handed out again for it.
	u, err := getUserByKey(b, idKey(sess.UserID))
	if err != nil {
		return res, nil, fmt.Errorf("user of session: %w: %w", errCorrupt, err)
	}
	if u.Banned {
		return res, fmt.Errorf("user %d is banned: %w", u.ID, store.ErrRevoked), nil
	}

	if tok.RotatedAt.IsZero() { // current: rotate
		nt := next
		if nt.SessionID == "" {
			nt.SessionID = sess.ID
		}
		if nt.SessionID != sess.ID {
			return res, errors.New("next token belongs to another session"), nil
		}
		if b.refresh.Get(nt.Hash[:]) != nil {
			return res, fmt.Errorf("next token: %w", errDuplicate), nil
		}
		tok.RotatedAt, tok.Child = now, nt.Hash
		if err := putToken(b, &tok); err != nil {
			return res, nil, err
		}
		if err := addToken(b, &nt); err != nil {
			return res, nil, err
		}
		sess.RefreshedAt = now
		if err := moveSessionExpiry(b, &sess, nt.ExpiresAt); err != nil {
			return res, nil, err
		}
		return store.RotateResult{Outcome: store.Rotated, Session: sess, Token: nt}, nil, nil
	}

	child, err := getToken(b, tok.Child)
	switch {
	case errors.Is(err, store.ErrNotFound): // pruned: treat as not current
	case err != nil:
		return res, nil, err
	case child.RotatedAt.IsZero() && !now.After(tok.RotatedAt.Add(grace)):
		if !now.Before(child.ExpiresAt) {
			return res, store.ErrExpired, nil
		}
		return store.RotateResult{Outcome: store.Retried, Session: sess, Token: child}, nil, nil
	}
	if err := revokeSession(b, &sess, "reuse", now); err != nil {
		return res, nil, err
	}
	return store.RotateResult{Outcome: store.Reused, Session: sess, Token: tok}, nil, nil
}

// RevokeSession revokes the app's session id at now with reason. Revoking
// a revoked session returns it unchanged.
func (s *Store) RevokeSession(ctx context.Context, app, id, reason string, now time.Time) (store.Session, error) {
	if now.IsZero() {
		return store.Session{}, errors.New("revoking session: zero time")
	}
	now = now.UTC()
	return writeIn(s, ctx, "revoking session", app, func(b *appBuckets) (store.Session, error, error) {
		sess, err := getSession(b, id)
		switch {
		case errors.Is(err, store.ErrNotFound):
			return sess, err, nil
		case err != nil || sess.Revoked():
			return sess, nil, err
		}
		return sess, nil, revokeSession(b, &sess, reason, now)
	})
}

// RevokeUserSessions revokes every active session of the app's user and
// returns those it revoked, in session id order. An unknown user is
// ErrNotFound; a user without active sessions gets an empty result.
func (s *Store) RevokeUserSessions(ctx context.Context, app string, userID uint64, reason string, now time.Time) ([]store.Session, error) {
	if now.IsZero() {
		return nil, errors.New("revoking user sessions: zero time")
	}
	now = now.UTC()
	return writeIn(s, ctx, "revoking user sessions", app, func(b *appBuckets) ([]store.Session, error, error) {
		if userID == 0 || b.users.Get(idKey(userID)) == nil {
			return nil, fmt.Errorf("user %d of app %q: %w", userID, app, store.ErrNotFound), nil
		}
		revoked, err := revokeActiveSessions(b, userID, reason, now)
		return revoked, nil, err
	})
}

// Revocations lists the app's sessions revoked at or after since, oldest
// first. An app without data has none.
func (s *Store) Revocations(ctx context.Context, app string, since time.Time) ([]store.Revocation, error) {
	if err := s.enter(ctx); err != nil {
		return nil, fmt.Errorf("listing revocations: %w", err)
	}
	defer s.mu.RUnlock()
	var out []store.Revocation
	err := s.view(func(tx *bbolt.Tx) error {
		b, err := readApp(tx, app)
		if err != nil || b == nil {
			return err
		}
		c := b.revoked.Cursor()
		for k, v := c.Seek(appendTimeKey(nil, since.UTC())); k != nil; k, v = c.Next() {
			at, ok := parseTimeKey(k)
			if !ok || len(k) == timeKeyLen || len(v) != 8 {
				return fmt.Errorf("revocation index entry: %w", errCorrupt)
			}
			out = append(out, store.Revocation{
				AppID:     app,
				SessionID: string(k[timeKeyLen:]),
				UserID:    binary.BigEndian.Uint64(v),
				RevokedAt: at,
			})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing revocations: %w", err)
	}
	return out, nil
}

// getSession reads a session (ErrNotFound when missing).
func getSession(b *appBuckets, id string) (store.Session, error) {
	if !validKey(id) {
		return store.Session{}, store.ErrNotFound
	}
	raw := b.sessions.Get([]byte(id))
	if raw == nil {
		return store.Session{}, fmt.Errorf("session %q: %w", id, store.ErrNotFound)
	}
	return decodeSession(b.name, id, raw)
}

func putSession(b *appBuckets, sess *store.Session) error {
	if err := b.sessions.Put([]byte(sess.ID), encodeSession(sess)); err != nil {
		return fmt.Errorf("writing session %q: %w", sess.ID, err)
	}
	return nil
}

// getToken reads a refresh-token record (ErrNotFound when missing).
func getToken(b *appBuckets, hash [32]byte) (store.RefreshToken, error) {
	raw := b.refresh.Get(hash[:])
	if raw == nil {
		return store.RefreshToken{}, fmt.Errorf("refresh token: %w", store.ErrNotFound)
	}
	return decodeToken(hash, raw)
}

func putToken(b *appBuckets, tok *store.RefreshToken) error {
	if err := b.refresh.Put(tok.Hash[:], encodeToken(tok)); err != nil {
		return fmt.Errorf("writing refresh token: %w", err)
	}
	return nil
}

// addToken writes a new refresh token and its index entries.
func addToken(b *appBuckets, tok *store.RefreshToken) error {
	if err := putToken(b, tok); err != nil {
		return err
	}
	if err := b.expTokens.Put(timeIDKey(tok.ExpiresAt, tok.Hash[:]), nil); err != nil {
		return fmt.Errorf("indexing refresh token expiry: %w", err)
	}
	if err := b.sessionTokens.Put(sessionTokenKey(tok.SessionID, tok.Hash), nil); err != nil {
		return fmt.Errorf("indexing refresh token by session: %w", err)
	}
	return nil
}

// moveSessionExpiry sets sess.ExpiresAt, rewriting the record and its
// expiry index entry.
func moveSessionExpiry(b *appBuckets, sess *store.Session, exp time.Time) error {
	id := []byte(sess.ID)
	if err := b.expSessions.Delete(timeIDKey(sess.ExpiresAt, id)); err != nil {
		return fmt.Errorf("unindexing session expiry: %w", err)
	}
	sess.ExpiresAt = exp
	if err := b.expSessions.Put(timeIDKey(exp, id), nil); err != nil {
		return fmt.Errorf("indexing session expiry: %w", err)
	}
	return putSession(b, sess)
}

// revokeSession marks an active session revoked and moves it from the
// user's active index to the revocation index.
func revokeSession(b *appBuckets, sess *store.Session, reason string, now time.Time) error {
	sess.RevokedAt, sess.RevokeReason = now, reason
	if err := putSession(b, sess); err != nil {
		return err
	}
	if err := b.userSessions.Delete(userSessionKey(sess.UserID, sess.ID)); err != nil {
		return fmt.Errorf("unindexing session by user: %w", err)
	}
	if err := b.revoked.Put(timeIDKey(now, []byte(sess.ID)), idKey(sess.UserID)); err != nil {
		return fmt.Errorf("indexing revocation: %w", err)
	}
	return nil
}

// normSession and normToken store times in UTC without monotonic readings,
// so what a write returns equals what a later read returns.
func normSession(s store.Session) store.Session {
	s.CreatedAt, s.ExpiresAt, s.RevokedAt = s.CreatedAt.UTC(), s.ExpiresAt.UTC(), s.RevokedAt.UTC()
	s.RefreshedAt = s.RefreshedAt.UTC()
	if len(s.SealedSessionKey) == 0 {
		s.SealedSessionKey = nil
	} else {
		s.SealedSessionKey = append([]byte(nil), s.SealedSessionKey...)
	}
	return s
}

func normToken(t store.RefreshToken) store.RefreshToken {
	t.IssuedAt, t.ExpiresAt, t.RotatedAt = t.IssuedAt.UTC(), t.ExpiresAt.UTC(), t.RotatedAt.UTC()
	t.AccessIssuedAt = t.AccessIssuedAt.UTC()
	return t
}
