package postgres

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/wxauth/caddy-wechat-auth/internal/pgtest"
	"github.com/wxauth/caddy-wechat-auth/store"
	"github.com/wxauth/caddy-wechat-auth/store/storetest"
)

func TestIsDSN(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"postgres://u@h/db", true},
		{"postgresql://u@h:5433/db?sslmode=disable", true},
		{"  POSTGRES://u@h/db", true},
		{"/var/lib/caddy/wechat_auth/app.db", false},
		{"postgres.db", false},
		{"host=localhost dbname=x", false},
		{"", false},
	}
	for _, tc := range tests {
		if got := IsDSN(tc.in); got != tc.want {
			t.Errorf("IsDSN(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

// freePort returns a loopback port nothing listens on.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

// TestOpenErrors: failures at start name the server, never the password.
func TestOpenErrors(t *testing.T) {
	addr := freePort(t)
	tests := []struct {
		name, dsn, want string
	}{
		{"unreachable", "postgres://alice:s3cr3t-pw@" + addr + "/db?sslmode=disable", "not reachable"},
		{"not a URL", "/var/lib/app.db", "postgres://"},
		{"bad DSN", "postgres://alice:s3cr3t-pw@127.0.0.1:notaport/db", "parsing DSN"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			s, err := Open(ctx, tc.dsn, Options{ConnectTimeout: time.Second})
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded")
			}
			msg := err.Error()
			if !strings.Contains(msg, tc.want) {
				t.Errorf("error %q does not say %q", msg, tc.want)
			}
			if strings.Contains(msg, "s3cr3t-pw") {
				t.Errorf("error %q reveals the password", msg)
			}
			if tc.name == "unreachable" && !strings.Contains(msg, addr) {
				t.Errorf("error %q does not name %s", msg, addr)
			}
		})
	}
}

// TestMigrateConcurrent: instances starting at once on one empty schema
// all open it, and each migration is applied exactly once.
func TestMigrateConcurrent(t *testing.T) {
	dsn, _ := pgtest.SchemaDSN(t)
	const n = 4
	var wg sync.WaitGroup
	stores := make([]*Store, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stores[i], errs[i] = Open(context.Background(), dsn, testOptions)
		}()
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("Open %d: %v", i, errs[i])
		}
		stores[i].Close()
	}
	s := openDSN(t, dsn) // and once more, on a migrated schema
	var rows, version int
	if err := s.pool.QueryRow(context.Background(), `SELECT count(*), max(version) FROM wechat_auth_schema_migrations`).Scan(&rows, &version); err != nil {
		t.Fatal(err)
	}
	ms, err := loadMigrations()
	if err != nil {
		t.Fatal(err)
	}
	// One row per migration file, numbered 1 to N without a gap.
	if rows != len(ms) || version != SchemaVersion() || version != len(ms) {
		t.Errorf("schema_migrations has %d rows up to version %d, want %d rows up to %d", rows, version, len(ms), SchemaVersion())
	}
}

// TestMigrateRefusesNewerSchema: a schema migrated by a newer build is
// refused with a clear error instead of being used half-understood.
func TestMigrateRefusesNewerSchema(t *testing.T) {
	dsn, _ := pgtest.SchemaDSN(t)
	s := openDSN(t, dsn)
	if _, err := s.pool.Exec(context.Background(), `INSERT INTO wechat_auth_schema_migrations (version, name) VALUES (9999, '9999_future.sql')`); err != nil {
		t.Fatal(err)
	}
	_, err := Open(context.Background(), dsn, testOptions)
	if err == nil || !strings.Contains(err.Error(), "newer than this build") {
		t.Fatalf("Open of a newer schema: %v", err)
	}
}

