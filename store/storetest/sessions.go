package storetest

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wxauth/caddy-wechat-auth/store"
)

// testCreateSession: a returning user's Login stores the session and its
// first token as given, the user fields filled from the user.
func testCreateSession(t *testing.T, f *fixture) {
	u := f.login("app", "o", "u", at(0))
	tests := []struct {
		name   string
		modify func(*store.Session, *store.RefreshToken)
		want   func(store.Session, store.RefreshToken) store.Session
	}{
		{"complete", nil, nil},
		{"unionid from the user, no sealed key", func(s *store.Session, _ *store.RefreshToken) {
			s.UnionID, s.SealedSessionKey = "", nil
		}, func(s store.Session, _ store.RefreshToken) store.Session {
			s.UnionID = "u"
			return s
		}},
		{"zero ExpiresAt taken from the token", func(s *store.Session, _ *store.RefreshToken) {
			s.ExpiresAt = time.Time{}
		}, func(s store.Session, tok store.RefreshToken) store.Session {
			s.ExpiresAt = tok.ExpiresAt
			return s
		}},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := f.with(t)
			sess, tok := newSession(u, fmt.Sprintf("sid-%d", i), at(time.Duration(i)*time.Minute))
			if tc.modify != nil {
				tc.modify(&sess, &tok)
			}
			want := sess
			if tc.want != nil {
				want = tc.want(sess, tok)
			}
			_, stored, created, err := f.s.Login(f.ctx, "app", store.NewUser{OpenID: u.OpenID}, sess, tok, sess.CreatedAt)
			if err != nil || created {
				t.Fatalf("Login = created %v, %v", created, err)
			}
			equal(t, "Login's session", stored, want)
			got := f.session("app", sess.ID)
			equal(t, "Session", got, want)
			if got.Revoked() {
				t.Error("new session is revoked")
			}
			equal(t, "RefreshToken", f.token("app", tok.Hash), tok)
		})
	}
}

// testCreateSessionRejected: a returning user's Login whose session or
// token cannot be stored writes nothing.
func testCreateSessionRejected(t *testing.T, f *fixture) {
	u := f.login("app", "o", "", at(0))
	existing, existingTok := f.startSession(u, "sid-existing", at(0))
	tests := []struct {
		name  string
		build func() (store.Session, store.RefreshToken)
	}{
		{"duplicate session id", func() (store.Session, store.RefreshToken) {
			s, tok := newSession(u, "other", at(time.Minute))
			s.ID, tok.SessionID = existing.ID, existing.ID
			return s, tok
		}},
		{"duplicate token hash", func() (store.Session, store.RefreshToken) {
			s, tok := newSession(u, "sid-dup-hash", at(time.Minute))
			tok.Hash = existingTok.Hash
			return s, tok
		}},
		{"token of another session", func() (store.Session, store.RefreshToken) {
			s, tok := newSession(u, "sid-mismatch", at(time.Minute))
			tok.SessionID = "sid-elsewhere"
			return s, tok
		}},
		{"session of another app", func() (store.Session, store.RefreshToken) {
			s, tok := newSession(u, "sid-noapp", at(time.Minute))
			s.AppID = "app-x"
			return s, tok
		}},
		{"revoked session", func() (store.Session, store.RefreshToken) {
			s, tok := newSession(u, "sid-revoked", at(time.Minute))
			s.RevokedAt, s.RevokeReason = at(time.Minute), store.ReasonLogout
			return s, tok
		}},
		{"empty session id", func() (store.Session, store.RefreshToken) {
			s, tok := newSession(u, "", at(time.Minute))
			tok.Hash = hash("empty-sid")
			return s, tok
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := f.with(t)
			s, tok := tc.build()
			_, _, _, err := f.s.Login(f.ctx, "app", store.NewUser{OpenID: u.OpenID}, s, tok, at(time.Minute))
			if err == nil {
				t.Fatal("Login accepted it")
			}
			// Nothing changed.
			equal(t, "existing session", f.session("app", existing.ID), existing)
			equal(t, "existing token", f.token("app", existingTok.Hash), existingTok)
			if tok.Hash != existingTok.Hash {
				f.noToken(s.AppID, tok.Hash)
			}
			if s.ID != existing.ID && s.ID != "" {
				f.noSession(s.AppID, s.ID)
			}
		})
	}
}

