package storetest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/wxauth/caddy-wechat-auth/store"
)

func testLoginUserCreate(t *testing.T, f *fixture) {
	shanghai := time.FixedZone("CST", 8*3600)
	tests := []struct {
		name string
		app  string
		nu   store.NewUser
		now  time.Time
	}{
		{"full profile", "app-a", store.NewUser{OpenID: "o-1", UnionID: "u-1", Nickname: "安娜", AvatarURL: "https://img.example/a.png", Gender: 2}, at(0)},
		{"bare", "app-b", store.NewUser{OpenID: "o-1"}, at(time.Hour)},
		{"non-UTC clock", "app-c", store.NewUser{OpenID: "o-1", Nickname: "Bo", Gender: 1}, at(2 * time.Hour).In(shanghai)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := f.with(t)
			u, created, err := f.loginUser(tc.app, tc.nu, tc.now)
			if err != nil {
				t.Fatalf("Login: %v", err)
			}
			if !created {
				t.Error("created = false for a new openid")
			}
			want := store.User{
				ID: 1, AppID: tc.app, OpenID: tc.nu.OpenID, UnionID: tc.nu.UnionID,
				Nickname: tc.nu.Nickname, AvatarURL: tc.nu.AvatarURL, Gender: tc.nu.Gender,
				CreatedAt: tc.now, UpdatedAt: tc.now,
			}
			equal(t, "Login's user", u, want)

			got, err := f.s.User(f.ctx, tc.app, u.ID)
			if err != nil {
				t.Fatalf("User: %v", err)
			}
			equal(t, "User", got, want)
			if got.CreatedAt.Location() != time.UTC {
				t.Errorf("CreatedAt comes back in %v, want UTC", got.CreatedAt.Location())
			}
			got, err = f.s.UserByOpenID(f.ctx, tc.app, tc.nu.OpenID)
			if err != nil {
				t.Fatalf("UserByOpenID: %v", err)
			}
			equal(t, "UserByOpenID", got, want)
			if tc.nu.UnionID != "" {
				got, err = f.s.UserByUnionID(f.ctx, tc.app, tc.nu.UnionID)
				if err != nil {
					t.Fatalf("UserByUnionID: %v", err)
				}
				equal(t, "UserByUnionID", got, want)
			}
		})
	}
}

func testLoginUserExisting(t *testing.T, f *fixture) {
	first, _, err := f.loginUser("app", store.NewUser{OpenID: "o", UnionID: "u", Nickname: "Ann", AvatarURL: "https://a/1", Gender: 2}, at(0))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		nu   store.NewUser
	}{
		{"same profile", store.NewUser{OpenID: "o", UnionID: "u", Nickname: "Ann", AvatarURL: "https://a/1", Gender: 2}},
		{"other profile is ignored", store.NewUser{OpenID: "o", Nickname: "Eve", AvatarURL: "https://evil/", Gender: 1}},
		{"other unionid is ignored", store.NewUser{OpenID: "o", UnionID: "u-other"}},
		{"link flag", store.NewUser{OpenID: "o", UnionID: "u", LinkByUnionID: true}},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := f.with(t)
			u, created, err := f.loginUser("app", tc.nu, at(time.Duration(i+1)*time.Hour))
			if err != nil {
				t.Fatalf("Login: %v", err)
			}
			if created {
				t.Error("created = true for an existing openid")
			}
			equal(t, "returning user", u, first)
		})
	}
	if _, err := f.s.UserByUnionID(f.ctx, "app", "u-other"); !isNotFound(err) {
		t.Errorf("a login's other unionid got indexed: %v", err)
	}
}

