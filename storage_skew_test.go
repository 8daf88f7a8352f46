package wechatauth

import (
	"context"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/wxauth/caddy-wechat-auth/internal/handler"
	"github.com/wxauth/caddy-wechat-auth/internal/pgtest"
	"github.com/wxauth/caddy-wechat-auth/internal/testclock"
	"github.com/wxauth/caddy-wechat-auth/store"
	"github.com/wxauth/caddy-wechat-auth/store/postgres"
)

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
