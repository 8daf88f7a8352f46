package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/wxauth/caddy-wechat-auth/store"
)

// RunShared runs the cross-instance subtests: two stores that share one
// database, as two servers behind a load balancer do, must behave as one.
// openPair is called once per subtest and returns two stores on one new,
// empty database (for PostgreSQL, two pools; for an embedded backend that
// only one process can open, the same store twice). RunShared closes both
// when the subtest ends.
func RunShared(t *testing.T, openPair func(t *testing.T) (a, b store.Store)) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(*testing.T, *pair)
	}{
		{"Login/OneUserPerOpenID", testSharedLogin},
		{"Login/WithLoginUser", testSharedLoginMixed},
		{"Rotate/ExactlyOnce", testSharedRotate},
		{"Rotate/RetryAndReuse", testSharedRetryReuse},
		{"RevokeUserSessions", testSharedLogoutAll},
		{"Prune", testSharedPrune},
		{"LinkByUnionID", testSharedUnionID},
		{"Secret/FirstWriterWins", testSharedSecret},
		{"WatchRevocations", testSharedWatch},
		{"Ticket/OtherInstance", testSharedTicket},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, b := openPair(t)
			if a == nil || b == nil {
				t.Fatal("openPair returned a nil store")
			}
			t.Cleanup(func() {
				for _, s := range []store.Store{a, b} {
					if err := s.Close(); err != nil && !errors.Is(err, store.ErrClosed) {
						t.Errorf("closing store: %v", err)
					}
				}
			})
			ctx := context.Background()
			tc.fn(t, &pair{
				a: &fixture{t: t, s: a, ctx: ctx},
				b: &fixture{t: t, s: b, ctx: ctx},
			})
		})
	}
}

// pair is two fixtures on one database.
type pair struct{ a, b *fixture }

// side returns a for even i and b for odd i.
func (p *pair) side(i int) *fixture {
	if i%2 == 0 {
		return p.a
	}
	return p.b
}

// testSharedLogin: simultaneous first logins of one openid through both
// stores create one user; every login gets its own session.
func testSharedLogin(t *testing.T, p *pair) {
	const n = 24
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		ids     = map[uint64]int{}
		created int
	)
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f := p.side(i)
			sess, tok := loginSession("app", fmt.Sprintf("sid-%d", i))
			<-start
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
	close(start)
	wg.Wait()
	if len(ids) != 1 || created != 1 {
		t.Fatalf("%d simultaneous Logins on two stores: users %v, created %d; want one user created once", n, ids, created)
	}
	for i := range n {
		p.side(i+1).session("app", fmt.Sprintf("sid-%d", i))
	}
	if u, _, err := p.b.loginUser("app", store.NewUser{OpenID: "o-next"}, at(time.Minute)); err != nil || u.ID != 2 {
		t.Errorf("next new user got id %d, want 2", u.ID)
	}
}

// testSharedLoginMixed: logins of one new openid at once through both
// stores (half through the LoginUser helper, with random session ids)
// create one user and spend one id.
func testSharedLoginMixed(t *testing.T, p *pair) {
	const n = 16
	ids := make([]uint64, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f := p.side(i / 2)
			<-start
			if i%2 == 0 {
				u, _, err := f.loginUser("app", store.NewUser{OpenID: "o-mixed"}, at(0))
				ids[i], errs[i] = u.ID, err
				return
			}
			sess, tok := loginSession("app", fmt.Sprintf("sid-%d", i))
			u, _, _, err := f.s.Login(f.ctx, "app", store.NewUser{OpenID: "o-mixed"}, sess, tok, at(0))
			ids[i], errs[i] = u.ID, err
		}()
	}
	close(start)
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("login %d: %v", i, errs[i])
		}
		if ids[i] != ids[0] {
			t.Fatalf("login %d got user %d, login 0 user %d: two users for one openid", i, ids[i], ids[0])
		}
	}
	if u, _, err := p.a.loginUser("app", store.NewUser{OpenID: "o-after"}, at(time.Minute)); err != nil || u.ID != ids[0]+1 {
		t.Errorf("next new user got id %d, want %d (no id spent by the race)", u.ID, ids[0]+1)
	}
}

