package storetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/wxauth/caddy-wechat-auth/store"
)

// loginSession builds the session and first token a Login stores for
// openid; the store fills in the user fields.
func loginSession(app, sid string) (store.Session, store.RefreshToken) {
	return newSession(store.User{AppID: app}, sid, at(0))
}

func testLogin(t *testing.T, f *fixture) {
	nu := store.NewUser{OpenID: "o-login", UnionID: "u-login", Nickname: "Ann", Gender: 2}
	sess, tok := loginSession("app", "sid-1")
	u, stored, created, err := f.s.Login(f.ctx, "app", nu, sess, tok, at(0))
	if err != nil {
		t.Fatalf("Login: %v", err)
	}
	if !created || u.ID == 0 || u.OpenID != "o-login" || u.UnionID != "u-login" || u.Nickname != "Ann" || u.Gender != 2 {
		t.Fatalf("Login user: created=%v %+v", created, u)
	}
	want := sess
	want.UserID, want.OpenID, want.UnionID = u.ID, "o-login", "u-login"
	equal(t, "stored session", stored, want)
	equal(t, "Session", f.session("app", "sid-1"), want)
	equal(t, "RefreshToken", f.token("app", tok.Hash), tok)
	got, err := f.s.User(f.ctx, "app", u.ID)
	if err != nil {
		t.Fatalf("User: %v", err)
	}
	equal(t, "User", got, u)

	// A returning user: same user, profile untouched, another session.
	sess2, tok2 := loginSession("app", "sid-2")
	u2, stored2, created, err := f.s.Login(f.ctx, "app", store.NewUser{OpenID: "o-login", Nickname: "Mallory"}, sess2, tok2, at(1))
	if err != nil {
		t.Fatalf("second Login: %v", err)
	}
	if created || u2.ID != u.ID || u2.Nickname != "Ann" || stored2.UserID != u.ID || stored2.UnionID != "u-login" {
		t.Fatalf("returning Login: created=%v %+v %+v", created, u2, stored2)
	}
	// The same openid in another app is another user.
	sess3, tok3 := loginSession("other", "sid-3")
	u3, _, created, err := f.s.Login(f.ctx, "other", store.NewUser{OpenID: "o-login"}, sess3, tok3, at(2))
	if err != nil || !created || u3.AppID != "other" {
		t.Fatalf("Login in another app: created=%v %+v %v", created, u3, err)
	}
	if _, err := f.s.Session(f.ctx, "app", "sid-3"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("other app's session visible: %v", err)
	}
}

// testLoginAllOrNothing: a session that cannot be stored leaves no new
// user behind.
func testLoginAllOrNothing(t *testing.T, f *fixture) {
	sess, tok := loginSession("app", "sid-1")
	if _, _, _, err := f.s.Login(f.ctx, "app", store.NewUser{OpenID: "o-first"}, sess, tok, at(0)); err != nil {
		t.Fatalf("Login: %v", err)
	}
	// Same session id and refresh hash again, for a new openid.
	if _, _, _, err := f.s.Login(f.ctx, "app", store.NewUser{OpenID: "o-second"}, sess, tok, at(1)); err == nil {
		t.Fatal("Login with a duplicate session succeeded")
	}
	if _, err := f.s.UserByOpenID(f.ctx, "app", "o-second"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a failed Login left a user behind: %v", err)
	}
	// Invalid input writes nothing either.
	bad, badTok := loginSession("app", "sid-2")
	badTok.SessionID = "someone-else"
	if _, _, _, err := f.s.Login(f.ctx, "app", store.NewUser{OpenID: "o-third"}, bad, badTok, at(2)); err == nil {
		t.Fatal("Login with a token of another session succeeded")
	}
	if _, err := f.s.UserByOpenID(f.ctx, "app", "o-third"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("an invalid Login left a user behind: %v", err)
	}
}

// testLoginConcurrent: concurrent first logins of one openid make one
// user and one session each.
func testLoginConcurrent(t *testing.T, f *fixture) {
	const n = 32
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		ids     = map[uint64]int{}
		created int
	)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sess, tok := loginSession("app", fmt.Sprintf("sid-%d", i))
			u, _, c, err := f.s.Login(f.ctx, "app", store.NewUser{OpenID: "o-race"}, sess, tok, at(0))
			if err != nil {
				t.Errorf("Login %d: %v", i, err)
				return
			}
			mu.Lock()
			ids[u.ID]++
			if c {
				created++
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	if len(ids) != 1 || created != 1 {
		t.Fatalf("%d concurrent Logins: users %v, created %d; want one user created once", n, ids, created)
	}
	for i := range n {
		f.session("app", fmt.Sprintf("sid-%d", i))
	}
}
