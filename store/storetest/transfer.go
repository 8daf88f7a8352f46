package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/wxauth/caddy-wechat-auth/store"
)

// transferTests cover Export, Import and ReplaceSecret.
var transferTests = []struct {
	name string
	fn   func(*testing.T, *fixture)
}{
	{"Export/Order", testExportOrder},
	{"Import/RoundTrip", testImportRoundTrip},
	{"Import/Conflict", testImportConflict},
	{"Import/IDsContinue", testImportIDsContinue},
	{"Import/Invalid", testImportInvalid},
	{"ReplaceSecret", testReplaceSecret},
	{"ReplaceSecret/Concurrent", testReplaceSecretConcurrent},
}

// seedTransfer fills app with what an export must carry: two secrets;
// three users (one with a unionid, phone and profile, one without any
// session); two more openids linked by unionid to user 1 ("o1-b" linked
// first, then "o1-a"); an active session rotated once (two tokens) and a
// revoked one. It returns the live session's current token.
func seedTransfer(f *fixture, app string) store.RefreshToken {
	f.t.Helper()
	for _, name := range []string{"signing_key", "refresh_derivation_v1"} {
		if _, err := f.s.Secret(f.ctx, app, name, func() ([]byte, error) { return []byte("value of " + name), nil }); err != nil {
			f.t.Fatalf("Secret: %v", err)
		}
	}
	u1 := f.login(app, "o1", "u1", at(0))
	nick, phone, gender := "Ann", "+86 131 0000 0000", 2
	if _, err := f.s.UpdateUser(f.ctx, app, u1.ID, store.ProfilePatch{Nickname: &nick, Phone: &phone, Gender: &gender}, at(time.Minute)); err != nil {
		f.t.Fatalf("UpdateUser: %v", err)
	}
	u2 := f.login(app, "o2", "", at(time.Second))
	f.login(app, "o3", "", at(2*time.Second))
	for _, openID := range []string{"o1-b", "o1-a"} {
		u, created, err := CreateUser(f.ctx, f.s, app, store.NewUser{OpenID: openID, UnionID: "u1", LinkByUnionID: true}, at(3*time.Second))
		if err != nil || created || u.ID != u1.ID {
			f.t.Fatalf("CreateUser(%q) linking by unionid = user %d, created %v, %v; want user %d", openID, u.ID, created, err, u1.ID)
		}
	}
	_, tok := f.startSession(u1, "live", at(time.Minute))
	next := nextToken("live", app+"/live/1", at(time.Hour), refreshTTL)
	f.rotate(app, tok.Hash, next, at(time.Hour))
	f.startSession(u2, "ended", at(2*time.Minute))
	if _, err := f.s.RevokeSession(f.ctx, app, "ended", store.ReasonLogout, at(3*time.Minute)); err != nil {
		f.t.Fatalf("RevokeSession: %v", err)
	}
	return next
}

// export returns every record Export gives for app.
func (f *fixture) export(app string) []store.Record {
	f.t.Helper()
	var recs []store.Record
	err := f.s.Export(f.ctx, app, func(r store.Record) error {
		recs = append(recs, r)
		return nil
	})
	if err != nil {
		f.t.Fatalf("Export(%q): %v", app, err)
	}
	return recs
}

// other opens a second store of the backend, closed when the test ends.
func (f *fixture) other() *fixture {
	f.t.Helper()
	if f.open == nil {
		f.t.Skip("no second store to import into")
	}
	s := f.open(f.t)
	f.t.Cleanup(func() {
		if err := s.Close(); err != nil && !errors.Is(err, store.ErrClosed) {
			f.t.Errorf("closing store: %v", err)
		}
	})
	return &fixture{t: f.t, s: s, ctx: f.ctx, open: f.open}
}

// kind names the field a record sets.
func kind(r store.Record) string {
	switch {
	case r.Secret != nil:
		return "secret"
	case r.User != nil:
		return "user"
	case r.OpenID != nil:
		return "openid"
	case r.Session != nil:
		return "session"
	case r.Token != nil:
		return "token"
	case r.Avatar != nil:
		return "avatar"
	}
	return "empty"
}