func testRotateRotated(t *testing.T, f *fixture) {
	u := f.login("app", "o", "", at(0))
	sess, tok := f.startSession(u, "sid", at(0))
	cur := tok
	for i := 1; i <= 3; i++ {
		now := at(time.Duration(i) * time.Hour)
		next := nextToken(sess.ID, fmt.Sprintf("gen-%d", i), now, refreshTTL)
		res := f.rotate("app", cur.Hash, next, now)
		if res.Outcome != store.Rotated {
			t.Fatalf("generation %d: outcome %v, want Rotated", i, res.Outcome)
		}
		wantSess := sess
		wantSess.ExpiresAt = next.ExpiresAt
		wantSess.RefreshedAt = now
		equal(t, "RotateResult.Session", res.Session, wantSess)
		equal(t, "RotateResult.Token", res.Token, next)
		equal(t, "Session after rotation", f.session("app", sess.ID), wantSess)
		equal(t, "new token", f.token("app", next.Hash), next)
		wantOld := cur
		wantOld.RotatedAt, wantOld.Child = now, next.Hash
		equal(t, "rotated token", f.token("app", cur.Hash), wantOld)
		cur = next
	}
}

func testRotateRetried(t *testing.T, f *fixture) {
	u := f.login("app", "o", "", at(0))
	sess, tok := f.startSession(u, "sid", at(0))
	t1 := at(time.Hour)
	child := nextToken(sess.ID, "child", t1, refreshTTL)
	first := f.rotate("app", tok.Hash, child, t1)
	tests := []struct {
		name  string
		after time.Duration
	}{
		{"immediately", 0},
		{"within grace", grace / 2},
		{"at the end of grace", grace},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := f.with(t)
			other := nextToken(sess.ID, fmt.Sprintf("retry-%d", i), t1.Add(tc.after), refreshTTL)
			res := f.rotate("app", tok.Hash, other, t1.Add(tc.after))
			if res.Outcome != store.Retried {
				t.Fatalf("outcome %v, want Retried", res.Outcome)
			}
			equal(t, "RotateResult.Token (the existing child)", res.Token, child)
			equal(t, "RotateResult.Session", res.Session, first.Session)
			f.noToken("app", other.Hash)
			equal(t, "session", f.session("app", sess.ID), first.Session)
			equal(t, "child", f.token("app", child.Hash), child)
		})
	}
}