// TestUnavailable: with the database cut off, calls fail fast with
// ErrUnavailable naming the server, and work again once it is back,
// without reopening the store.
func TestUnavailable(t *testing.T) {
	dsn, _ := pgtest.SchemaDSN(t)
	proxy := pgtest.NewProxy(t, pgtest.Target(t))
	s := openDSN(t, pgtest.ProxyDSN(t, dsn, proxy))
	ctx := context.Background()
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	if _, _, err := storetest.CreateUser(ctx, s, "app", store.NewUser{OpenID: "before"}, now); err != nil {
		t.Fatalf("CreateUser: %v", err)
	}

	proxy.Stop()
	calls := []struct {
		name string
		call func() error
	}{
		{"Login", func() error {
			_, _, err := storetest.LoginUser(ctx, s, "app", store.NewUser{OpenID: "during"}, now)
			return err
		}},
		{"User", func() error { _, err := s.User(ctx, "app", 1); return err }},
		{"RevokeSession", func() error { _, err := s.RevokeSession(ctx, "app", "sid", store.ReasonLogout, now); return err }},
		{"Secret", func() error {
			_, err := s.Secret(ctx, "app", "k", func() ([]byte, error) { return []byte("v"), nil })
			return err
		}},
	}
	for _, c := range calls {
		start := time.Now()
		err := c.call()
		if !errors.Is(err, store.ErrUnavailable) {
			t.Errorf("%s with the database cut off: %v, want ErrUnavailable", c.name, err)
			continue
		}
		if !strings.Contains(err.Error(), proxy.Addr()) {
			t.Errorf("%s: error %q does not name the server", c.name, err)
		}
		if d := time.Since(start); d > testOptions.Timeout+time.Second {
			t.Errorf("%s took %s to fail", c.name, d)
		}
	}

	proxy.Start()
	u, created, err := storetest.LoginUser(ctx, s, "app", store.NewUser{OpenID: "after"}, now)
	if err != nil || !created || u.ID != 2 {
		t.Fatalf("Login after the database came back = %+v, %v, %v; want user 2 created", u, created, err)
	}
}

// watch starts a watcher delivering into a channel and returns it with
// the function that stops it and waits for its goroutines.
func watch(t *testing.T, s *Store) (<-chan store.Revocation, func()) {
	t.Helper()
	ch := make(chan store.Revocation, 256)
	ctx, cancel := context.WithCancel(context.Background())
	if err := s.WatchRevocations(ctx, func(r store.Revocation) { ch <- r }, nil); err != nil {
		cancel()
		t.Fatalf("WatchRevocations: %v", err)
	}
	stop := func() {
		cancel()
		done := make(chan struct{})
		go func() { s.watchers.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("the watcher's goroutines did not stop within 5s of cancelling its context")
		}
	}
	t.Cleanup(cancel)
	return ch, stop
}

// expect waits (at most within) for revocations of sids.
func expect(t *testing.T, ch <-chan store.Revocation, within time.Duration, sids ...string) {
	t.Helper()
	want := map[string]bool{}
	for _, s := range sids {
		want[s] = true
	}
	deadline := time.After(within)
	for len(want) > 0 {
		select {
		case r := <-ch:
			delete(want, r.SessionID)
		case <-deadline:
			t.Fatalf("revocations of %v not delivered within %s", want, within)
		}
	}
}

// seedSessions logs a user in with n sessions s0, s1, ... on s.
func seedSessions(t *testing.T, s *Store, app string, n int) store.User {
	t.Helper()
	ctx := context.Background()
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	u, _, err := storetest.CreateUser(ctx, s, app, store.NewUser{OpenID: "o"}, now)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		sid := fmt.Sprintf("s%d", i)
		tok := store.RefreshToken{Hash: [32]byte{byte(i + 1), 7}, SessionID: sid, IssuedAt: now, ExpiresAt: now.Add(time.Hour), AccessIssuedAt: now}
		if err := storetest.CreateSession(ctx, s, store.Session{ID: sid, AppID: app, UserID: u.ID, OpenID: "o", CreatedAt: now}, tok); err != nil {
			t.Fatal(err)
		}
	}
	return u
}

// listenerPIDs makes s report the PIDs of its watchers' LISTEN
// connections on the returned channel. Call it before watching.
func listenerPIDs(s *Store) <-chan uint32 {
	ch := make(chan uint32, 16)
	s.listening = func(pid uint32) { ch <- pid }
	return ch
}

// nextPID waits for the next LISTEN connection's PID.
func nextPID(t *testing.T, ch <-chan uint32) uint32 {
	t.Helper()
	select {
	case pid := <-ch:
		return pid
	case <-time.After(5 * time.Second):
		t.Fatal("the watcher did not LISTEN within 5s")
		return 0
	}
}