func testExportOrder(t *testing.T, f *fixture) {
	seedTransfer(f, "app")
	f.login("other-app", "o1", "", at(0)) // not exported with app
	recs := f.export("app")
	var kinds []string
	session := ""
	for i, r := range recs {
		k := kind(r)
		kinds = append(kinds, k)
		switch k {
		case "session":
			session = r.Session.ID
			if r.Session.AppID != "app" {
				t.Errorf("record %d: session of app %q", i, r.Session.AppID)
			}
		case "token":
			if r.Token.SessionID != session {
				t.Errorf("record %d: token of session %q follows session %q", i, r.Token.SessionID, session)
			}
		case "user":
			if r.User.AppID != "app" {
				t.Errorf("record %d: user of app %q", i, r.User.AppID)
			}
		}
	}
	// Secrets, users, linked openids, then each session followed by its
	// tokens.
	want := []string{"secret", "secret", "user", "user", "user", "openid", "openid", "session", "token", "token", "session", "token"}
	if len(recs) > 7 && recs[7].Session != nil && recs[7].Session.ID == "ended" {
		want = []string{"secret", "secret", "user", "user", "user", "openid", "openid", "session", "token", "session", "token", "token"}
	}
	if fmt.Sprint(kinds) != fmt.Sprint(want) {
		t.Fatalf("Export gave %v, want %v", kinds, want)
	}
	for i, id := range []uint64{1, 2, 3} {
		if got := recs[2+i].User.ID; got != id {
			t.Errorf("user record %d has id %d, want %d (users by id)", i, got, id)
		}
	}
	// Only the openids linked besides a user's own, by openid.
	for i, openID := range []string{"o1-a", "o1-b"} {
		if got := *recs[5+i].OpenID; got != (store.OpenIDRecord{OpenID: openID, UserID: 1}) {
			t.Errorf("openid record %d = %+v, want %q of user 1 (linked openids by openid)", i, got, openID)
		}
	}
	for _, r := range recs {
		if r.Session != nil && r.Session.ID == "live" && string(r.Session.SealedSessionKey) != "sealed:live" {
			t.Errorf("session record = %+v, want its sealed key as stored", r.Session)
		}
	}
	// An error from fn stops the export and comes back.
	stop := errors.New("disk full")
	calls := 0
	err := f.s.Export(f.ctx, "app", func(store.Record) error { calls++; return stop })
	if !errors.Is(err, stop) || calls != 1 {
		t.Errorf("Export with a failing fn: error %v after %d calls, want %v after 1", err, calls, stop)
	}
	// An app without data exports nothing.
	if recs := f.export("no-such-app"); len(recs) != 0 {
		t.Errorf("Export of an unknown app gave %d records", len(recs))
	}
}

