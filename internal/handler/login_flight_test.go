package handler

import (
	"context"
	"errors"
	"github.com/wxauth/caddy-wechat-auth/internal/testclock"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wxauth/caddy-wechat-auth/internal/wechat"
	"github.com/wxauth/caddy-wechat-auth/store"
	"github.com/wxauth/caddy-wechat-auth/store/bolt"
)

// gatedWeChat counts code exchanges and holds each one until released.
type gatedWeChat struct {
	*fakeWeChat
	calls   atomic.Int32
	entered chan struct{} // receives once per exchange, when it starts
	release chan struct{} // closed to let exchanges finish
}

func (g *gatedWeChat) Code2Session(ctx context.Context, code string) (*wechat.Session, error) {
	g.calls.Add(1)
	g.entered <- struct{}{}
	<-g.release
	return g.fakeWeChat.Code2Session(ctx, code)
}

// countingStore counts Login calls.
type countingStore struct {
	store.Store
	logins atomic.Int32
}

func (c *countingStore) Login(ctx context.Context, app string, nu store.NewUser, s store.Session, tok store.RefreshToken, now time.Time) (store.User, store.Session, bool, error) {
	c.logins.Add(1)
	return c.Store.Login(ctx, app, nu, s, tok, now)
}

// newGatedHarness is a harness whose WeChat is gated and whose store
// counts logins.
func newGatedHarness(t *testing.T) (*harness, *gatedWeChat, *countingStore) {
	t.Helper()
	st, err := bolt.Open(filepath.Join(t.TempDir(), "h.db"), bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	cs := &countingStore{Store: st}
	hs := newHarnessWith(t, cs, testclock.New(time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)), NewRevocations())
	g := &gatedWeChat{fakeWeChat: hs.wx, entered: make(chan struct{}, 16), release: make(chan struct{})}
	cfg := hs.h.cfg
	cfg.WeChat = g
	if hs.h, err = New(cfg); err != nil {
		t.Fatal(err)
	}
	return hs, g, cs
}

// waitFor fails the test if ch does not deliver within 10 s.
func waitFor(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
}

// concurrentLogins sends n logins with code at once while the first
// exchange is held, lets it go once the other n-1 have joined, and returns
// the answers.
func concurrentLogins(t *testing.T, hs *harness, g *gatedWeChat, code string, n int) []result {
	t.Helper()
	joined := make(chan struct{}, n)
	hs.h.logins = hookedFlights{newLoginFlights(), func() { joined <- struct{}{} }}
	results := make([]result, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = hs.call("POST", "/wx/login", `{"code":"`+code+`"}`)
		}()
	}
	waitFor(t, g.entered, "the exchange")
	for range n - 1 {
		waitFor(t, joined, "the duplicates to join")
	}
	close(g.release)
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	waitFor(t, done, "the answers")
	return results
}

func TestLoginOneCodeOneSession(t *testing.T) {
	hs, g, cs := newGatedHarness(t)
	hs.wx.addCode("dup", "o1", "")
	const n = 8
	results := concurrentLogins(t, hs, g, "dup", n)

	var sids []string
	for i, r := range results {
		want(t, r, 200, "")
		if r.raw != results[0].raw {
			t.Fatalf("answer %d differs from answer 0:\n%s\n%s", i, r.raw, results[0].raw)
		}
		sids = append(sids, claimsOf(t, hs, r.body["token"].(string)).SessionID)
	}
	if calls, logins := g.calls.Load(), cs.logins.Load(); calls != 1 || logins != 1 {
		t.Fatalf("%d exchanges and %d store logins for one code, want 1 and 1", calls, logins)
	}
	if sids[0] == "" || sids[0] != sids[n-1] {
		t.Fatalf("session ids %v", sids)
	}

	// Once the login is over nothing is kept: a later request with the
	// code goes to WeChat, which refuses the spent code.
	if n := hs.h.logins.len(); n != 0 {
		t.Fatalf("%d logins still kept", n)
	}
	want(t, hs.call("POST", "/wx/login", `{"code":"dup"}`), 400, CodeInvalidCode)
	if g.calls.Load() != 2 || cs.logins.Load() != 1 {
		t.Fatalf("after the login: %d exchanges, %d store logins", g.calls.Load(), cs.logins.Load())
	}
}