func testRotateReused(t *testing.T, f *fixture) {
	u := f.login("app", "o", "", at(0))
	t1 := at(time.Hour)
	tests := []struct {
		name string
		// setup rotates the session's first token and returns when it is
		// presented again.
		setup func(f *fixture, sid string, first store.RefreshToken) (presentAt time.Time, current store.RefreshToken)
	}{
		{"after grace", func(f *fixture, sid string, first store.RefreshToken) (time.Time, store.RefreshToken) {
			child := nextToken(sid, sid+"-child", t1, refreshTTL)
			f.rotate("app", first.Hash, child, t1)
			return t1.Add(grace + time.Second), child
		}},
		{"long after", func(f *fixture, sid string, first store.RefreshToken) (time.Time, store.RefreshToken) {
			child := nextToken(sid, sid+"-child", t1, refreshTTL)
			f.rotate("app", first.Hash, child, t1)
			return t1.Add(24 * time.Hour), child
		}},
		{"child already rotated", func(f *fixture, sid string, first store.RefreshToken) (time.Time, store.RefreshToken) {
			child := nextToken(sid, sid+"-child", t1, refreshTTL)
			f.rotate("app", first.Hash, child, t1)
			grandchild := nextToken(sid, sid+"-grandchild", t1.Add(time.Second), refreshTTL)
			f.rotate("app", child.Hash, grandchild, t1.Add(time.Second))
			return t1.Add(2 * time.Second), grandchild
		}},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := f.with(t)
			sess, first := f.startSession(u, fmt.Sprintf("sid-%d", i), at(0))
			presentAt, current := tc.setup(f, sess.ID, first)
			before := f.token("app", first.Hash)
			res, err := f.s.Rotate(f.ctx, "app", first.Hash, nextToken(sess.ID, sess.ID+"-thief", presentAt, refreshTTL), presentAt, grace)
			if err != nil {
				t.Fatalf("Rotate: %v", err)
			}
			if res.Outcome != store.Reused {
				t.Fatalf("outcome %v, want Reused", res.Outcome)
			}
			equal(t, "RotateResult.Token (the presented token)", res.Token, before)
			if !res.Session.RevokedAt.Equal(presentAt) || res.Session.RevokeReason != "reuse" {
				t.Errorf("RotateResult.Session revoked at %v for %q, want %v for reuse", res.Session.RevokedAt, res.Session.RevokeReason, presentAt)
			}
			equal(t, "stored session", f.session("app", sess.ID), res.Session)
			f.noToken("app", hash(sess.ID+"-thief"))
			// The legitimate holder's token is dead too.
			_, err = f.s.Rotate(f.ctx, "app", current.Hash, nextToken(sess.ID, sess.ID+"-late", presentAt, refreshTTL), presentAt.Add(time.Second), grace)
			wantErr(t, "Rotate of the current token after reuse", err, store.ErrRevoked)
			revs, err := f.s.Revocations(f.ctx, "app", presentAt)
			if err != nil || !slices.ContainsFunc(revs, func(r store.Revocation) bool { return r.SessionID == sess.ID }) {
				t.Errorf("Revocations after reuse = %+v, %v; want %s listed", revs, err, sess.ID)
			}
		})
	}
}

func testRotateErrors(t *testing.T, f *fixture) {
	u := f.login("app", "o", "", at(0))
	tests := []struct {
		name string
		// setup returns the hash to present, when, and the wanted error.
		setup func(f *fixture, sess store.Session, tok store.RefreshToken) ([32]byte, time.Time, error)
	}{
		{"unknown hash", func(*fixture, store.Session, store.RefreshToken) ([32]byte, time.Time, error) {
			return hash("never issued"), at(time.Hour), store.ErrNotFound
		}},
		{"expired at now", func(_ *fixture, _ store.Session, tok store.RefreshToken) ([32]byte, time.Time, error) {
			return tok.Hash, tok.ExpiresAt, store.ErrExpired
		}},
		{"long expired", func(_ *fixture, _ store.Session, tok store.RefreshToken) ([32]byte, time.Time, error) {
			return tok.Hash, tok.ExpiresAt.Add(48 * time.Hour), store.ErrExpired
		}},
		{"revoked session", func(f *fixture, sess store.Session, tok store.RefreshToken) ([32]byte, time.Time, error) {
			if _, err := f.s.RevokeSession(f.ctx, "app", sess.ID, "logout", at(time.Minute)); err != nil {
				f.t.Fatal(err)
			}
			return tok.Hash, at(time.Hour), store.ErrRevoked
		}},
		{"revoked session, rotated token", func(f *fixture, sess store.Session, tok store.RefreshToken) ([32]byte, time.Time, error) {
			f.rotate("app", tok.Hash, nextToken(sess.ID, sess.ID+"-c", at(time.Minute), refreshTTL), at(time.Minute))
			if _, err := f.s.RevokeSession(f.ctx, "app", sess.ID, "logout", at(2*time.Minute)); err != nil {
				f.t.Fatal(err)
			}
			return tok.Hash, at(time.Hour), store.ErrRevoked
		}},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := f.with(t)
			sess, tok := f.startSession(u, fmt.Sprintf("sid-%d", i), at(0))
			h, now, wantE := tc.setup(f, sess, tok)
			sessBefore := f.session("app", sess.ID)
			tokBefore := f.token("app", tok.Hash)
			next := nextToken(sess.ID, sess.ID+"-next", now, refreshTTL)
			res, err := f.s.Rotate(f.ctx, "app", h, next, now, grace)
			wantErr(t, "Rotate", err, wantE)
			if res.Outcome != 0 {
				t.Errorf("outcome %v returned with an error", res.Outcome)
			}
			equal(t, "session", f.session("app", sess.ID), sessBefore)
			equal(t, "presented token's family head", f.token("app", tok.Hash), tokBefore)
			f.noToken("app", next.Hash)
		})
	}
}