func testImportRoundTrip(t *testing.T, f *fixture) {
	current := seedTransfer(f, "app")
	recs := f.export("app")
	dst := f.other()
	if err := dst.s.Import(dst.ctx, "app", recs); err != nil {
		t.Fatalf("Import: %v", err)
	}
	equal(t, "export of the imported store", dst.export("app"), recs)

	// The imported store works like the original.
	u, err := dst.s.UserByOpenID(dst.ctx, "app", "o1")
	if err != nil || u.ID != 1 || u.Phone != "+86 131 0000 0000" {
		t.Errorf("UserByOpenID after Import = %+v, %v; want user 1 with its phone", u, err)
	}
	if u, err := dst.s.UserByUnionID(dst.ctx, "app", "u1"); err != nil || u.ID != 1 {
		t.Errorf("UserByUnionID after Import = %+v, %v; want user 1", u, err)
	}
	// The linked openids still lead to user 1, without linking again: a
	// login that knows only the openid finds the user.
	for _, openID := range []string{"o1-a", "o1-b"} {
		if u, err := dst.s.UserByOpenID(dst.ctx, "app", openID); err != nil || u.ID != 1 || u.OpenID != "o1" {
			t.Errorf("UserByOpenID(%q) after Import = %+v, %v; want user 1", openID, u, err)
		}
		u, created, err := dst.loginUser("app", store.NewUser{OpenID: openID}, at(time.Hour))
		if err != nil || created || u.ID != 1 {
			t.Errorf("Login(%q) after Import = user %d, created %v, %v; want existing user 1", openID, u.ID, created, err)
		}
	}
	if st, err := dst.s.Stats(dst.ctx, "app", at(time.Hour)); err != nil || st.Users != 3 {
		t.Errorf("Stats after Import = %+v, %v; want 3 users (a linked openid is no user)", st, err)
	}
	got, err := dst.s.Secret(dst.ctx, "app", "signing_key", func() ([]byte, error) {
		return nil, errors.New("must not be called: the secret was imported")
	})
	if err != nil || string(got) != "value of signing_key" {
		t.Errorf("Secret after Import = %q, %v", got, err)
	}
	revs, err := dst.s.Revocations(dst.ctx, "app", time.Time{})
	if err != nil || len(revs) != 1 || revs[0].SessionID != "ended" || !revs[0].RevokedAt.Equal(at(3*time.Minute)) {
		t.Errorf("Revocations after Import = %+v, %v; want session ended", revs, err)
	}
	// The rotated token is a retry within grace, then reuse; the current
	// one rotates.
	res, err := dst.s.Rotate(dst.ctx, "app", hash("app/live/0"), nextToken("live", "unused", at(time.Hour+time.Second), refreshTTL), at(time.Hour+time.Second), grace)
	if err != nil || res.Outcome != store.Retried || res.Token.Hash != current.Hash {
		t.Errorf("Rotate of the imported parent token = %v, %v; want Retried with the imported child", res.Outcome, err)
	}
	next := nextToken("live", "app/live/2", at(2*time.Hour), refreshTTL)
	if res := dst.rotate("app", current.Hash, next, at(2*time.Hour)); res.Outcome != store.Rotated || res.Session.UserID != 1 {
		t.Errorf("Rotate of the imported current token = %v, session %+v; want Rotated", res.Outcome, res.Session)
	}
	// New users get ids after the imported ones.
	if u := dst.login("app", "o4", "", at(3*time.Hour)); u.ID != 4 {
		t.Errorf("a user created after Import got id %d, want 4", u.ID)
	}
}

func testImportConflict(t *testing.T, f *fixture) {
	seedTransfer(f, "app")
	recs := f.export("app")
	fresh := store.User{ID: 50, AppID: "app", OpenID: "o-fresh", CreatedAt: at(0), UpdatedAt: at(0)}
	byKind := map[string]store.Record{}
	for _, r := range recs {
		if _, ok := byKind[kind(r)]; !ok {
			byKind[kind(r)] = r
		}
	}
	sameOpenID := *byKind["user"].User
	sameOpenID.ID = 60
	tests := []struct {
		name string
		rec  store.Record
	}{
		{"secret name", byKind["secret"]},
		{"user id", store.Record{User: &store.User{ID: 1, AppID: "app", OpenID: "o-other", CreatedAt: at(0), UpdatedAt: at(0)}}},
		{"user openid", store.Record{User: &sameOpenID}},
		{"session id", byKind["session"]},
		{"refresh token hash", func() store.Record {
			tok := *byKind["token"].Token
			return store.Record{Token: &tok}
		}()},
		{"linked openid", byKind["openid"]},
		{"linked openid that is a user's own", store.Record{OpenID: &store.OpenIDRecord{OpenID: "o2", UserID: 1}}},
		{"user openid that is a linked one", store.Record{User: &store.User{ID: 61, AppID: "app", OpenID: "o1-a", CreatedAt: at(0), UpdatedAt: at(0)}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := f.with(t)
			// A new user first, so a partial write would show.
			err := f.s.Import(f.ctx, "app", []store.Record{{User: &fresh}, tc.rec})
			wantErr(t, "Import of a colliding "+tc.name, err, store.ErrConflict)
			if _, err := f.s.User(f.ctx, "app", fresh.ID); !isNotFound(err) {
				t.Errorf("a failed Import wrote user %d: %v", fresh.ID, err)
			}
		})
	}
	// Duplicates within one import collide too.
	err := f.s.Import(f.ctx, "app", []store.Record{{User: &fresh}, {User: &fresh}})
	wantErr(t, "Import of one user twice", err, store.ErrConflict)
	link := store.OpenIDRecord{OpenID: "o-fresh-2", UserID: fresh.ID}
	err = f.s.Import(f.ctx, "app", []store.Record{{User: &fresh}, {OpenID: &link}, {OpenID: &link}})
	wantErr(t, "Import of one linked openid twice", err, store.ErrConflict)
	own := store.OpenIDRecord{OpenID: fresh.OpenID, UserID: fresh.ID}
	err = f.s.Import(f.ctx, "app", []store.Record{{User: &fresh}, {OpenID: &own}})
	wantErr(t, "Import of a user's own openid as a linked one", err, store.ErrConflict)
	if _, err := f.s.UserByOpenID(f.ctx, "app", link.OpenID); !isNotFound(err) {
		t.Errorf("a failed Import linked openid %q: %v", link.OpenID, err)
	}
	// The whole export again collides and leaves the store as it was.
	wantErr(t, "Import of an export into its own store", f.s.Import(f.ctx, "app", recs), store.ErrConflict)
	equal(t, "export after failed imports", f.export("app"), recs)
}

