package postgres

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/wxauth/caddy-wechat-auth/internal/pgtest"
	"github.com/wxauth/caddy-wechat-auth/internal/testclock"
	"github.com/wxauth/caddy-wechat-auth/store"
)

// stepWatcher is a watcher driven by the test, one catch-up at a time,
// on a store whose clock is the returned one.
type stepWatcher struct {
	*watcher
	got        []string // session ids delivered, in order
	reloads    int
	failReload bool
}

func newStepWatcher(t *testing.T, s *Store) (*stepWatcher, *testclock.Clock) {
	t.Helper()
	clk := testclock.New(time.Now())
	s.now = clk.Now
	sw := &stepWatcher{}
	sw.watcher = newWatcher(s, func(r store.Revocation) { sw.got = append(sw.got, r.SessionID) }, func(context.Context) error {
		sw.reloads++
		if sw.failReload {
			return errors.New("reload refused by the test")
		}
		return nil
	})
	if err := sw.start(context.Background()); err != nil {
		t.Fatalf("starting the watcher: %v", err)
	}
	return sw, clk
}

// catchUpOK runs catch-ups until one works (a pool whose connections were
// cut may need a few attempts to notice), at most 50.
func (sw *stepWatcher) catchUpOK(t *testing.T) {
	t.Helper()
	var err error
	for range 50 {
		if err = sw.catchUp(context.Background()); err == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no catch-up worked: %v", err)
}

// catchUpFails runs one catch-up, which must fail.
func (sw *stepWatcher) catchUpFails(t *testing.T) {
	t.Helper()
	if err := sw.catchUp(context.Background()); err == nil {
		t.Fatal("a catch-up with the database cut off worked")
	}
}

// inFlight begins a transaction on its own connection that appends a feed
// row for session sid (taking its sequence number) without committing.
func inFlight(t *testing.T, dsn, sid string) pgx.Tx {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO wechat_auth_revocations (app_id, session_id, user_id, revoked_at, reason)
		VALUES ('app', $1, 1, clock_timestamp(), 'admin')`, sid); err != nil {
		t.Fatal(err)
	}
	return tx
}

func wantDelivered(t *testing.T, got []string, want ...string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("delivered %v, want %v", got, want)
	}
}

// TestWatchHoleSurvivesOutage: a revocation whose transaction holds a hole
// in the feed and commits while the watcher cannot read, for longer than
// the hole retention, is delivered by the first read that works again;
// and the watcher asks for a reload, once.
func TestWatchHoleSurvivesOutage(t *testing.T) {
	dsn, _ := pgtest.SchemaDSN(t)
	proxy := pgtest.NewProxy(t, pgtest.Target(t))
	a, b := openDSN(t, pgtest.ProxyDSN(t, dsn, proxy)), openDSN(t, dsn)
	seedSessions(t, b, "app", 1)
	sw, clk := newStepWatcher(t, a)
	ctx := context.Background()

	slow := inFlight(t, dsn, "slow")
	if _, err := b.RevokeSession(ctx, "app", "s0", store.ReasonLogout, time.Now()); err != nil {
		t.Fatal(err)
	}
	sw.catchUpOK(t)
	wantDelivered(t, sw.got, "s0")

	proxy.Stop()
	clk.Advance(gapRetention / 2)
	sw.catchUpFails(t)
	clk.Advance(2 * gapRetention)
	sw.catchUpFails(t)
	if err := slow.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	proxy.Start()
	clk.Advance(time.Second)
	sw.catchUpOK(t)
	wantDelivered(t, sw.got, "s0", "slow")
	if sw.reloads != 1 {
		t.Fatalf("%d reloads after an outage longer than the hole retention, want 1", sw.reloads)
	}
	sw.catchUpOK(t)
	if sw.reloads != 1 || len(sw.got) != 2 {
		t.Fatalf("a later catch-up reloaded again (%d) or delivered again (%v)", sw.reloads, sw.got)
	}
}

// TestWatchHoleGivenUpAfterSuccessfulReads: the hole of a rolled-back
// transaction is looked for until reads that work have spanned the hole
// retention; time while reads fail does not count.
func TestWatchHoleGivenUpAfterSuccessfulReads(t *testing.T) {
	dsn, _ := pgtest.SchemaDSN(t)
	proxy := pgtest.NewProxy(t, pgtest.Target(t))
	a, b := openDSN(t, pgtest.ProxyDSN(t, dsn, proxy)), openDSN(t, dsn)
	seedSessions(t, b, "app", 1)
	sw, clk := newStepWatcher(t, a)
	ctx := context.Background()

	gone := inFlight(t, dsn, "gone")
	if _, err := b.RevokeSession(ctx, "app", "s0", store.ReasonLogout, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := gone.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	sw.catchUpOK(t)
	if len(sw.gaps) != 1 {
		t.Fatalf("%d holes remembered, want 1", len(sw.gaps))
	}
	clk.Advance(gapRetention / 2)
	sw.catchUpOK(t)
	proxy.Stop()
	clk.Advance(gapRetention) // an outage shorter than the retention: no reload
	sw.catchUpFails(t)
	proxy.Start()
	sw.catchUpOK(t)
	if len(sw.gaps) != 1 {
		t.Fatal("the hole was given up counting time while reads failed")
	}
	clk.Advance(gapRetention/2 + time.Second)
	sw.catchUpOK(t)
	if len(sw.gaps) != 0 {
		t.Fatalf("the hole is still looked for after %s of successful reads", gapRetention+time.Second)
	}
	if sw.reloads != 0 {
		t.Fatalf("%d reloads after an outage shorter than the hole retention, want 0", sw.reloads)
	}
	wantDelivered(t, sw.got, "s0")
}

// TestWatchReloadRetried: a reload that fails is asked for again after
// every read until it works.
func TestWatchReloadRetried(t *testing.T) {
	dsn, _ := pgtest.SchemaDSN(t)
	proxy := pgtest.NewProxy(t, pgtest.Target(t))
	a := openDSN(t, pgtest.ProxyDSN(t, dsn, proxy))
	sw, clk := newStepWatcher(t, a)
	proxy.Stop()
	clk.Advance(2 * gapRetention)
	sw.catchUpFails(t)
	proxy.Start()
	sw.failReload = true
	var err error
	for range 50 { // the first reads may meet cut connections
		if err = sw.catchUp(context.Background()); err != nil && sw.reloads > 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if sw.reloads != 1 || err == nil {
		t.Fatalf("reloads %d, catch-up error %v; want one failed reload reported", sw.reloads, err)
	}
	if err := sw.catchUp(context.Background()); err == nil || sw.reloads != 2 {
		t.Fatalf("after a failed reload: catch-up %v, %d reloads; want it asked for again", err, sw.reloads)
	}
	sw.failReload = false
	sw.catchUpOK(t)
	sw.catchUpOK(t)
	if sw.reloads != 3 {
		t.Fatalf("%d reloads, want 3 (two failed, one that worked, then none)", sw.reloads)
	}
}

// TestWatchEmptyFeedStartInFlight: a watcher that starts on an empty feed
// (pruned, with the sequence already advanced) while a revocation's
// transaction is in flight delivers that revocation once it commits, once,
// and the revocations after it.
func TestWatchEmptyFeedStartInFlight(t *testing.T) {
	dsn, _ := pgtest.SchemaDSN(t)
	a, b := openDSN(t, dsn), openDSN(t, dsn)
	seedSessions(t, b, "app", 2)
	ctx := context.Background()
	if _, err := b.RevokeSession(ctx, "app", "s0", store.ReasonLogout, time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := b.pool.Exec(ctx, `DELETE FROM wechat_auth_revocations`); err != nil { // as Prune does
		t.Fatal(err)
	}
	slow := inFlight(t, dsn, "slow")

	sw, clk := newStepWatcher(t, a)
	sw.catchUpOK(t)
	wantDelivered(t, sw.got)
	if err := slow.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	sw.catchUpOK(t)
	wantDelivered(t, sw.got, "slow")
	if _, err := b.RevokeSession(ctx, "app", "s1", store.ReasonLogout, time.Now()); err != nil {
		t.Fatal(err)
	}
	sw.catchUpOK(t)
	sw.catchUpOK(t)
	wantDelivered(t, sw.got, "slow", "s1")

	// The numbers below the start are given up like holes.
	clk.Advance(gapRetention + time.Second)
	sw.catchUpOK(t)
	if sw.startHi != 0 {
		t.Fatalf("the start range (%d, %d] is still looked for after the hole retention", sw.startLo, sw.startHi)
	}
}

// TestWatchOutageThroughPoll: the running watcher (its own goroutines,
// listener and poll) delivers a revocation whose transaction held a hole
// and committed during a read outage longer than the hole retention, and
// asks for a reload.
func TestWatchOutageThroughPoll(t *testing.T) {
	dsn, _ := pgtest.SchemaDSN(t)
	proxy := pgtest.NewProxy(t, pgtest.Target(t))
	core, logs := observer.New(zap.WarnLevel)
	opts := testOptions
	opts.Logger = zap.New(core)
	a, err := Open(context.Background(), pgtest.ProxyDSN(t, dsn, proxy), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	b := openDSN(t, dsn)
	seedSessions(t, b, "app", 1)
	clk := testclock.New(time.Now())
	a.now = clk.Now
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan string, 16)
	reloads := make(chan struct{}, 16)
	if err := a.WatchRevocations(ctx, func(r store.Revocation) { got <- r.SessionID }, func(context.Context) error {
		reloads <- struct{}{}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	slow := inFlight(t, dsn, "slow")
	if _, err := b.RevokeSession(ctx, "app", "s0", store.ReasonLogout, time.Now()); err != nil {
		t.Fatal(err)
	}
	if sid := next(t, got); sid != "s0" {
		t.Fatalf("delivered %s, want s0", sid)
	}

	proxy.Stop()
	clk.Advance(2 * gapRetention)
	failedReads := func() int { return logs.FilterMessage("reading the revocation feed").Len() }
	before := failedReads()
	for i := 0; failedReads() < before+2; i++ { // reads fail with the clock past the retention
		if i == 250 {
			t.Fatal("the watcher did not try to read within 5s of the cut")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := slow.Commit(context.Background()); err != nil {
		t.Fatal(err)
	}
	proxy.Start()
	if sid := next(t, got); sid != "slow" {
		t.Fatalf("delivered %s, want slow", sid)
	}
	select {
	case <-reloads:
	case <-time.After(5 * time.Second):
		t.Fatal("no reload asked for within 5s after a long outage")
	}
}

// next waits, at most 5s, for the next delivered session id.
func next(t *testing.T, got <-chan string) string {
	t.Helper()
	select {
	case sid := <-got:
		return sid
	case <-time.After(5 * time.Second):
		t.Fatal("nothing delivered within 5s")
		return ""
	}
}
