// Package storetest holds the contract tests of store.Store. Every backend
// runs them from its own tests:
//
//	func TestContract(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Store {
//			s, err := mybackend.Open(filepath.Join(t.TempDir(), "db"))
//			if err != nil {
//				t.Fatal(err)
//			}
//			return s
//		})
//	}
//
// The tests use fixed times (a base time plus offsets, whole seconds, so
// backends with microsecond timestamps pass), never the wall clock, and
// never sleep.
package storetest

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/wxauth/caddy-wechat-auth/store"
)

// Run runs the contract subtests against stores made by open. open is
// called once per subtest (twice by those that move records from one store
// to another) and must return a new, empty store that no one else uses; Run closes it when the subtest ends (a store the subtest
// closed itself may answer that Close with ErrClosed).
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(*testing.T, *fixture)
	}{
		{"Login/CreatesUser", testLoginUserCreate},
		{"Login/ReturnsExisting", testLoginUserExisting},
		{"Login/UnionIDFilledLater", testLoginUserUnionIDLater},
		{"Login/LinkByUnionID", testLoginUserLink},
		{"Login/OneUserPerOpenID", testLoginUserConcurrent},
		{"Login/SequentialIDs", testLoginUserSequentialIDs},
		{"Login/InvalidInput", testLoginUserInvalid},
		{"User/NotFound", testUserNotFound},
		{"UpdateUser", testUpdateUser},
		{"AppIsolation", testAppIsolation},
		{"Login", testLogin},
		{"Login/AllOrNothing", testLoginAllOrNothing},
		{"Login/Concurrent", testLoginConcurrent},
		{"Login/StoresSession", testCreateSession},
		{"Login/SessionRejected", testCreateSessionRejected},
		{"Rotate/Rotated", testRotateRotated},
		{"Rotate/Retried", testRotateRetried},
		{"Rotate/Reused", testRotateReused},
		{"Rotate/Errors", testRotateErrors},
		{"Rotate/Concurrent", testRotateConcurrent},
		{"RevokeSession", testRevokeSession},
		{"RevokeUserSessions", testRevokeUserSessions},
		{"Revocations", testRevocations},
		{"Prune", testPrune},
		{"Secret", testSecret},
		{"Secret/CreateError", testSecretCreateError},
		{"Secret/Concurrent", testSecretConcurrent},
		{"CanceledContext", testCanceledContext},
		{"Close", testClose},
		{"UserByPhone", testUserByPhone},
		{"UserSessions", testUserSessions},
		{"Ban", testBan},
		{"Ban/RefusesLogin", testBanRefusesLogin},
		{"Unban", testUnban},
		{"Stats", testStats},
	}
	tests = append(tests, transferTests...)
	tests = append(tests, banTests...)
	tests = append(tests, avatarTests...)
	tests = append(tests, ticketTests...)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			if s == nil {
				t.Fatal("open returned a nil store")
			}
			t.Cleanup(func() {
				if err := s.Close(); err != nil && !errors.Is(err, store.ErrClosed) {
					t.Errorf("closing store: %v", err)
				}
			})
			tc.fn(t, &fixture{t: t, s: s, ctx: context.Background(), open: open})
		})
	}
}

// Fixed times and durations shared by the tests.
var base = time.Date(2030, time.March, 4, 5, 6, 7, 0, time.UTC)

const (
	refreshTTL = 30 * 24 * time.Hour
	grace      = 10 * time.Second
)

// at returns base plus d.
func at(d time.Duration) time.Time { return base.Add(d) }

// hash returns a deterministic refresh-token hash for a label.
func hash(label string) [32]byte { return sha256.Sum256([]byte(label)) }

// fixture bundles a store with the test that uses it.
type fixture struct {
	t   *testing.T
	s   store.Store
	ctx context.Context
	// open makes another new, empty store of the same backend (for tests
	// that move records between two stores); nil where there is none.
	open func(t *testing.T) store.Store
}

// with returns the fixture bound to t, for use inside subtests: its
// helpers must fail the test that calls them.
func (f *fixture) with(t *testing.T) *fixture {
	return &fixture{t: t, s: f.s, ctx: f.ctx, open: f.open}
}

// login returns the app's user with openID, creating it at now (without
// a session; see CreateUser) when missing, and fails the test on error.
func (f *fixture) login(app, openID, unionID string, now time.Time) store.User {
	f.t.Helper()
	u, _, err := CreateUser(f.ctx, f.s, app, store.NewUser{OpenID: openID, UnionID: unionID}, now)
	if err != nil {
		f.t.Fatalf("CreateUser(%q, %q): %v", app, openID, err)
	}
	return u
}

// loginUser is LoginUser on the fixture's store: a Login of nu with a
// session of its own.
func (f *fixture) loginUser(app string, nu store.NewUser, now time.Time) (store.User, bool, error) {
	return LoginUser(f.ctx, f.s, app, nu, now)
}