func testImportIDsContinue(t *testing.T, f *fixture) {
	for i := range 2 {
		f.login("app", fmt.Sprintf("native-%d", i), "", at(0)) // ids 1, 2
	}
	user := func(id uint64, openID string) store.Record {
		return store.Record{User: &store.User{ID: id, AppID: "app", OpenID: openID, CreatedAt: at(0), UpdatedAt: at(0)}}
	}
	if err := f.s.Import(f.ctx, "app", []store.Record{user(10, "imported-10"), user(7, "imported-7")}); err != nil {
		t.Fatalf("Import: %v", err)
	}
	if u, _, err := f.loginUser("app", store.NewUser{OpenID: "after"}, at(time.Minute)); err != nil || u.ID != 11 {
		t.Errorf("first user after importing ids 7 and 10 got id %d, want 11", u.ID)
	}
	// Importing ids below the highest leaves the counter alone.
	if err := f.s.Import(f.ctx, "app", []store.Record{user(5, "imported-5")}); err != nil {
		t.Fatalf("Import: %v", err)
	}
	if u, _, err := f.loginUser("app", store.NewUser{OpenID: "after-2"}, at(time.Minute)); err != nil || u.ID != 12 {
		t.Errorf("next user got id %d, want 12", u.ID)
	}
	// Another app's ids are its own.
	if u, _, err := f.loginUser("app-b", store.NewUser{OpenID: "o"}, at(0)); err != nil || u.ID != 1 {
		t.Errorf("first user of another app got id %d, want 1", u.ID)
	}
}

