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
	"github.com/wxauth/caddy-wechat-auth/internal/pgtest"
	"github.com/wxauth/caddy-wechat-auth/internal/testclock"
	"github.com/wxauth/caddy-wechat-auth/store"
	"github.com/wxauth/caddy-wechat-auth/store/postgres"
)

// Tests of the shared store's revocation lists: one list per app with the
// widest window its handlers need, entries counted from the later of the
// revocation and its receipt, a reload after a watcher outage, and
// revocations stamped by a revoking instance whose clock is behind.

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
	if _, _, _, err := st.Login(ctx, app, store.NewUser{OpenID: "o1"}, s, rt, s.CreatedAt); err != nil {
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
		if _, _, _, err := st.Login(ctx, app, store.NewUser{OpenID: "o1"}, s, rt, s.CreatedAt); err != nil {
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

// openPGShared opens a store on dsn as a separate process would (its own
// pool and revocation watcher), with its own clock.
func openPGShared(t *testing.T, dsn string, clk *testclock.Clock) *sharedDB {
	t.Helper()
	st, err := postgres.Open(context.Background(), dsn, postgres.Options{PollInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	d := newSharedDB(st, zap.NewNop(), clk.Now)
	if err := d.startWatch(st); err != nil {
		_ = st.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Destruct() })
	return d
}

// waitRevoked waits, at most 5s, for the watcher to put sid on revs.
func waitRevoked(t *testing.T, revs *handler.Revocations, sid string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !revs.Revoked(sid) {
		if time.Now().After(deadline) {
			t.Fatalf("the revocation of %s did not reach the other instance within 5s", sid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestRevocationSkewedRevoker: an instance whose clock is an hour behind
// logs a session out. Another instance keeps refusing the session for the
// whole window of its tokens, counted from the database's clock: while it
// runs (it heard of the revocation) and after a restart (it loads the
// revocation from the store), up to the last instant a token could pass.
func TestRevocationSkewedRevoker(t *testing.T) {
	const app = "wxskew"
	const accessTTL, leeway = 15 * time.Minute, 30 * time.Second
	dsn, _ := pgtest.SchemaDSN(t)
	real := time.Now().UTC().Truncate(time.Microsecond) // the database keeps microseconds
	slow := testclock.New(real.Add(-time.Hour))         // the revoking instance
	clk := testclock.New(real)                          // the others
	a := openPGShared(t, dsn, slow)
	b := openPGShared(t, dsn, clk)
	ctx := context.Background()

	revsB, err := b.revocations(ctx, app, accessTTL, leeway)
	if err != nil {
		t.Fatal(err)
	}
	// Logged in (through b) at real time: the session's tokens are
	// accepted until real + TTL + leeway.
	sess := store.Session{ID: "sid-skew", OpenID: "o1", CreatedAt: real}
	tok := store.RefreshToken{Hash: [32]byte{1, 2, 3}, SessionID: sess.ID, IssuedAt: real, ExpiresAt: real.Add(time.Hour), AccessID: "j", AccessIssuedAt: real}
	if _, _, _, err := b.store.Login(ctx, app, store.NewUser{OpenID: "o1"}, sess, tok, real); err != nil {
		t.Fatal(err)
	}

	// The slow instance revokes with its own (wrong) now.
	rs, err := a.store.RevokeSession(ctx, app, sess.ID, store.ReasonLogout, slow.Now())
	if err != nil {
		t.Fatal(err)
	}
	if rs.RevokedAt.Before(real) {
		t.Errorf("revoked_at %v is the revoking instance's clock, behind the database's (%v)", rs.RevokedAt, real)
	}
	waitRevoked(t, revsB, sess.ID)

	lastAccepted := real.Add(accessTTL + leeway)
	clk.Set(lastAccepted)
	b.sweep(ctx)
	if !revsB.Revoked(sess.ID) {
		t.Fatal("the running instance forgot the revocation while the session's tokens are still accepted")
	}

	// A restart at that instant loads the revocation from the store.
	c := newSharedDB(b.store, zap.NewNop(), clk.Now)
	revsC, err := c.revocations(ctx, app, accessTTL, leeway)
	if err != nil {
		t.Fatal(err)
	}
	if !revsC.Revoked(sess.ID) || revsC.Sweep(clk.Now()) != 0 {
		t.Fatal("a restarted instance did not load the revocation while the session's tokens are still accepted")
	}
}