// testSharedRotate: simultaneous rotations of one token through both
// stores rotate it exactly once; the others are retries that get the
// winner's token.
func testSharedRotate(t *testing.T, p *pair) {
	u := p.a.login("app", "o", "", at(0))
	_, tok := p.a.startSession(u, "sid", at(0))
	const n = 16
	results := make([]store.RotateResult, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f := p.side(i)
			next := nextToken("sid", fmt.Sprintf("next-%d", i), at(time.Minute), refreshTTL)
			<-start
			results[i], errs[i] = f.s.Rotate(f.ctx, "app", tok.Hash, next, at(time.Minute), grace)
		}()
	}
	close(start)
	wg.Wait()
	rotated := 0
	var winner [32]byte
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("Rotate %d: %v", i, errs[i])
		}
		if results[i].Outcome == store.Rotated {
			rotated++
			winner = results[i].Token.Hash
		}
	}
	if rotated != 1 {
		t.Fatalf("%d simultaneous rotations on two stores: %d Rotated, want 1", n, rotated)
	}
	for i := range n {
		if res := results[i]; res.Outcome != store.Rotated && (res.Outcome != store.Retried || res.Token.Hash != winner) {
			t.Errorf("Rotate %d: outcome %v with another token; want Retried with the winner's", i, res.Outcome)
		}
	}
	if got := p.b.token("app", tok.Hash); got.Child != winner {
		t.Error("the rotated token's child is not the winner")
	}
}

// testSharedRetryReuse: a retry within grace on the other store gets the
// same child; a replay after grace there revokes the session for both.
func testSharedRetryReuse(t *testing.T, p *pair) {
	u := p.a.login("app", "o", "", at(0))
	_, tok := p.a.startSession(u, "sid", at(0))
	next := nextToken("sid", "child", at(time.Minute), refreshTTL)
	p.a.rotate("app", tok.Hash, next, at(time.Minute))

	retry := p.b.rotate("app", tok.Hash, nextToken("sid", "other", at(time.Minute+grace), refreshTTL), at(time.Minute+grace))
	if retry.Outcome != store.Retried || retry.Token.Hash != next.Hash {
		t.Fatalf("retry on the other store within grace: %v, want Retried with the child", retry.Outcome)
	}
	reuse := p.b.rotate("app", tok.Hash, nextToken("sid", "late", at(time.Minute+grace+time.Second), refreshTTL), at(time.Minute+grace+time.Second))
	if reuse.Outcome != store.Reused {
		t.Fatalf("replay on the other store after grace: %v, want Reused", reuse.Outcome)
	}
	if s := p.a.session("app", "sid"); !s.Revoked() || s.RevokeReason != store.ReasonReuse {
		t.Errorf("session seen from the first store after reuse: %+v, want revoked for reuse", s)
	}
	_, err := p.a.s.Rotate(p.a.ctx, "app", next.Hash, nextToken("sid", "after", at(time.Hour), refreshTTL), at(time.Hour), grace)
	wantErr(t, "Rotate of the child after reuse", err, store.ErrRevoked)
}

// testSharedLogoutAll: logging out everywhere through one store ends the
// sessions made through both.
func testSharedLogoutAll(t *testing.T, p *pair) {
	u := p.a.login("app", "o", "", at(0))
	p.a.startSession(u, "sid-a", at(0))
	_, tokB := p.b.startSession(u, "sid-b", at(0))
	revoked, err := p.b.s.RevokeUserSessions(p.b.ctx, "app", u.ID, store.ReasonLogoutAll, at(time.Minute))
	if err != nil || len(revoked) != 2 {
		t.Fatalf("RevokeUserSessions = %d sessions, %v; want 2", len(revoked), err)
	}
	for _, sid := range []string{"sid-a", "sid-b"} {
		if s := p.a.session("app", sid); !s.Revoked() {
			t.Errorf("session %s not revoked as seen from the other store", sid)
		}
	}
	_, err = p.a.s.Rotate(p.a.ctx, "app", tokB.Hash, nextToken("sid-b", "n", at(time.Hour), refreshTTL), at(time.Hour), grace)
	wantErr(t, "Rotate after logout-all", err, store.ErrRevoked)
	revs, err := p.a.s.Revocations(p.a.ctx, "app", at(0))
	if err != nil || len(revs) != 2 {
		t.Errorf("Revocations on the other store = %+v, %v; want 2", revs, err)
	}
}

// testSharedPrune: a sweep through one store removes what the other made.
func testSharedPrune(t *testing.T, p *pair) {
	u := p.a.login("app", "o", "", at(0))
	s, tok := newSession(u, "short", at(0))
	tok.ExpiresAt, s.ExpiresAt = at(time.Hour), at(time.Hour)
	p.a.createSession(s, tok)
	p.a.startSession(u, "long", at(0))
	n, err := p.b.s.Prune(p.b.ctx, at(2*time.Hour), at(0))
	if err != nil || n != 2 {
		t.Fatalf("Prune on the other store = %d, %v; want 2 records", n, err)
	}
	p.a.noSession("app", "short")
	p.a.noToken("app", tok.Hash)
	p.a.session("app", "long")
}