// backendAlive reports whether the server still has backend pid.
func backendAlive(t *testing.T, s *Store, pid uint32) bool {
	t.Helper()
	var n int
	if err := s.pool.QueryRow(context.Background(), `SELECT count(*) FROM pg_stat_activity WHERE pid = $1`, int64(pid)).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n > 0
}

// TestWatchStopsWithContext: cancelling the context ends the watcher's
// goroutines and closes its LISTEN connection, which carries the
// listener's application_name.
func TestWatchStopsWithContext(t *testing.T) {
	dsn, _ := pgtest.SchemaDSN(t)
	s := openDSN(t, dsn)
	pids := listenerPIDs(s)
	_, stop := watch(t, s)
	pid := nextPID(t, pids)
	var name string
	if err := s.pool.QueryRow(context.Background(), `SELECT application_name FROM pg_stat_activity WHERE pid = $1`, int64(pid)).Scan(&name); err != nil || name != ListenerAppName {
		t.Errorf("listener connection's application_name = %q, %v; want %q", name, err, ListenerAppName)
	}
	stop()
	for i := 0; backendAlive(t, s, pid); i++ {
		if i == 100 {
			t.Fatal("the LISTEN connection is still open 5s after the watcher stopped")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestWatchSurvivesTerminatedListener: when the listener's connection is
// killed, a revocation made meanwhile still arrives (catch-up on
// reconnect, or the poll), within the poll interval plus a reconnect.
func TestWatchSurvivesTerminatedListener(t *testing.T) {
	dsn, _ := pgtest.SchemaDSN(t)
	a, b := openDSN(t, dsn), openDSN(t, dsn)
	seedSessions(t, b, "app", 2)
	pids := listenerPIDs(a)
	ch, _ := watch(t, a)
	pid := nextPID(t, pids)
	ctx := context.Background()
	now := time.Date(2030, 1, 1, 1, 0, 0, 0, time.UTC)

	if _, err := b.RevokeSession(ctx, "app", "s0", store.ReasonLogout, now); err != nil {
		t.Fatal(err)
	}
	expect(t, ch, 2*time.Second, "s0")

	var ok bool
	if err := b.pool.QueryRow(ctx, `SELECT pg_terminate_backend($1)`, int64(pid)).Scan(&ok); err != nil || !ok {
		t.Fatalf("terminating the listener: %v, %v", ok, err)
	}
	if _, err := b.RevokeSession(ctx, "app", "s1", store.ReasonAdmin, now); err != nil {
		t.Fatal(err)
	}
	expect(t, ch, testOptions.PollInterval+time.Second, "s1")
	// And it listens again.
	if again := nextPID(t, pids); again == pid {
		t.Errorf("reconnected with the same backend pid %d", pid)
	}
}

// TestWatchOutOfOrderCommit: a feed entry whose transaction commits after
// a later entry's is still delivered (the hole is read again).
func TestWatchOutOfOrderCommit(t *testing.T) {
	dsn, _ := pgtest.SchemaDSN(t)
	a, b := openDSN(t, dsn), openDSN(t, dsn)
	seedSessions(t, b, "app", 1)
	ch, _ := watch(t, a)
	ctx := context.Background()

	slow, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close(ctx)
	tx, err := slow.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `INSERT INTO wechat_auth_revocations (app_id, session_id, user_id, revoked_at, reason)
		VALUES ('app', 'slow', 1, now(), 'admin')`); err != nil {
		t.Fatal(err)
	}
	if _, err := b.RevokeSession(ctx, "app", "s0", store.ReasonLogout, time.Now()); err != nil {
		t.Fatal(err)
	}
	expect(t, ch, 2*time.Second, "s0")
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	expect(t, ch, testOptions.PollInterval+time.Second, "slow")
}

// TestWatchAfterClose: Close stops watchers; watching a closed store is
// refused.
func TestWatchAfterClose(t *testing.T) {
	dsn, _ := pgtest.SchemaDSN(t)
	s, err := Open(context.Background(), dsn, testOptions)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.WatchRevocations(context.Background(), func(store.Revocation) {}, nil); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return within 5s with a watcher running")
	}
	err = s.WatchRevocations(context.Background(), func(store.Revocation) {}, nil)
	if !errors.Is(err, store.ErrClosed) {
		t.Errorf("WatchRevocations after Close: %v, want ErrClosed", err)
	}
}