func testLoginUserUnionIDLater(t *testing.T, f *fixture) {
	u0, _, err := f.loginUser("app", store.NewUser{OpenID: "o", Nickname: "Ann"}, at(0))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.s.UserByUnionID(f.ctx, "app", "u-1"); !isNotFound(err) {
		t.Fatalf("UserByUnionID before it is known: %v", err)
	}
	steps := []struct {
		name    string
		unionID string
		now     time.Time
		want    store.User
	}{
		{"no unionid yet", "", at(time.Minute), u0},
		{"unionid filled", "u-1", at(time.Hour), withUnion(u0, "u-1", at(time.Hour))},
		{"never overwritten", "u-2", at(2 * time.Hour), withUnion(u0, "u-1", at(time.Hour))},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			f := f.with(t)
			u, created, err := f.loginUser("app", store.NewUser{OpenID: "o", UnionID: st.unionID, Nickname: "ignored"}, st.now)
			if err != nil {
				t.Fatalf("Login: %v", err)
			}
			if created {
				t.Error("created = true")
			}
			equal(t, "Login's user", u, st.want)
			got, err := f.s.User(f.ctx, "app", u.ID)
			if err != nil {
				t.Fatalf("User: %v", err)
			}
			equal(t, "stored user", got, st.want)
		})
	}
	got, err := f.s.UserByUnionID(f.ctx, "app", "u-1")
	if err != nil {
		t.Fatalf("UserByUnionID after it was filled in: %v", err)
	}
	equal(t, "UserByUnionID", got, withUnion(u0, "u-1", at(time.Hour)))
	if _, err := f.s.UserByUnionID(f.ctx, "app", "u-2"); !isNotFound(err) {
		t.Errorf("UserByUnionID of an ignored unionid: %v", err)
	}
}

func withUnion(u store.User, unionID string, now time.Time) store.User {
	u.UnionID, u.UpdatedAt = unionID, now
	return u
}

func testLoginUserLink(t *testing.T, f *fixture) {
	tests := []struct {
		name        string
		nu          store.NewUser
		wantCreated bool
		wantID      uint64
	}{
		{"on, unionid known: linked", store.NewUser{OpenID: "o-2", UnionID: "u-1", LinkByUnionID: true}, false, 1},
		{"off, unionid known: new user", store.NewUser{OpenID: "o-2", UnionID: "u-1"}, true, 2},
		{"on, unionid unknown: new user", store.NewUser{OpenID: "o-2", UnionID: "u-9", LinkByUnionID: true}, true, 2},
		{"on, no unionid: new user", store.NewUser{OpenID: "o-2", LinkByUnionID: true}, true, 2},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := f.with(t)
			app := fmt.Sprintf("app-%d", i)
			first, _, err := f.loginUser(app, store.NewUser{OpenID: "o-1", UnionID: "u-1", Nickname: "Ann"}, at(0))
			if err != nil {
				t.Fatal(err)
			}
			u, created, err := f.loginUser(app, tc.nu, at(time.Hour))
			if err != nil {
				t.Fatalf("Login: %v", err)
			}
			if created != tc.wantCreated || u.ID != tc.wantID {
				t.Fatalf("Login = id %d, created %v; want id %d, created %v", u.ID, created, tc.wantID, tc.wantCreated)
			}
			if !created {
				equal(t, "linked user", u, first)
			} else if u.OpenID != tc.nu.OpenID || u.UnionID != tc.nu.UnionID {
				t.Errorf("new user has openid %q unionid %q, want %q %q", u.OpenID, u.UnionID, tc.nu.OpenID, tc.nu.UnionID)
			}
			// The second openid now finds that user, with or without the flag.
			for _, nu := range []store.NewUser{{OpenID: "o-2"}, {OpenID: "o-2", UnionID: "u-1", LinkByUnionID: true}} {
				again, created, err := f.loginUser(app, nu, at(2*time.Hour))
				if err != nil || created || again.ID != tc.wantID {
					t.Errorf("second login of o-2 = id %d, created %v, %v; want id %d", again.ID, created, err, tc.wantID)
				}
			}
			byOpen, err := f.s.UserByOpenID(f.ctx, app, "o-2")
			if err != nil || byOpen.ID != tc.wantID {
				t.Errorf("UserByOpenID(o-2) = id %d, %v; want %d", byOpen.ID, err, tc.wantID)
			}
			byOpen, err = f.s.UserByOpenID(f.ctx, app, "o-1")
			if err != nil || byOpen.ID != 1 {
				t.Errorf("UserByOpenID(o-1) = id %d, %v; want 1", byOpen.ID, err)
			}
		})
	}
}

