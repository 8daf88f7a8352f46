package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/wxauth/caddy-wechat-auth/store"
)

// seedForCalls gives the calls of everyMethod something to work on.
func seedForCalls(f *fixture) {
	f.t.Helper()
	u := f.login("app", "o", "u", at(0))
	f.startSession(u, "sid", at(0))
}

func testCanceledContext(t *testing.T, f *fixture) {
	seedForCalls(f)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	cf := &fixture{t: t, s: f.s, ctx: ctx}
	for _, m := range everyMethod(cf) {
		t.Run(m.name, func(t *testing.T) {
			wantErr(t, m.name+" with a canceled context", m.call(), context.Canceled)
		})
	}
	// Nothing happened: the session is still active and its token current.
	if s := f.session("app", "sid"); s.Revoked() {
		t.Error("a canceled call revoked the session")
	}
	if tok := f.token("app", hash("app/sid/0")); !tok.RotatedAt.IsZero() {
		t.Error("a canceled call rotated the token")
	}
}

func testClose(t *testing.T, f *fixture) {
	seedForCalls(f)
	if err := f.s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for _, m := range everyMethod(f) {
		t.Run(m.name, func(t *testing.T) {
			wantErr(t, m.name+" after Close", m.call(), store.ErrClosed)
		})
	}
	wantErr(t, "second Close", f.s.Close(), store.ErrClosed)
}

func isNotFound(err error) bool { return errors.Is(err, store.ErrNotFound) }

// everyMethod lists one call of every Store method but Close, with valid
// arguments.
func everyMethod(f *fixture) []struct {
	name string
	call func() error
} {
	u := store.User{ID: 1, AppID: "app", OpenID: "o"}
	sess, tok := newSession(u, "sid-new", at(0))
	next := nextToken("sid", "next", at(0), refreshTTL)
	nick := "n"
	return []struct {
		name string
		call func() error
	}{
		{"Login", func() error {
			_, _, _, err := f.s.Login(f.ctx, "app", store.NewUser{OpenID: "o-new"}, sess, tok, at(0))
			return err
		}},
		{"User", func() error { _, err := f.s.User(f.ctx, "app", 1); return err }},
		{"UserByOpenID", func() error { _, err := f.s.UserByOpenID(f.ctx, "app", "o"); return err }},
		{"UserByUnionID", func() error { _, err := f.s.UserByUnionID(f.ctx, "app", "u"); return err }},
		{"UpdateUser", func() error {
			_, err := f.s.UpdateUser(f.ctx, "app", 1, store.ProfilePatch{Nickname: &nick}, at(0))
			return err
		}},
		{"Session", func() error { _, err := f.s.Session(f.ctx, "app", "sid"); return err }},
		{"Rotate", func() error {
			_, err := f.s.Rotate(f.ctx, "app", hash("app/sid/0"), next, at(time.Minute), grace)
			return err
		}},
		{"RefreshToken", func() error { _, err := f.s.RefreshToken(f.ctx, "app", hash("app/sid/0")); return err }},
		{"RevokeSession", func() error { _, err := f.s.RevokeSession(f.ctx, "app", "sid", "logout", at(0)); return err }},
		{"RevokeUserSessions", func() error { _, err := f.s.RevokeUserSessions(f.ctx, "app", 1, "logout_all", at(0)); return err }},
		{"Revocations", func() error { _, err := f.s.Revocations(f.ctx, "app", time.Time{}); return err }},
		{"Prune", func() error { _, err := f.s.Prune(f.ctx, at(0), at(0)); return err }},
		{"Secret", func() error {
			_, err := f.s.Secret(f.ctx, "app", "new-key", func() ([]byte, error) { return []byte("v"), nil })
			return err
		}},
	}
}