// claimsOf verifies an access token of the harness.
func claimsOf(t *testing.T, hs *harness, access string) struct{ SessionID string } {
	t.Helper()
	c, err := hs.h.cfg.Tokens.Verify(access)
	if err != nil {
		t.Fatalf("verifying token: %v", err)
	}
	return struct{ SessionID string }{c.SessionID}
}

func TestLoginDuplicatesShareFailure(t *testing.T) {
	hs, g, cs := newGatedHarness(t)
	// "gone" is unknown to WeChat: 40029.
	results := concurrentLogins(t, hs, g, "gone", 5)
	for _, r := range results {
		want(t, r, 400, CodeInvalidCode)
	}
	if g.calls.Load() != 1 || cs.logins.Load() != 0 {
		t.Fatalf("%d exchanges, %d store logins", g.calls.Load(), cs.logins.Load())
	}
	// A failure is not kept: a retry asks WeChat again at once.
	hs.wx.addCode("gone", "o2", "")
	want(t, hs.call("POST", "/wx/login", `{"code":"gone"}`), 200, "")
	if g.calls.Load() != 2 {
		t.Fatalf("retry after a failure was not sent to WeChat (%d exchanges)", g.calls.Load())
	}
}

func TestLoginJoinerGivesUp(t *testing.T) {
	l := newLoginFlights()
	started, release := make(chan struct{}), make(chan struct{})
	leader := make(chan loginAnswer, 1)
	go func() {
		ans, _ := l.do(context.Background(), "c", func() loginAnswer {
			close(started)
			<-release
			return loginAnswer{body: []byte(`{}`)}
		})
		leader <- ans
	}()
	waitFor(t, started, "the leader")
	ctx, cancel := context.WithCancel(context.Background())
	hooked := hookedFlights{l, cancel} // the joiner's client goes away as it joins
	if _, err := hooked.do(ctx, "c", func() loginAnswer { t.Error("joiner ran the login"); return loginAnswer{} }); !errors.Is(err, context.Canceled) {
		t.Fatalf("joiner: err = %v, want context.Canceled", err)
	}
	close(release)
	select {
	case ans := <-leader:
		if ans.err != nil || string(ans.body) != `{}` {
			t.Fatalf("leader: %+v", ans)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("leader did not finish")
	}
}

func TestLoginPanicReleasesDuplicates(t *testing.T) {
	l := newLoginFlights()
	started, joined := make(chan struct{}), make(chan struct{})
	hooked := hookedFlights{l, func() { close(joined) }}
	joiner := make(chan loginAnswer, 1)
	go func() {
		<-started
		ans, _ := hooked.do(context.Background(), "p", func() loginAnswer {
			t.Error("the duplicate ran its own login")
			return loginAnswer{}
		})
		joiner <- ans
	}()
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("panic swallowed")
			}
		}()
		l.do(context.Background(), "p", func() loginAnswer {
			close(started)
			<-joined // the duplicate waits on this login
			panic("boom")
		})
	}()
	select {
	case ans := <-joiner:
		if ans.err == nil || ans.err.Code != CodeInternalError {
			t.Fatalf("the duplicate of a login that panicked got %+v, want internal_error", ans)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the duplicate was not released")
	}
	// The failed login is not kept; the next request runs its own.
	ans, err := l.do(context.Background(), "p", func() loginAnswer { return loginAnswer{body: []byte(`{"ok":1}`)} })
	if err != nil || !strings.Contains(string(ans.body), "ok") {
		t.Fatalf("after a panic: %+v %v", ans, err)
	}
}