// testSharedUnionID: a user created through one store is found by
// unionid, and linked, through the other.
func testSharedUnionID(t *testing.T, p *pair) {
	u := p.a.login("app", "o-first", "union", at(0))
	linked, created, err := LoginUser(p.b.ctx, p.b.s, "app", store.NewUser{OpenID: "o-second", UnionID: "union", LinkByUnionID: true}, at(time.Minute))
	if err != nil || created || linked.ID != u.ID {
		t.Fatalf("linking login on the other store = %+v created=%v %v; want user %d", linked, created, err, u.ID)
	}
	if got, err := p.a.s.UserByOpenID(p.a.ctx, "app", "o-second"); err != nil || got.ID != u.ID {
		t.Errorf("linked openid seen from the first store = %+v, %v", got, err)
	}
	// A unionid learned through one store is seen through the other.
	v := p.a.login("app", "o-late", "", at(0))
	if _, _, err := LoginUser(p.b.ctx, p.b.s, "app", store.NewUser{OpenID: "o-late", UnionID: "union-late"}, at(time.Minute)); err != nil {
		t.Fatalf("login with a unionid on the other store: %v", err)
	}
	if got, err := p.a.s.UserByUnionID(p.a.ctx, "app", "union-late"); err != nil || got.ID != v.ID {
		t.Errorf("UserByUnionID on the first store = %+v, %v; want user %d", got, err, v.ID)
	}
}

// testSharedSecret: simultaneous first reads of a secret through both
// stores agree on one value.
func testSharedSecret(t *testing.T, p *pair) {
	const n = 12
	got := make([][]byte, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f := p.side(i)
			<-start
			got[i], errs[i] = f.s.Secret(f.ctx, "app", "signing_key", func() ([]byte, error) {
				return fmt.Appendf(nil, "key-%d", i), nil
			})
		}()
	}
	close(start)
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("Secret %d: %v", i, errs[i])
		}
		if !bytes.Equal(got[i], got[0]) {
			t.Fatalf("Secret %d = %q, Secret 0 = %q: the stores disagree", i, got[i], got[0])
		}
	}
	// A replacement through one store is what the other reads.
	if _, err := p.b.s.ReplaceSecret(p.b.ctx, "app", "signing_key", got[0], []byte("rotated")); err != nil {
		t.Fatal(err)
	}
	v, err := p.a.s.Secret(p.a.ctx, "app", "signing_key", func() ([]byte, error) { return nil, errors.New("must not be called") })
	if err != nil || string(v) != "rotated" {
		t.Errorf("Secret on the other store after ReplaceSecret = %q, %v", v, err)
	}
}

// testSharedWatch: a store that implements store.RevocationWatcher hears
// of revocations made through the other store (logout, logout-all and
// reuse), and stops when its context ends.
func testSharedWatch(t *testing.T, p *pair) {
	w, ok := p.a.s.(store.RevocationWatcher)
	if !ok {
		t.Skip("the store does not implement store.RevocationWatcher")
	}
	u := p.b.login("app", "o", "", at(0))
	for _, sid := range []string{"s1", "s2", "s3", "s4"} {
		p.b.startSession(u, sid, at(0))
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan store.Revocation, 16)
	if err := w.WatchRevocations(ctx, func(r store.Revocation) { got <- r }, nil); err != nil {
		t.Fatalf("WatchRevocations: %v", err)
	}
	if _, err := p.b.s.RevokeSession(p.b.ctx, "app", "s1", store.ReasonLogout, at(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if _, err := p.b.s.RevokeUserSessions(p.b.ctx, "app", u.ID, store.ReasonLogoutAll, at(2*time.Minute)); err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"s1": true, "s2": true, "s3": true, "s4": true}
	deadline := time.After(5 * time.Second)
	for len(want) > 0 {
		select {
		case r := <-got:
			if r.AppID != "app" || r.UserID != u.ID || r.RevokedAt.IsZero() {
				t.Errorf("revocation %+v lacks its app, user or time", r)
			}
			delete(want, r.SessionID)
		case <-deadline:
			t.Fatalf("revocations of %v did not reach the other store within 5s", want)
		}
	}
}
