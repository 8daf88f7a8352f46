package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/wxauth/caddy-wechat-auth/store"
)

// Helpers for tests of any package that need users or sessions in a
// store without going through a login: store.Store has no method that
// creates a user alone, or a session for a given user, because nothing in
// production does either. They use only the store's own methods.

// CreateUser returns the app's user with nu.OpenID, creating it at now
// when missing (created true), without a session: the user a first Login
// would create, written with Import (ids after the highest one, as Login
// gives them). With nu.LinkByUnionID and a user of nu.UnionID, nu.OpenID
// is linked to that user instead. It is for setting up tests, one caller
// at a time: concurrent calls for one openid may fail with
// store.ErrConflict.
func CreateUser(ctx context.Context, s store.Store, app string, nu store.NewUser, now time.Time) (u store.User, created bool, err error) {
	u, err = s.UserByOpenID(ctx, app, nu.OpenID)
	if err == nil || !errors.Is(err, store.ErrNotFound) {
		return u, false, err
	}
	if nu.LinkByUnionID && nu.UnionID != "" {
		u, err = s.UserByUnionID(ctx, app, nu.UnionID)
		switch {
		case err == nil:
			err = s.Import(ctx, app, []store.Record{{OpenID: &store.OpenIDRecord{OpenID: nu.OpenID, UserID: u.ID}}})
			return u, false, err
		case !errors.Is(err, store.ErrNotFound):
			return u, false, err
		}
	}
	id, err := nextUserID(ctx, s, app, now)
	if err != nil {
		return store.User{}, false, err
	}
	u = store.User{
		ID: id, AppID: app, OpenID: nu.OpenID, UnionID: nu.UnionID,
		Nickname: nu.Nickname, AvatarURL: nu.AvatarURL, Gender: nu.Gender,
		CreatedAt: now.UTC(), UpdatedAt: now.UTC(),
	}
	if err := s.Import(ctx, app, []store.Record{{User: &u}}); err != nil {
		return store.User{}, false, fmt.Errorf("creating user %q: %w", nu.OpenID, err)
	}
	u, err = s.User(ctx, app, id)
	return u, err == nil, err
}

// CreateUsers creates users for the openids in one Import, numbered after
// the app's highest id, and returns them in order. None of the openids
// may have a user yet.
func CreateUsers(ctx context.Context, s store.Store, app string, openIDs []string, now time.Time) ([]store.User, error) {
	first, err := nextUserID(ctx, s, app, now)
	if err != nil {
		return nil, err
	}
	users := make([]store.User, len(openIDs))
	recs := make([]store.Record, len(openIDs))
	for i, o := range openIDs {
		users[i] = store.User{ID: first + uint64(i), AppID: app, OpenID: o, CreatedAt: now.UTC(), UpdatedAt: now.UTC()}
		recs[i] = store.Record{User: &users[i]}
	}
	if err := s.Import(ctx, app, recs); err != nil {
		return nil, fmt.Errorf("creating %d users: %w", len(openIDs), err)
	}
	return users, nil
}

// nextUserID is the id after the app's highest: its user count plus one,
// or the first free id above that when ids have gaps.
func nextUserID(ctx context.Context, s store.Store, app string, now time.Time) (uint64, error) {
	st, err := s.Stats(ctx, app, now)
	if err != nil {
		return 0, fmt.Errorf("counting users: %w", err)
	}
	for id := uint64(st.Users) + 1; ; id++ {
		_, err := s.User(ctx, app, id)
		switch {
		case errors.Is(err, store.ErrNotFound):
			return id, nil
		case err != nil:
			return 0, fmt.Errorf("looking for a free user id: %w", err)
		}
	}
}

// CreateSession stores sess with its first refresh token tok for the
// existing user sess.UserID of app sess.AppID, through Login with the
// user's openid (sess.OpenID when set) at sess.CreatedAt. It fails if that
// openid belongs to another user, and as Login does for a banned user.
func CreateSession(ctx context.Context, s store.Store, sess store.Session, tok store.RefreshToken) error {
	u, err := s.User(ctx, sess.AppID, sess.UserID)
	if err != nil {
		return fmt.Errorf("creating session %q: %w", sess.ID, err)
	}
	openID := sess.OpenID
	if openID == "" {
		openID = u.OpenID
	}
	_, stored, _, err := s.Login(ctx, sess.AppID, store.NewUser{OpenID: openID}, sess, tok, sess.CreatedAt)
	if err != nil {
		return fmt.Errorf("creating session %q: %w", sess.ID, err)
	}
	if stored.UserID != sess.UserID {
		return fmt.Errorf("creating session %q: openid %q is user %d's, not user %d's", sess.ID, openID, stored.UserID, sess.UserID)
	}
	return nil
}

// LoginUser is a Login of nu at now with a session of its own (random id
// and token), for tests that are about the user a login finds or
// creates.
func LoginUser(ctx context.Context, s store.Store, app string, nu store.NewUser, now time.Time) (store.User, bool, error) {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		return store.User{}, false, err
	}
	sid := "login-" + hex.EncodeToString(b[:])
	sess, tok := newSession(store.User{AppID: app}, sid, now)
	u, _, created, err := s.Login(ctx, app, nu, sess, tok, now)
	return u, created, err
}
