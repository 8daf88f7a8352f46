package wechatauth

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/wxauth/caddy-wechat-auth/internal/handler"
	"github.com/wxauth/caddy-wechat-auth/internal/testclock"
	"github.com/wxauth/caddy-wechat-auth/store"
	"github.com/wxauth/caddy-wechat-auth/store/bolt"
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
	u, _, err = bs.LoginUser(context.Background(), app, store.NewUser{OpenID: "o1"}, clk.Now())
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
		if err := st.CreateSession(ctx, s, rt); err != nil {
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
	if err := st.CreateSession(ctx, s, rt); err != nil {
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

// failingRevocations is a store whose Revocations fails while fail is set.
type failingRevocations struct {
	store.Store
	fail bool
}

func (f *failingRevocations) Revocations(ctx context.Context, app string, since time.Time) ([]store.Revocation, error) {
	if f.fail {
		return nil, store.ErrUnavailable
	}
	return f.Store.Revocations(ctx, app, since)
}

// TestRevocationsWidenOnlyAfterLoad: when loading the revocations a wider
// window adds fails, the list is not taken as covering that window: the
// next handler asking for it loads them.
func TestRevocationsWidenOnlyAfterLoad(t *testing.T) {
	const app = "wxwiden"
	_, st, u, clk := newTestSharedDB(t, app)
	fs := &failingRevocations{Store: st}
	d := newSharedDB(fs, zap.NewNop(), clk.Now)
	now := clk.Now()
	ctx := context.Background()
	s := store.Session{ID: "sid-old", AppID: app, UserID: u.ID, OpenID: "o1", CreatedAt: now.Add(-time.Hour), ExpiresAt: now.Add(time.Hour)}
	rt := store.RefreshToken{Hash: [32]byte{9}, SessionID: s.ID, IssuedAt: s.CreatedAt, ExpiresAt: s.ExpiresAt, AccessID: "j", AccessIssuedAt: s.CreatedAt}
	if err := st.CreateSession(ctx, s, rt); err != nil {
		t.Fatal(err)
	}
	if _, err := st.RevokeSession(ctx, app, s.ID, store.ReasonLogout, now.Add(-30*time.Minute)); err != nil {
		t.Fatal(err)
	}
	short, err := d.revocations(ctx, app, 15*time.Minute, 0)
	if err != nil || short.Revoked(s.ID) {
		t.Fatalf("15m list: %v, revoked %v; want loaded without the 30m-old revocation", err, short.Revoked(s.ID))
	}
	fs.fail = true
	if _, err := d.revocations(ctx, app, 2*time.Hour, 0); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("2h list with the store failing: %v, want ErrUnavailable", err)
	}
	fs.fail = false
	long, err := d.revocations(ctx, app, 2*time.Hour, 0)
	if err != nil || long != short || !long.Revoked(s.ID) {
		t.Fatalf("2h list after the store came back: %v, same list %v, revoked %v; want the shared list with the revocation", err, long == short, long.Revoked(s.ID))
	}
}

// TestNoteRevocationFromSlowClock: a revocation heard from another
// instance whose clock is far behind is kept for the list's full window
// from the moment it arrives.
func TestNoteRevocationFromSlowClock(t *testing.T) {
	const app = "wxnote"
	d, _, u, clk := newTestSharedDB(t, app)
	ctx := context.Background()
	revs, err := d.revocations(ctx, app, 15*time.Minute, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	arrived := clk.Now()
	d.noteRevocation(store.Revocation{AppID: app, SessionID: "sid-skewed", UserID: u.ID, RevokedAt: arrived.Add(-time.Hour)})
	clk.Set(arrived.Add(15*time.Minute + 30*time.Second))
	d.sweep(ctx)
	if !revs.Revoked("sid-skewed") {
		t.Fatal("a revocation stamped an hour behind was dropped before its window from arrival passed")
	}
	clk.Set(arrived.Add(15*time.Minute + 30*time.Second + time.Second + time.Nanosecond))
	d.sweep(ctx)
	if revs.Revoked("sid-skewed") {
		t.Fatal("the revocation outlived its window from arrival")
	}
}

// TestReloadRevocations: after a watcher outage, reloading puts on each
// app's list what the store holds for the widest window the list was
// loaded for, keeping what was there.
func TestReloadRevocations(t *testing.T) {
	const app = "wxreload"
	d, st, u, clk := newTestSharedDB(t, app)
	now := clk.Now()
	ctx := context.Background()
	for i, sid := range []string{"sid-kept", "sid-missed"} {
		s := store.Session{ID: sid, AppID: app, UserID: u.ID, OpenID: "o1", CreatedAt: now.Add(-time.Hour), ExpiresAt: now.Add(time.Hour)}
		rt := store.RefreshToken{Hash: [32]byte{byte(i + 1), 5}, SessionID: sid, IssuedAt: s.CreatedAt, ExpiresAt: s.ExpiresAt, AccessID: "j", AccessIssuedAt: s.CreatedAt}
		if err := st.CreateSession(ctx, s, rt); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := d.revocations(ctx, app, 15*time.Minute, 0); err != nil {
		t.Fatal(err)
	}
	revs, err := d.revocations(ctx, app, 2*time.Hour, 0)
	if err != nil {
		t.Fatal(err)
	}
	d.noteRevocation(store.Revocation{AppID: app, SessionID: "sid-kept", UserID: u.ID, RevokedAt: now})
	// Revoked 30 minutes ago (inside the 2h window, outside the 15m one)
	// by an instance whose feed entry this one never read.
	if _, err := st.RevokeSession(ctx, app, "sid-missed", store.ReasonLogout, now.Add(-30*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if revs.Revoked("sid-missed") {
		t.Fatal("test set-up: the missed revocation is already listed")
	}
	if err := d.reloadRevocations(ctx); err != nil {
		t.Fatal(err)
	}
	if !revs.Revoked("sid-missed") || !revs.Revoked("sid-kept") {
		t.Fatalf("after the reload: missed %v, kept %v; want both listed", revs.Revoked("sid-missed"), revs.Revoked("sid-kept"))
	}
}

// TestTwoBlocksOneAppWidestWindow: two handlers of one app with different
// access_ttl, provisioned as two blocks of one config are, share one
// revocation list that keeps entries for the longer-lived tokens, in
// either order: a session revoked through the 15m block is still listed an
// hour later, while a 2h token of it could still pass.
func TestTwoBlocksOneAppWidestWindow(t *testing.T) {
	for _, order := range [][2]time.Duration{{2 * time.Hour, 15 * time.Minute}, {15 * time.Minute, 2 * time.Hour}} {
		db := filepath.Join(t.TempDir(), "two.db")
		var ms []*WeChatAuth
		for _, ttl := range order {
			ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
			t.Cleanup(cancel)
			m := &WeChatAuth{
				AppID: "wxtwoblocks", AppSecret: "two-blocks-secret", DB: db,
				APIBase:    "http://127.0.0.1:1",
				SigningKey: "two-blocks-signing-key-0123456789abcdef",
				AccessTTL:  caddy.Duration(ttl),
			}
			if err := m.Provision(ctx); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = m.Cleanup() })
			ms = append(ms, m)
		}
		if ms[0].db != ms[1].db {
			t.Fatal("two blocks of one database got two shared stores")
		}
		ms[0].db.mu.Lock()
		revs := ms[0].db.revs["wxtwoblocks"]
		ms[0].db.mu.Unlock()
		// 2h + the default 30s leeway + a second for whole-second times.
		if want := 2*time.Hour + 30*time.Second + time.Second; revs.Window() != want {
			t.Errorf("access_ttl %v then %v: the shared list keeps entries %v, want %v", order[0], order[1], revs.Window(), want)
		}

		short := ms[0]
		if order[1] < order[0] {
			short = ms[1]
		}
		now := time.Now()
		sess := store.Session{ID: "sid-two", OpenID: "o1", CreatedAt: now}
		tok := store.RefreshToken{Hash: [32]byte{2, 2}, SessionID: sess.ID, IssuedAt: now, ExpiresAt: now.Add(24 * time.Hour), AccessID: "j", AccessIssuedAt: now}
		if _, _, _, err := short.db.store.Login(context.Background(), "wxtwoblocks", store.NewUser{OpenID: "o1"}, sess, tok, now); err != nil {
			t.Fatal(err)
		}
		if _, err := short.handler.RevokeSession(context.Background(), sess.ID); err != nil {
			t.Fatal(err)
		}
		if revs.Sweep(now.Add(time.Hour)); !revs.Revoked(sess.ID) {
			t.Errorf("access_ttl %v then %v: a session revoked through the 15m block left the list within an hour", order[0], order[1])
		}
	}
}
