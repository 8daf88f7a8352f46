package wechatauth

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"

	"github.com/wxauth/caddy-wechat-auth/internal/handler"
	"github.com/wxauth/caddy-wechat-auth/internal/testclock"
	"github.com/wxauth/caddy-wechat-auth/store"
	"github.com/wxauth/caddy-wechat-auth/store/bolt"
	"github.com/wxauth/caddy-wechat-auth/store/storetest"
)

// newTestSharedDB is a shared store on a fresh bbolt file, whose clock is
// clk, with user o1 of app in it.
func newTestSharedDB(t *testing.T, app string) (d *sharedDB, st store.Store, u store.User, clk *testclock.Clock) {
	t.Helper()
	bs, err := bolt.Open(filepath.Join(t.TempDir(), "s.db"), bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	clk = testclock.New(time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC))
	d = newSharedDB(bs, zap.NewNop(), clk.Now)
	t.Cleanup(func() { _ = d.Destruct() })
	u, _, err = storetest.CreateUser(context.Background(), bs, app, store.NewUser{OpenID: "o1"}, clk.Now())
	if err != nil {
		t.Fatal(err)
	}
	return d, bs, u, clk
}

// TestSharedDBSweep checks the background sweep's work: expired sessions
// leave the store, stale revocations leave the in-memory lists.
func TestSharedDBSweep(t *testing.T) {
	const app = "wxsweep"
	d, st, u, clk := newTestSharedDB(t, app)
	now := clk.Now()
	ctx := context.Background()

	mk := func(sid string, ttl time.Duration) {
		s := store.Session{ID: sid, AppID: app, UserID: u.ID, OpenID: "o1", CreatedAt: now, ExpiresAt: now.Add(ttl)}
		rt := store.RefreshToken{Hash: [32]byte{byte(len(sid)), sid[len(sid)-1]}, SessionID: sid, IssuedAt: now, ExpiresAt: now.Add(ttl), AccessID: "j", AccessIssuedAt: now}
		if err := storetest.CreateSession(ctx, st, s, rt); err != nil {
			t.Fatal(err)
		}
	}
	mk("short-1", time.Hour)
	mk("long-2", 48*time.Hour)
	mk("revoked-3", 48*time.Hour)
	if _, err := st.RevokeSession(ctx, app, "revoked-3", "logout", now); err != nil {
		t.Fatal(err)
	}
	revs, err := d.revocations(ctx, app, 15*time.Minute, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !revs.Revoked("revoked-3") {
		t.Fatal("revocation not loaded from the store")
	}

	// Two hours on: the short session has expired, the revocation no
	// longer matters to the guard (its tokens have expired), but the
	// revoked session is kept for restarts until handler.RevokedRetention.
	now = now.Add(2 * time.Hour)
	clk.Set(now)
	d.sweep(ctx)
	if _, err := st.Session(ctx, app, "short-1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("expired session not pruned: %v", err)
	}
	if _, err := st.Session(ctx, app, "long-2"); err != nil {
		t.Fatalf("live session pruned: %v", err)
	}
	if _, err := st.Session(ctx, app, "revoked-3"); err != nil {
		t.Fatalf("revoked session pruned too early: %v", err)
	}
	if revs.Revoked("revoked-3") || revs.Len() != 0 {
		t.Fatal("stale revocation kept in memory")
	}

	now = now.Add(handler.RevokedRetention)
	clk.Set(now)
	d.sweep(ctx)
	if _, err := st.Session(ctx, app, "revoked-3"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("old revoked session not pruned: %v", err)
	}
}

// TestSharedDBSweepStops checks the sweep goroutine ends with the store.
func TestSharedDBSweepStops(t *testing.T) {
	st, err := bolt.Open(filepath.Join(t.TempDir(), "s.db"), bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	d := newSharedDB(st, zap.NewNop(), time.Now)
	d.startSweep(time.Hour)
	done := make(chan error)
	go func() { done <- d.Destruct() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Destruct did not stop the sweep")
	}
	if _, err := st.User(context.Background(), "a", 1); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("store still open after Destruct: %v", err)
	}
}

// TestRevocationsReloadForWiderWindow: a handler whose access tokens live
// longer than those of the handler that loaded the app's revocation list
// gets the older revocations its tokens need (a logout made before a
// restart still refuses every token it can).
func TestRevocationsReloadForWiderWindow(t *testing.T) {
	const app = "wxwindow"
	d, st, u, clk := newTestSharedDB(t, app)
	now := clk.Now()
	ctx := context.Background()
	s := store.Session{ID: "sid-old", AppID: app, UserID: u.ID, OpenID: "o1", CreatedAt: now.Add(-time.Hour), ExpiresAt: now.Add(time.Hour)}
	rt := store.RefreshToken{Hash: [32]byte{7}, SessionID: s.ID, IssuedAt: s.CreatedAt, ExpiresAt: s.ExpiresAt, AccessID: "j", AccessIssuedAt: s.CreatedAt}
	if err := storetest.CreateSession(ctx, st, s, rt); err != nil {
		t.Fatal(err)
	}
	if _, err := st.RevokeSession(ctx, app, s.ID, store.ReasonLogout, now.Add(-30*time.Minute)); err != nil {
		t.Fatal(err)
	}
	short, err := d.revocations(ctx, app, 15*time.Minute, 0)
	if err != nil {
		t.Fatal(err)
	}
	if short.Revoked(s.ID) {
		t.Fatal("a revocation older than the 15m window was loaded")
	}
	long, err := d.revocations(ctx, app, 2*time.Hour, 0)
	if err != nil {
		t.Fatal(err)
	}
	if long != short || !long.Revoked(s.ID) {
		t.Fatalf("after a 2h handler asked: same list %v, revoked %v; want the shared list with the revocation", long == short, long.Revoked(s.ID))
	}
}

// TestSharedDBSecretsWithoutStore: the generated secrets a config loaded
// are opened again by the next config (a reload) without the store, so a
// reload works while the database is unreachable; a config with another
// app secret is sent to the store, which refuses it.
func TestSharedDBSecretsWithoutStore(t *testing.T) {
	const app = "wxsecretcache"
	d, st, _, _ := newTestSharedDB(t, app)
	ctx := context.Background()
	a, err := handler.NewSealer("app-secret-A")
	if err != nil {
		t.Fatal(err)
	}
	first, err := d.generatedSecret(ctx, a, app, handler.SecretSigningKey, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := handler.NewSealer("app-secret-B")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.generatedSecret(ctx, b, app, handler.SecretSigningKey, nil); !errors.Is(err, handler.ErrSecretMismatch) {
		t.Fatalf("another app secret: %v, want ErrSecretMismatch", err)
	}
	if err := st.Close(); err != nil { // the database goes away
		t.Fatal(err)
	}
	again, err := d.generatedSecret(ctx, a, app, handler.SecretSigningKey, nil)
	if err != nil || !bytes.Equal(again, first) {
		t.Fatalf("reload without the store: %v (same value: %v)", err, bytes.Equal(again, first))
	}
	if _, err := d.generatedSecret(ctx, a, app, handler.SecretRefresh, nil); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("a secret never loaded, without the store: %v, want ErrClosed", err)
	}
}

// TestUsersGaugeIsTheStoresFigure: the users gauge is counted from the
// store in the background, and again on every sweep, so users that other
// instances create show in it.
func TestUsersGaugeIsTheStoresFigure(t *testing.T) {
	app := fmt.Sprintf("wxusersgauge%04d", metricsTestRuns.Add(1))
	d, st, _, clk := newTestSharedDB(t, app)
	ctx := context.Background()
	gauge := metricUsers.WithLabelValues(app)
	d.countUsers(app)
	d.bg.Wait() // the background count ends once the store has answered
	if got := testutil.ToFloat64(gauge); got != 1 {
		t.Fatalf("users gauge %v, want 1 (the store's user)", got)
	}
	d.countUsers(app) // a reload: nothing new to count

	// Another instance sharing the store creates two users.
	now := clk.Now()
	for i, openid := range []string{"o2", "o3"} {
		sess := store.Session{ID: "sid-" + openid, AppID: app, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
		tok := store.RefreshToken{Hash: [32]byte{byte(i + 1)}, SessionID: sess.ID, IssuedAt: now, ExpiresAt: now.Add(time.Hour), AccessID: "a" + openid, AccessIssuedAt: now}
		if _, _, _, err := st.Login(ctx, app, store.NewUser{OpenID: openid}, sess, tok, now); err != nil {
			t.Fatal(err)
		}
	}
	d.recountUsers(ctx)
	if got := testutil.ToFloat64(gauge); got != 3 {
		t.Fatalf("users gauge after the sweep's count: %v, want 3", got)
	}
}

// failingStats is a store whose Stats fails while fails is above zero.
type failingStats struct {
	store.Store
	mu    sync.Mutex
	fails int
	calls int
}

func (f *failingStats) Stats(ctx context.Context, app string, now time.Time) (store.Stats, error) {
	f.mu.Lock()
	f.calls++
	fail := f.fails > 0
	f.fails--
	f.mu.Unlock()
	if fail {
		return store.Stats{}, store.ErrUnavailable
	}
	return f.Store.Stats(ctx, app, now)
}

// TestUsersGaugeSeedRetries: while the store does not answer, the first
// count is retried in the background until it does.
func TestUsersGaugeSeedRetries(t *testing.T) {
	app := fmt.Sprintf("wxusersretry%04d", metricsTestRuns.Add(1))
	d, st, _, _ := newTestSharedDB(t, app)
	fs := &failingStats{Store: st, fails: 3}
	d.store, d.countRetry = fs, time.Millisecond
	d.countUsers(app)
	d.bg.Wait()
	if got := testutil.ToFloat64(metricUsers.WithLabelValues(app)); got != 1 || fs.calls != 4 {
		t.Fatalf("users gauge %v after %d counts, want 1 after 4", got, fs.calls)
	}
}