// newSession builds a session of u created at t with its first token.
func newSession(u store.User, sid string, t time.Time) (store.Session, store.RefreshToken) {
	tok := store.RefreshToken{
		Hash:           hash(u.AppID + "/" + sid + "/0"),
		SessionID:      sid,
		IssuedAt:       t,
		ExpiresAt:      t.Add(refreshTTL),
		AccessID:       "access-" + sid + "-0",
		AccessIssuedAt: t,
	}
	s := store.Session{
		ID:               sid,
		AppID:            u.AppID,
		UserID:           u.ID,
		OpenID:           u.OpenID,
		UnionID:          u.UnionID,
		SealedSessionKey: []byte("sealed:" + sid),
		CreatedAt:        t,
		ExpiresAt:        tok.ExpiresAt,
	}
	return s, tok
}

// nextToken builds the token that replaces another at t.
func nextToken(sid, label string, t time.Time, ttl time.Duration) store.RefreshToken {
	return store.RefreshToken{
		Hash:           hash(label),
		SessionID:      sid,
		IssuedAt:       t,
		ExpiresAt:      t.Add(ttl),
		AccessID:       "access-" + label,
		AccessIssuedAt: t,
	}
}

// createSession stores a session and fails the test on error.
func (f *fixture) createSession(s store.Session, tok store.RefreshToken) {
	f.t.Helper()
	if err := CreateSession(f.ctx, f.s, s, tok); err != nil {
		f.t.Fatalf("CreateSession(%q): %v", s.ID, err)
	}
}

// startSession creates a session of u at t and returns it with its token.
func (f *fixture) startSession(u store.User, sid string, t time.Time) (store.Session, store.RefreshToken) {
	f.t.Helper()
	s, tok := newSession(u, sid, t)
	f.createSession(s, tok)
	return s, tok
}

// rotate rotates and fails the test on error.
func (f *fixture) rotate(app string, h [32]byte, next store.RefreshToken, now time.Time) store.RotateResult {
	f.t.Helper()
	res, err := f.s.Rotate(f.ctx, app, h, next, now, grace)
	if err != nil {
		f.t.Fatalf("Rotate at %v: %v", now, err)
	}
	return res
}

// session reads a session and fails the test on error.
func (f *fixture) session(app, id string) store.Session {
	f.t.Helper()
	s, err := f.s.Session(f.ctx, app, id)
	if err != nil {
		f.t.Fatalf("Session(%q, %q): %v", app, id, err)
	}
	return s
}

// token reads a refresh token and fails the test on error.
func (f *fixture) token(app string, h [32]byte) store.RefreshToken {
	f.t.Helper()
	tok, err := f.s.RefreshToken(f.ctx, app, h)
	if err != nil {
		f.t.Fatalf("RefreshToken(%q): %v", app, err)
	}
	return tok
}

// wantErr fails the test unless errors.Is(err, target).
func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Errorf("%s: error %v, want %v", what, err, target)
	}
}

// noToken fails the test unless the token is unknown.
func (f *fixture) noToken(app string, h [32]byte) {
	f.t.Helper()
	_, err := f.s.RefreshToken(f.ctx, app, h)
	wantErr(f.t, "RefreshToken of a token that must not exist", err, store.ErrNotFound)
}

// noSession fails the test unless the session is unknown.
func (f *fixture) noSession(app, id string) {
	f.t.Helper()
	_, err := f.s.Session(f.ctx, app, id)
	wantErr(f.t, fmt.Sprintf("Session(%q, %q)", app, id), err, store.ErrNotFound)
}

// equal compares records after putting their times in UTC, reporting any
// difference. Backends must return times equal to what was stored.
func equal[T any](t *testing.T, what string, got, want T) {
	t.Helper()
	g, w := normalize(got), normalize(want)
	if !reflect.DeepEqual(g, w) {
		t.Errorf("%s:\n got %+v\nwant %+v", what, g, w)
	}
}

// normalize returns v with every time.Time in UTC and empty byte slices
// nil, so equal compares instants and contents rather than representation.
func normalize[T any](v T) T {
	rv := reflect.ValueOf(&v).Elem()
	normalizeValue(rv)
	return v
}

func normalizeValue(v reflect.Value) {
	switch v.Kind() {
	case reflect.Struct:
		if t, ok := v.Interface().(time.Time); ok {
			v.Set(reflect.ValueOf(t.UTC()))
			return
		}
		for i := range v.NumField() {
			if v.Field(i).CanSet() {
				normalizeValue(v.Field(i))
			}
		}
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			if v.Len() == 0 {
				v.Set(reflect.Zero(v.Type()))
			}
			return
		}
		for i := range v.Len() {
			normalizeValue(v.Index(i))
		}
	}
}