func testLoginUserConcurrent(t *testing.T, f *fixture) {
	const n = 64
	type result struct {
		u       store.User
		created bool
		err     error
	}
	results := make([]result, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			nu := store.NewUser{OpenID: "same", Nickname: fmt.Sprintf("n%d", i)}
			results[i].u, results[i].created, results[i].err = f.loginUser("app", nu, at(0))
		}()
	}
	close(start)
	wg.Wait()

	createdCount := 0
	for i, r := range results {
		if r.err != nil {
			t.Fatalf("Login #%d: %v", i, r.err)
		}
		if r.created {
			createdCount++
		}
		if r.u.ID != 1 {
			t.Errorf("Login #%d: id %d, want 1", i, r.u.ID)
		}
	}
	if createdCount != 1 {
		t.Errorf("%d calls report created, want exactly 1", createdCount)
	}
	if u, _, err := f.loginUser("app", store.NewUser{OpenID: "other"}, at(time.Second)); err != nil || u.ID != 2 {
		t.Errorf("next new user has id %d, want 2 (one user per openid)", u.ID)
	}
}

func testLoginUserSequentialIDs(t *testing.T, f *fixture) {
	steps := []struct {
		app, openID string
		wantID      uint64
	}{
		{"app-a", "a1", 1},
		{"app-b", "b1", 1},
		{"app-a", "a2", 2},
		{"app-a", "a1", 1}, // returning: no id consumed
		{"app-a", "a3", 3},
		{"app-b", "b2", 2},
		{"app-b", "a3", 3}, // same openid, other app: another user
		{"app-a", "a4", 4},
	}
	for i, st := range steps {
		u, _, err := f.loginUser(st.app, store.NewUser{OpenID: st.openID}, at(time.Duration(i)*time.Minute))
		if err != nil {
			t.Fatalf("step %d: Login: %v", i, err)
		}
		if u.ID != st.wantID || u.AppID != st.app {
			t.Errorf("step %d: login %s/%s got id %d app %q, want id %d", i, st.app, st.openID, u.ID, u.AppID, st.wantID)
		}
	}
}

func testLoginUserInvalid(t *testing.T, f *fixture) {
	tests := []struct {
		name string
		app  string
		nu   store.NewUser
	}{
		{"empty openid", "app", store.NewUser{Nickname: "x"}},
		{"empty app", "", store.NewUser{OpenID: "o"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := f.with(t)
			if _, _, err := f.loginUser(tc.app, tc.nu, at(0)); err == nil {
				t.Error("Login accepted invalid input")
			}
		})
	}
	if u, _, err := f.loginUser("app", store.NewUser{OpenID: "o"}, at(time.Second)); err != nil || u.ID != 1 {
		t.Errorf("first valid user got id %d, want 1 (rejected logins must consume nothing)", u.ID)
	}
}