func testRotateConcurrent(t *testing.T, f *fixture) {
	const n = 32
	u := f.login("app", "o", "", at(0))
	sess, tok := f.startSession(u, "sid", at(0))
	now := at(time.Hour)
	results := make([]store.RotateResult, n)
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			next := nextToken(sess.ID, fmt.Sprintf("racer-%d", i), now, refreshTTL)
			results[i], errs[i] = f.s.Rotate(f.ctx, "app", tok.Hash, next, now, grace)
		}()
	}
	close(start)
	wg.Wait()

	winner := -1
	for i, r := range results {
		if errs[i] != nil {
			t.Fatalf("Rotate #%d: %v", i, errs[i])
		}
		switch r.Outcome {
		case store.Rotated:
			if winner >= 0 {
				t.Fatalf("Rotate #%d and #%d both report Rotated", winner, i)
			}
			winner = i
		case store.Retried:
		default:
			t.Errorf("Rotate #%d: outcome %v, want Rotated or Retried", i, r.Outcome)
		}
	}
	if winner < 0 {
		t.Fatal("no call reports Rotated")
	}
	want := results[winner].Token
	if want.Hash != hash(fmt.Sprintf("racer-%d", winner)) {
		t.Errorf("winner's token is not its next token")
	}
	for i, r := range results {
		if r.Token.Hash != want.Hash {
			t.Errorf("Rotate #%d returned token %x, want the winner's %x", i, r.Token.Hash[:4], want.Hash[:4])
		}
		if i != winner {
			f.noToken("app", hash(fmt.Sprintf("racer-%d", i)))
		}
	}
	if got := f.token("app", tok.Hash); got.Child != want.Hash {
		t.Error("presented token's child is not the winner's token")
	}
	if s := f.session("app", sess.ID); s.Revoked() {
		t.Errorf("concurrent retries revoked the session (%s)", s.RevokeReason)
	}
}

func testRevokeSession(t *testing.T, f *fixture) {
	u := f.login("app", "o", "", at(0))
	sess, tok := f.startSession(u, "sid", at(0))
	other, _ := f.startSession(u, "sid-other", at(0))
	t1, t2 := at(time.Hour), at(2*time.Hour)

	want := sess
	want.RevokedAt, want.RevokeReason = t1, "logout"
	steps := []struct {
		name   string
		reason string
		now    time.Time
	}{
		{"first revocation", "logout", t1},
		{"again: unchanged", "logout_all", t2},
		{"and again", "reuse", t2.Add(time.Hour)},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			f := f.with(t)
			got, err := f.s.RevokeSession(f.ctx, "app", sess.ID, st.reason, st.now)
			if err != nil {
				t.Fatalf("RevokeSession: %v", err)
			}
			equal(t, "RevokeSession result", got, want)
			equal(t, "stored session", f.session("app", sess.ID), want)
		})
	}
	if s := f.session("app", other.ID); s.Revoked() {
		t.Error("revoking one session revoked another")
	}
	_, err := f.s.Rotate(f.ctx, "app", tok.Hash, nextToken(sess.ID, "n", t2, refreshTTL), t2, grace)
	wantErr(t, "Rotate after revocation", err, store.ErrRevoked)
	_, err = f.s.RevokeSession(f.ctx, "app", "sid-unknown", "logout", t1)
	wantErr(t, "RevokeSession of an unknown session", err, store.ErrNotFound)
	revs, err := f.s.Revocations(f.ctx, "app", time.Time{})
	if err != nil || len(revs) != 1 {
		t.Fatalf("Revocations = %+v, %v; want one", revs, err)
	}
	equal(t, "revocation", revs[0], store.Revocation{AppID: "app", SessionID: sess.ID, UserID: u.ID, RevokedAt: t1})
}

