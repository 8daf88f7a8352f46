package storetest

import (
	"testing"
	"time"

	"github.com/wxauth/caddy-wechat-auth/store"
)

// Contract tests of the operator methods: UserByPhone, UserSessions, Ban,
// Unban and Stats.

// setPhone sets a user's phone and fails the test on error.
func (f *fixture) setPhone(app string, id uint64, phone string, now time.Time) {
	f.t.Helper()
	if _, err := f.s.UpdateUser(f.ctx, app, id, store.ProfilePatch{Phone: &phone}, now); err != nil {
		f.t.Fatalf("UpdateUser(%d, phone %q): %v", id, phone, err)
	}
}

func testUserByPhone(t *testing.T, f *fixture) {
	a := f.login("app", "o-a", "", at(0))
	b := f.login("app", "o-b", "", at(0))
	c := f.login("app", "o-c", "", at(0))
	other := f.login("other", "o-x", "", at(0))
	f.setPhone("app", b.ID, "+86 138 0000 0001", at(time.Minute))
	f.setPhone("app", a.ID, "+86 138 0000 0001", at(time.Minute)) // shared: lowest id wins
	f.setPhone("app", c.ID, "+86 138 0000 00011", at(time.Minute))
	f.setPhone("other", other.ID, "555", at(time.Minute))

	wantUser := func(t *testing.T, app, phone string, want uint64) {
		t.Helper()
		u, err := f.s.UserByPhone(f.ctx, app, phone)
		if err != nil {
			t.Fatalf("UserByPhone(%q, %q): %v", app, phone, err)
		}
		if u.ID != want || u.Phone != phone {
			t.Fatalf("UserByPhone(%q, %q) = user %d with phone %q, want user %d", app, phone, u.ID, u.Phone, want)
		}
	}
	wantNone := func(t *testing.T, app, phone string) {
		t.Helper()
		_, err := f.s.UserByPhone(f.ctx, app, phone)
		wantErr(t, "UserByPhone("+app+", "+phone+")", err, store.ErrNotFound)
	}
	wantUser(t, "app", "+86 138 0000 0001", a.ID)
	wantUser(t, "app", "+86 138 0000 00011", c.ID) // no prefix confusion
	wantUser(t, "other", "555", other.ID)
	wantNone(t, "app", "555") // another app's phone
	wantNone(t, "app", "+86 138 0000 000")
	wantNone(t, "app", "")
	wantNone(t, "no-such-app", "555")

	// Changing a phone moves the index entry; clearing it drops it.
	f.setPhone("app", a.ID, "+86 139 0000 0002", at(2*time.Minute))
	wantUser(t, "app", "+86 138 0000 0001", b.ID)
	wantUser(t, "app", "+86 139 0000 0002", a.ID)
	f.setPhone("app", b.ID, "", at(3*time.Minute))
	wantNone(t, "app", "+86 138 0000 0001")
	// Other writes of the user keep the index.
	nick := "Ann"
	if _, err := f.s.UpdateUser(f.ctx, "app", a.ID, store.ProfilePatch{Nickname: &nick}, at(4*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.s.Ban(f.ctx, "app", a.ID, "test", at(5*time.Minute)); err != nil {
		t.Fatal(err)
	}
	wantUser(t, "app", "+86 139 0000 0002", a.ID)
}

func testUserSessions(t *testing.T, f *fixture) {
	u := f.login("app", "o", "", at(0))
	v := f.login("app", "o-2", "", at(0))
	s1, tok1 := f.startSession(u, "sid-1", at(time.Minute))
	s2, _ := f.startSession(u, "sid-2", at(2*time.Minute))
	s3, _ := f.startSession(u, "sid-3", at(3*time.Minute))
	f.startSession(v, "sid-v", at(4*time.Minute))

	// A rotation shows as RefreshedAt; a revocation stays listed.
	rot := at(time.Hour)
	res := f.rotate("app", tok1.Hash, nextToken(s1.ID, "sid-1/1", rot, refreshTTL), rot)
	if !res.Session.RefreshedAt.Equal(rot) {
		t.Errorf("RotateResult.Session.RefreshedAt = %v, want %v", res.Session.RefreshedAt, rot)
	}
	revoked, err := f.s.RevokeSession(f.ctx, "app", s2.ID, store.ReasonAdmin, at(2*time.Hour))
	if err != nil {
		t.Fatal(err)
	}

	got, err := f.s.UserSessions(f.ctx, "app", u.ID)
	if err != nil {
		t.Fatalf("UserSessions: %v", err)
	}
	s1.RefreshedAt, s1.ExpiresAt = rot, rot.Add(refreshTTL)
	equal(t, "UserSessions (newest first)", got, []store.Session{s3, revoked, s1})
	if got[1].RevokeReason != store.ReasonAdmin {
		t.Errorf("revoked session's reason = %q, want %q", got[1].RevokeReason, store.ReasonAdmin)
	}

	// A user without sessions has an empty list; unknown users and other
	// apps' users are not found.
	w := f.login("app", "o-3", "", at(0))
	if got, err := f.s.UserSessions(f.ctx, "app", w.ID); err != nil || len(got) != 0 {
		t.Errorf("UserSessions of a user without sessions = %v, %v; want none", got, err)
	}
	for _, tc := range []struct {
		app string
		id  uint64
	}{{"app", 999}, {"app", 0}, {"other", u.ID}} {
		_, err := f.s.UserSessions(f.ctx, tc.app, tc.id)
		wantErr(t, "UserSessions of an unknown user", err, store.ErrNotFound)
	}

	// Pruned sessions leave the list.
	if _, err := f.s.Prune(f.ctx, at(0), at(3*time.Hour)); err != nil {
		t.Fatal(err)
	}
	got, err = f.s.UserSessions(f.ctx, "app", u.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].ID != s3.ID || got[1].ID != s1.ID {
		t.Errorf("UserSessions after pruning the revoked session: %+v", got)
	}
}

func testBan(t *testing.T, f *fixture) {
	u := f.login("app", "o", "", at(0))
	bystander := f.login("app", "o-2", "", at(0))
	f.startSession(u, "sid-1", at(time.Minute))
	f.startSession(u, "sid-2", at(time.Minute))
	old, _ := f.startSession(u, "sid-old", at(time.Minute))
	if _, err := f.s.RevokeSession(f.ctx, "app", old.ID, store.ReasonLogout, at(2*time.Minute)); err != nil {
		t.Fatal(err)
	}
	f.startSession(bystander, "sid-b", at(time.Minute))

	now := at(time.Hour)
	banned, revoked, err := f.s.Ban(f.ctx, "app", u.ID, "spam", now)
	if err != nil {
		t.Fatalf("Ban: %v", err)
	}
	if !banned.Banned || banned.BanReason != "spam" || !banned.UpdatedAt.Equal(now) {
		t.Errorf("Ban returned %+v, want banned for spam at %v", banned, now)
	}
	if len(revoked) != 2 || revoked[0].ID != "sid-1" || revoked[1].ID != "sid-2" {
		t.Fatalf("Ban revoked %+v, want sid-1 and sid-2", revoked)
	}
	for _, s := range revoked {
		if !s.RevokedAt.Equal(now) || s.RevokeReason != store.ReasonBan {
			t.Errorf("session %s: revoked at %v for %q, want %v for %q", s.ID, s.RevokedAt, s.RevokeReason, now, store.ReasonBan)
		}
		equal(t, "stored session "+s.ID, f.session("app", s.ID), s)
	}
	// The session revoked before keeps its reason.
	if s := f.session("app", old.ID); s.RevokeReason != store.ReasonLogout {
		t.Errorf("earlier logout became %q", s.RevokeReason)
	}
	equal(t, "User after Ban", mustUser(t, f, "app", u.ID), banned)
	if s := f.session("app", "sid-b"); s.Revoked() {
		t.Error("Ban revoked another user's session")
	}
	revs, err := f.s.Revocations(f.ctx, "app", now)
	if err != nil || len(revs) != 2 {
		t.Errorf("Revocations after Ban = %+v, %v; want the two banned sessions", revs, err)
	}

	// Banning again updates the reason and revokes nothing more.
	again, revoked, err := f.s.Ban(f.ctx, "app", u.ID, "fraud", at(2*time.Hour))
	if err != nil || len(revoked) != 0 || again.BanReason != "fraud" || !again.Banned {
		t.Errorf("second Ban = %+v, %v, %v; want reason fraud, nothing revoked", again, revoked, err)
	}

	// Unknown users, and other apps' users, cannot be banned.
	for _, tc := range []struct {
		app string
		id  uint64
	}{{"app", 999}, {"app", 0}, {"other", u.ID}} {
		_, _, err := f.s.Ban(f.ctx, tc.app, tc.id, "x", now)
		wantErr(t, "Ban of an unknown user", err, store.ErrNotFound)
		_, err = f.s.Unban(f.ctx, tc.app, tc.id, now)
		wantErr(t, "Unban of an unknown user", err, store.ErrNotFound)
	}
}

func testBanRefusesLogin(t *testing.T, f *fixture) {
	u := f.login("app", "o", "", at(0))
	if _, _, err := f.s.Ban(f.ctx, "app", u.ID, "spam", at(time.Minute)); err != nil {
		t.Fatal(err)
	}
	// Login: refused, and nothing written (no session, no token, no
	// unionid filled in).
	s, tok := newSession(u, "sid-after-ban", at(time.Hour))
	_, _, _, err := f.s.Login(f.ctx, "app", store.NewUser{OpenID: "o", UnionID: "u-new"}, s, tok, at(time.Hour))
	wantErr(t, "Login of a banned user", err, store.ErrBanned)
	f.noSession("app", s.ID)
	f.noToken("app", tok.Hash)
	if got := mustUser(t, f, "app", u.ID); got.UnionID != "" {
		t.Errorf("refused Login filled in unionid %q", got.UnionID)
	}
	// Login: refused with and without a new unionid.
	for _, nu := range []store.NewUser{{OpenID: "o"}, {OpenID: "o", UnionID: "u-new"}} {
		_, _, err := f.loginUser("app", nu, at(time.Hour))
		wantErr(t, "Login of a banned user", err, store.ErrBanned)
	}
	// Linking a new openid to a banned user by unionid is refused too.
	v := f.login("app", "o-v", "u-v", at(0))
	if _, _, err := f.s.Ban(f.ctx, "app", v.ID, "", at(time.Minute)); err != nil {
		t.Fatal(err)
	}
	_, _, err = f.loginUser("app", store.NewUser{OpenID: "o-v2", UnionID: "u-v", LinkByUnionID: true}, at(time.Hour))
	wantErr(t, "Login linking to a banned user", err, store.ErrBanned)
	if _, err := f.s.UserByOpenID(f.ctx, "app", "o-v2"); err == nil {
		t.Error("refused link indexed the new openid")
	}
	// Other users log in as before.
	if _, created, err := f.loginUser("app", store.NewUser{OpenID: "o-w"}, at(time.Hour)); err != nil || !created {
		t.Errorf("Login of another user = %v, %v", created, err)
	}
}

func testUnban(t *testing.T, f *fixture) {
	u := f.login("app", "o", "", at(0))
	if _, _, err := f.s.Ban(f.ctx, "app", u.ID, "spam", at(time.Minute)); err != nil {
		t.Fatal(err)
	}
	now := at(time.Hour)
	got, err := f.s.Unban(f.ctx, "app", u.ID, now)
	if err != nil {
		t.Fatalf("Unban: %v", err)
	}
	if got.Banned || got.BanReason != "" || !got.UpdatedAt.Equal(now) {
		t.Errorf("Unban returned %+v", got)
	}
	equal(t, "User after Unban", mustUser(t, f, "app", u.ID), got)
	// Idempotent: nothing changes, not even UpdatedAt.
	again, err := f.s.Unban(f.ctx, "app", u.ID, at(2*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "second Unban", again, got)
	// The user logs in again.
	s, tok := newSession(u, "sid-after-unban", at(3*time.Hour))
	lu, stored, created, err := f.s.Login(f.ctx, "app", store.NewUser{OpenID: "o"}, s, tok, at(3*time.Hour))
	if err != nil || created || lu.ID != u.ID {
		t.Fatalf("Login after Unban = user %d, created %v, %v", lu.ID, created, err)
	}
	equal(t, "session after Unban", f.session("app", s.ID), stored)
}

func testStats(t *testing.T, f *fixture) {
	st, err := f.s.Stats(f.ctx, "empty-app", at(0))
	if err != nil || st != (store.Stats{}) {
		t.Errorf("Stats of an app without data = %+v, %v", st, err)
	}
	u := f.login("app", "o-1", "", at(0))
	v := f.login("app", "o-2", "", at(0))
	f.login("app", "o-3", "", at(0))
	f.login("other", "o-1", "", at(0))
	f.startSession(u, "live-1", at(0))
	f.startSession(u, "live-2", at(0))
	f.startSession(v, "revoked", at(0))
	if _, err := f.s.RevokeSession(f.ctx, "app", "revoked", store.ReasonLogout, at(time.Minute)); err != nil {
		t.Fatal(err)
	}
	short, tok := newSession(v, "expiring", at(0))
	short.ExpiresAt, tok.ExpiresAt = at(time.Hour), at(time.Hour)
	f.createSession(short, tok)

	for _, tc := range []struct {
		now  time.Time
		want store.Stats
	}{
		{at(30 * time.Minute), store.Stats{Users: 3, ActiveSessions: 3}},
		{at(time.Hour), store.Stats{Users: 3, ActiveSessions: 2}}, // expired at its ExpiresAt
		{at(2 * time.Hour), store.Stats{Users: 3, ActiveSessions: 2}},
	} {
		st, err := f.s.Stats(f.ctx, "app", tc.now)
		if err != nil {
			t.Fatalf("Stats: %v", err)
		}
		if st != tc.want {
			t.Errorf("Stats at %v = %+v, want %+v", tc.now, st, tc.want)
		}
	}
	// A ban revokes; a returning login adds no user.
	if _, _, err := f.s.Ban(f.ctx, "app", u.ID, "", at(time.Minute)); err != nil {
		t.Fatal(err)
	}
	f.login("app", "o-2", "", at(time.Minute))
	st, err = f.s.Stats(f.ctx, "app", at(30*time.Minute))
	if want := (store.Stats{Users: 3, ActiveSessions: 1}); err != nil || st != want {
		t.Errorf("Stats after a ban = %+v, %v; want %+v", st, err, want)
	}
	if st, err := f.s.Stats(f.ctx, "other", at(0)); err != nil || st.Users != 1 {
		t.Errorf("Stats of another app = %+v, %v", st, err)
	}
}

// mustUser reads a user and fails the test on error.
func mustUser(t *testing.T, f *fixture, app string, id uint64) store.User {
	t.Helper()
	u, err := f.s.User(f.ctx, app, id)
	if err != nil {
		t.Fatalf("User(%q, %d): %v", app, id, err)
	}
	return u
}