func testUserNotFound(t *testing.T, f *fixture) {
	f.login("app", "o-1", "", at(0))
	f.login("app", "o-2", "u-2", at(0))
	tests := []struct {
		name string
		call func() (store.User, error)
	}{
		{"id 0", func() (store.User, error) { return f.s.User(f.ctx, "app", 0) }},
		{"unknown id", func() (store.User, error) { return f.s.User(f.ctx, "app", 99) }},
		{"unknown app", func() (store.User, error) { return f.s.User(f.ctx, "nope", 1) }},
		{"empty app", func() (store.User, error) { return f.s.User(f.ctx, "", 1) }},
		{"unknown openid", func() (store.User, error) { return f.s.UserByOpenID(f.ctx, "app", "o-9") }},
		{"empty openid", func() (store.User, error) { return f.s.UserByOpenID(f.ctx, "app", "") }},
		{"openid in unknown app", func() (store.User, error) { return f.s.UserByOpenID(f.ctx, "nope", "o-1") }},
		{"unknown unionid", func() (store.User, error) { return f.s.UserByUnionID(f.ctx, "app", "u-9") }},
		{"empty unionid", func() (store.User, error) { return f.s.UserByUnionID(f.ctx, "app", "") }},
		{"unionid in unknown app", func() (store.User, error) { return f.s.UserByUnionID(f.ctx, "nope", "u-2") }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u, err := tc.call()
			wantErr(t, "lookup", err, store.ErrNotFound)
			if u.ID != 0 {
				t.Errorf("lookup returned user %d with its error", u.ID)
			}
		})
	}
}

func testUpdateUser(t *testing.T, f *fixture) {
	str := func(s string) *string { return &s }
	num := func(n int) *int { return &n }
	tests := []struct {
		name  string
		patch store.ProfilePatch
		apply func(*store.User)
	}{
		{"nickname", store.ProfilePatch{Nickname: str("Bob")}, func(u *store.User) { u.Nickname = "Bob" }},
		{"avatar", store.ProfilePatch{AvatarURL: str("https://img.example/b.png")}, func(u *store.User) { u.AvatarURL = "https://img.example/b.png" }},
		{"gender to zero", store.ProfilePatch{Gender: num(0)}, func(u *store.User) { u.Gender = 0 }},
		{"phone", store.ProfilePatch{Phone: str("+8613800138000")}, func(u *store.User) { u.Phone = "+8613800138000" }},
		{"empty nickname", store.ProfilePatch{Nickname: str("")}, func(u *store.User) { u.Nickname = "" }},
		{"all", store.ProfilePatch{Nickname: str("C"), AvatarURL: str("https://c/"), Gender: num(1), Phone: str("555")}, func(u *store.User) {
			u.Nickname, u.AvatarURL, u.Gender, u.Phone = "C", "https://c/", 1, "555"
		}},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := f.with(t)
			orig, _, err := f.loginUser("app", store.NewUser{OpenID: fmt.Sprintf("o-%d", i), UnionID: fmt.Sprintf("u-%d", i), Nickname: "Ann", AvatarURL: "https://a/", Gender: 2}, at(0))
			if err != nil {
				t.Fatal(err)
			}
			want := orig
			tc.apply(&want)
			want.UpdatedAt = at(time.Hour)
			got, err := f.s.UpdateUser(f.ctx, "app", orig.ID, tc.patch, at(time.Hour))
			if err != nil {
				t.Fatalf("UpdateUser: %v", err)
			}
			equal(t, "UpdateUser result", got, want)
			stored, err := f.s.User(f.ctx, "app", orig.ID)
			if err != nil {
				t.Fatalf("User: %v", err)
			}
			equal(t, "stored user", stored, want)
			// A later login does not undo the patch.
			again, _, err := f.loginUser("app", store.NewUser{OpenID: orig.OpenID, Nickname: "Ann"}, at(2*time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			equal(t, "user after a later login", again, want)
		})
	}
	nick := str("x")
	for _, c := range []struct {
		app string
		id  uint64
	}{{"app", 0}, {"app", 999}, {"other", 1}} {
		_, err := f.s.UpdateUser(f.ctx, c.app, c.id, store.ProfilePatch{Nickname: nick}, at(time.Hour))
		wantErr(t, fmt.Sprintf("UpdateUser(%q, %d)", c.app, c.id), err, store.ErrNotFound)
	}
}