func testRevokeUserSessions(t *testing.T, f *fixture) {
	u1 := f.login("app", "o-1", "", at(0))
	u2 := f.login("app", "o-2", "", at(0))
	u3 := f.login("app", "o-3", "", at(0))
	a, _ := f.startSession(u1, "sid-a", at(0))
	b, _ := f.startSession(u1, "sid-b", at(0))
	c, _ := f.startSession(u1, "sid-c", at(time.Minute))
	d, _ := f.startSession(u2, "sid-d", at(0))
	t1, t2, t3 := at(time.Hour), at(2*time.Hour), at(3*time.Hour)
	bRevoked, err := f.s.RevokeSession(f.ctx, "app", b.ID, "logout", t1)
	if err != nil {
		t.Fatal(err)
	}

	got, err := f.s.RevokeUserSessions(f.ctx, "app", u1.ID, "logout_all", t2)
	if err != nil {
		t.Fatalf("RevokeUserSessions: %v", err)
	}
	slices.SortFunc(got, func(x, y store.Session) int { return strings.Compare(x.ID, y.ID) })
	var want []store.Session
	for _, s := range []store.Session{a, c} {
		s.RevokedAt, s.RevokeReason = t2, "logout_all"
		want = append(want, s)
	}
	equal(t, "revoked now", got, want)
	for _, s := range want {
		equal(t, "stored "+s.ID, f.session("app", s.ID), s)
	}
	equal(t, "previously revoked session", f.session("app", b.ID), bRevoked)
	equal(t, "other user's session", f.session("app", d.ID), d)

	tests := []struct {
		name   string
		userID uint64
	}{
		{"again: nothing left", u1.ID},
		{"user without sessions", u3.ID},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := f.with(t)
			got, err := f.s.RevokeUserSessions(f.ctx, "app", tc.userID, "logout_all", t3)
			if err != nil || len(got) != 0 {
				t.Errorf("RevokeUserSessions = %+v, %v; want none", got, err)
			}
		})
	}
	_, err = f.s.RevokeUserSessions(f.ctx, "app", 99, "logout_all", t3)
	wantErr(t, "RevokeUserSessions of an unknown user", err, store.ErrNotFound)
	// A session created after the sweep is active.
	e, _ := f.startSession(u1, "sid-e", t3)
	if s := f.session("app", e.ID); s.Revoked() {
		t.Error("a new session of the user is revoked")
	}
}

func testRevocations(t *testing.T, f *fixture) {
	u := f.login("app", "o", "", at(0))
	v := f.login("app", "p", "", at(0))
	t1, t2, t3 := at(time.Hour), at(2*time.Hour), at(3*time.Hour)
	f.startSession(u, "s-1", at(0))
	f.startSession(v, "s-2", at(0))
	f.startSession(u, "s-3", at(0))
	f.startSession(u, "s-4", at(0))
	for _, r := range []struct {
		id  string
		now time.Time
	}{{"s-3", t3}, {"s-1", t1}, {"s-2", t2}} {
		if _, err := f.s.RevokeSession(f.ctx, "app", r.id, "logout", r.now); err != nil {
			t.Fatal(err)
		}
	}
	all := []store.Revocation{
		{AppID: "app", SessionID: "s-1", UserID: u.ID, RevokedAt: t1},
		{AppID: "app", SessionID: "s-2", UserID: v.ID, RevokedAt: t2},
		{AppID: "app", SessionID: "s-3", UserID: u.ID, RevokedAt: t3},
	}
	tests := []struct {
		name  string
		app   string
		since time.Time
		want  []store.Revocation
	}{
		{"since zero: all, oldest first", "app", time.Time{}, all},
		{"since is inclusive", "app", t2, all[1:]},
		{"between", "app", t2.Add(time.Second), all[2:]},
		{"after the last", "app", t3.Add(time.Second), nil},
		{"other app", "app-other", time.Time{}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := f.with(t)
			got, err := f.s.Revocations(f.ctx, tc.app, tc.since)
			if err != nil {
				t.Fatalf("Revocations: %v", err)
			}
			if len(got) == 0 && len(tc.want) == 0 {
				return
			}
			equal(t, "Revocations", got, tc.want)
		})
	}
}
