package postgres

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/wxauth/caddy-wechat-auth/internal/pgtest"
	"github.com/wxauth/caddy-wechat-auth/store"
)

// roundTrips counts what the pool's connections send to the server, each
// query and each batch being one round trip.
type roundTrips struct{ n atomic.Int64 }

func (c *roundTrips) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	c.n.Add(1)
	return ctx
}
func (c *roundTrips) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}
func (c *roundTrips) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	c.n.Add(1)
	return ctx
}
func (c *roundTrips) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}
func (c *roundTrips) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData)     {}

// TestLoginRoundTrips: a returning user's login is one statement, a new
// user's one statement and one pipelined batch (reserving the id and
// creating the user with the session), and a refresh one statement:
// each waits for one durable commit.
func TestLoginRoundTrips(t *testing.T) {
	dsn, _ := pgtest.SchemaDSN(t)
	var rt roundTrips
	opts := testOptions
	opts.tracer = &rt
	s, err := Open(context.Background(), dsn+"&pool_max_conns=1", opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	ctx := context.Background()
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	seq := 0
	login := func(openID string) (store.User, store.Session, bool) {
		t.Helper()
		seq++
		sid := fmt.Sprintf("sid-%d", seq)
		tok := store.RefreshToken{Hash: sha256.Sum256([]byte(sid)), SessionID: sid, IssuedAt: now,
			ExpiresAt: now.Add(time.Hour), AccessID: "a", AccessIssuedAt: now}
		u, sess, created, err := s.Login(ctx, "app", store.NewUser{OpenID: openID}, store.Session{ID: sid, CreatedAt: now}, tok, now)
		if err != nil {
			t.Fatalf("Login(%s): %v", openID, err)
		}
		return u, sess, created
	}
	count := func(what string, want int64, fn func()) {
		t.Helper()
		before := rt.n.Load()
		fn()
		if got := rt.n.Load() - before; got != want {
			t.Errorf("%s: %d round trips, want %d", what, got, want)
		}
	}
	// The statements are prepared on first use (not counted here).
	login("warm")
	login("warm")

	count("login of a new user", 2, func() {
		if _, _, created := login("new"); !created {
			t.Error("new user not created")
		}
	})
	var sess store.Session
	count("login of a returning user", 1, func() {
		var created bool
		if _, sess, created = login("new"); created {
			t.Error("returning user created again")
		}
	})
	next := store.RefreshToken{Hash: sha256.Sum256([]byte("next")), IssuedAt: now, ExpiresAt: now.Add(time.Hour), AccessID: "b", AccessIssuedAt: now}
	if _, err := s.Rotate(ctx, "app", sha256.Sum256([]byte("sid-1")), next, now.Add(time.Second), time.Second); err != nil {
		t.Fatal(err) // prepares the rotation
	}
	next2 := next
	next2.Hash = sha256.Sum256([]byte("next2"))
	count("refresh", 1, func() {
		if _, err := s.Rotate(ctx, "app", sha256.Sum256([]byte(sess.ID)), next2, now.Add(time.Second), time.Second); err != nil {
			t.Fatal(err)
		}
	})
	// A banned user's login is refused in one round trip too.
	u, _, _ := login("banned")
	if _, _, err := s.Ban(ctx, "app", u.ID, "", now); err != nil {
		t.Fatal(err)
	}
	count("login of a banned user", 1, func() {
		_, _, _, err := s.Login(ctx, "app", store.NewUser{OpenID: "banned"}, store.Session{ID: "sid-b", CreatedAt: now},
			store.RefreshToken{Hash: sha256.Sum256([]byte("sid-b")), SessionID: "sid-b", IssuedAt: now, ExpiresAt: now.Add(time.Hour)}, now)
		if !errors.Is(err, store.ErrBanned) {
			t.Errorf("login of a banned user: %v", err)
		}
	})
}

// TestPoolSize: without pool_max_conns the pool holds up to
// defaultMaxConns connections (at least 16, so that concurrent logins
// share commit flushes); the DSN's setting wins.
func TestPoolSize(t *testing.T) {
	dsn, _ := pgtest.SchemaDSN(t)
	for _, tc := range []struct {
		dsn  string
		want int32
	}{
		{dsn, defaultMaxConns()},
		{dsn + "&pool_max_conns=3", 3},
	} {
		s := openDSN(t, tc.dsn)
		if got := s.pool.Config().MaxConns; got != tc.want {
			t.Errorf("MaxConns = %d, want %d", got, tc.want)
		}
	}
	if defaultMaxConns() < 16 {
		t.Errorf("defaultMaxConns() = %d, want at least 16", defaultMaxConns())
	}
}