func testAppIsolation(t *testing.T, f *fixture) {
	ua := f.login("app-a", "same-openid", "same-unionid", at(0))
	ub := f.login("app-b", "same-openid", "same-unionid", at(time.Minute))
	if ua.ID != 1 || ub.ID != 1 || ua.AppID != "app-a" || ub.AppID != "app-b" {
		t.Fatalf("same openid in two apps: got %+v and %+v, want two users with id 1", ua, ub)
	}
	if got, err := f.s.UserByOpenID(f.ctx, "app-b", "same-openid"); err != nil || !got.CreatedAt.Equal(at(time.Minute)) {
		t.Errorf("app-b's user: %+v, %v", got, err)
	}
	name := "A"
	if _, err := f.s.UpdateUser(f.ctx, "app-a", 1, store.ProfilePatch{Nickname: &name}, at(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if got, _ := f.s.User(f.ctx, "app-b", 1); got.Nickname != "" {
		t.Errorf("UpdateUser in app-a changed app-b's user: %+v", got)
	}

	sa, toka := f.startSession(ua, "sid-a", at(0))
	_, tokb := f.startSession(ub, "sid-b", at(0))
	next := nextToken(sa.ID, "a-next", at(time.Hour), refreshTTL)
	tests := []struct {
		name string
		call func() error
	}{
		{"Session", func() error { _, err := f.s.Session(f.ctx, "app-b", sa.ID); return err }},
		{"RefreshToken", func() error { _, err := f.s.RefreshToken(f.ctx, "app-b", toka.Hash); return err }},
		{"Rotate", func() error { _, err := f.s.Rotate(f.ctx, "app-b", toka.Hash, next, at(time.Hour), grace); return err }},
		{"RevokeSession", func() error { _, err := f.s.RevokeSession(f.ctx, "app-b", sa.ID, "logout", at(time.Hour)); return err }},
		{"Session in unknown app", func() error { _, err := f.s.Session(f.ctx, "app-c", sa.ID); return err }},
		{"RefreshToken in unknown app", func() error { _, err := f.s.RefreshToken(f.ctx, "app-c", toka.Hash); return err }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			wantErr(t, tc.name+" across apps", tc.call(), store.ErrNotFound)
		})
	}
	// RevokeUserSessions of app-b's user 1 leaves app-a's user 1 alone.
	revoked, err := f.s.RevokeUserSessions(f.ctx, "app-b", 1, "logout_all", at(time.Hour))
	if err != nil || len(revoked) != 1 || revoked[0].ID != "sid-b" {
		t.Errorf("RevokeUserSessions(app-b, 1) = %+v, %v; want only sid-b", revoked, err)
	}
	if s := f.session("app-a", sa.ID); s.Revoked() {
		t.Error("revoking app-b's user revoked app-a's session")
	}
	if revs, err := f.s.Revocations(f.ctx, "app-a", time.Time{}); err != nil || len(revs) != 0 {
		t.Errorf("Revocations(app-a) = %+v, %v; want none", revs, err)
	}
	// app-a's token still rotates normally.
	if res := f.rotate("app-a", toka.Hash, next, at(time.Hour)); res.Outcome != store.Rotated {
		t.Errorf("Rotate in own app: outcome %v, want Rotated", res.Outcome)
	}
	_, err = f.s.Rotate(f.ctx, "app-b", tokb.Hash, nextToken("sid-b", "b-next", at(time.Hour), refreshTTL), at(time.Hour), grace)
	wantErr(t, "Rotate of app-b's revoked session", err, store.ErrRevoked)
	// Secrets are per app.
	va, err := f.s.Secret(f.ctx, "app-a", "key", func() ([]byte, error) { return []byte("secret-a"), nil })
	if err != nil {
		t.Fatal(err)
	}
	vb, err := f.s.Secret(f.ctx, "app-b", "key", func() ([]byte, error) { return []byte("secret-b"), nil })
	if err != nil {
		t.Fatal(err)
	}
	if string(va) != "secret-a" || string(vb) != "secret-b" {
		t.Errorf("secrets of two apps: %q and %q, want secret-a and secret-b", va, vb)
	}
}