func testImportInvalid(t *testing.T, f *fixture) {
	u := store.User{ID: 1, AppID: "app", OpenID: "o", CreatedAt: at(0), UpdatedAt: at(0)}
	sess, _ := newSession(u, "sid", at(0))
	orphan, orphanTok := newSession(store.User{ID: 9, AppID: "app", OpenID: "ghost"}, "orphan", at(0))
	tests := []struct {
		name string
		recs []store.Record
	}{
		{"empty record", []store.Record{{}}},
		{"two fields", []store.Record{{User: &u, Session: &sess}}},
		{"user without openid", []store.Record{{User: &store.User{ID: 2}}}},
		{"user without id", []store.Record{{User: &store.User{OpenID: "x"}}}},
		{"user of another app", []store.Record{{User: &store.User{ID: 3, AppID: "elsewhere", OpenID: "y"}}}},
		{"session of an unknown user", []store.Record{{User: &u}, {Session: &orphan}, {Token: &orphanTok}}},
		{"token of an unknown session", []store.Record{{User: &u}, {Session: &sess}, {Token: &orphanTok}}},
		{"linked openid of an unknown user", []store.Record{{User: &u}, {OpenID: &store.OpenIDRecord{OpenID: "linked", UserID: 9}}}},
		{"linked openid without user id", []store.Record{{User: &u}, {OpenID: &store.OpenIDRecord{OpenID: "linked"}}}},
		{"linked openid without openid", []store.Record{{User: &u}, {OpenID: &store.OpenIDRecord{UserID: 1}}}},
		{"user and linked openid in one record", []store.Record{{User: &u, OpenID: &store.OpenIDRecord{OpenID: "linked", UserID: 1}}}},
		{"secret without value", []store.Record{{Secret: &store.SecretRecord{Name: "k"}}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := f.with(t)
			if err := f.s.Import(f.ctx, "app", tc.recs); err == nil {
				t.Fatal("Import accepted invalid records")
			}
			if _, err := f.s.User(f.ctx, "app", 1); !isNotFound(err) {
				t.Errorf("a rejected Import wrote a user: %v", err)
			}
		})
	}
	// Nothing was consumed: the first user still gets id 1.
	if u := f.login("app", "first", "", at(0)); u.ID != 1 {
		t.Errorf("first user after rejected imports got id %d, want 1", u.ID)
	}
}

func testReplaceSecret(t *testing.T, f *fixture) {
	steps := []struct {
		name      string
		old, next string
		want      string
		notFound  bool
	}{
		{"missing, old given", "v0", "v1", "", true},
		{"missing, old empty: stored", "", "v1", "v1", false},
		{"old matches: replaced", "v1", "v2", "v2", false},
		{"old stale: unchanged", "v1", "v3", "v2", false},
		{"old empty but one stored: unchanged", "", "v4", "v2", false},
	}
	for _, st := range steps {
		got, err := f.s.ReplaceSecret(f.ctx, "app", "key", []byte(st.old), []byte(st.next))
		if st.notFound {
			wantErr(t, st.name, err, store.ErrNotFound)
			continue
		}
		if err != nil || string(got) != st.want {
			t.Errorf("%s: ReplaceSecret = %q, %v; want %q", st.name, got, err, st.want)
		}
	}
	got, err := f.s.Secret(f.ctx, "app", "key", func() ([]byte, error) { return nil, errors.New("must not be called") })
	if err != nil || string(got) != "v2" {
		t.Errorf("Secret after ReplaceSecret = %q, %v; want v2", got, err)
	}
	if got, err := f.s.Secret(f.ctx, "app-b", "key", func() ([]byte, error) { return []byte("b"), nil }); err != nil || string(got) != "b" {
		t.Errorf("another app's secret = %q, %v; want its own", got, err)
	}
	if _, err := f.s.ReplaceSecret(f.ctx, "app", "key", []byte("v2"), nil); err == nil {
		t.Error("ReplaceSecret accepted an empty value")
	}
}

// testReplaceSecretConcurrent: callers that all saw one old value race;
// exactly one replacement wins and every caller learns the winner.
func testReplaceSecretConcurrent(t *testing.T, f *fixture) {
	if _, err := f.s.ReplaceSecret(f.ctx, "app", "key", nil, []byte("old")); err != nil {
		t.Fatal(err)
	}
	const n = 12
	got := make([][]byte, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i], errs[i] = f.s.ReplaceSecret(f.ctx, "app", "key", []byte("old"), fmt.Appendf(nil, "new-%d", i))
		}()
	}
	wg.Wait()
	winners := 0
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("ReplaceSecret #%d: %v", i, errs[i])
		}
		if !bytes.Equal(got[i], got[0]) {
			t.Errorf("ReplaceSecret #%d = %q, #0 = %q: callers disagree on the winner", i, got[i], got[0])
		}
		if string(got[i]) == fmt.Sprintf("new-%d", i) {
			winners++
		}
	}
	if winners != 1 {
		t.Errorf("%d callers saw their own value stored, want exactly 1", winners)
	}
}
