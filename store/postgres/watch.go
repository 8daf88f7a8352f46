package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"

	"github.com/wxauth/caddy-wechat-auth/store"
)

// notifyChannel is the NOTIFY channel every revoking transaction signals.
const notifyChannel = "wechat_auth_revocations"

// ListenerAppName is the application_name of a watcher's LISTEN
// connection, so operators (and tests) can find it in pg_stat_activity.
const ListenerAppName = "wechat_auth_listener"

// Reconnect backoff of the LISTEN connection.
const (
	minBackoff = 250 * time.Millisecond
	maxBackoff = 2 * time.Second
)

// gapRetention is how long a hole in the feed's sequence is looked for.
// A revoking transaction takes its seq when it inserts and becomes visible
// when it commits, so a later seq can be seen first; the hole is read
// again on every poll until it fills or it has been looked for in vain
// over this long of successful reads (a rolled-back transaction leaves a
// hole for good). Time while reads fail does not count: a transaction can
// commit while the watcher cannot read, and the first read that works again
// must still look for it. It is far longer than any store call may run.
// A read outage longer than this makes the watcher ask for a reload of
// everything its caller keeps (see WatchRevocations).
const gapRetention = time.Minute

// maxGap bounds the holes remembered after one jump of the sequence; the
// holes of a larger jump are taken as numbers spent by rolled-back
// transactions and not read again. A watcher that starts on an empty feed
// looks for this many numbers below the sequence's current value.
const maxGap = 10000

// feedBatch bounds the feed rows one read fetches.
const feedBatch = 1000

// WatchRevocations delivers to fn every revocation committed by any
// process sharing the database (of any app), from the moment it is called
// until ctx is done or the store is closed; see store.RevocationWatcher.
//
// It keeps a dedicated connection (not one of the pool's) in LISTEN on the
// revocation channel, reconnecting after a loss with a backoff of 250ms
// doubling up to 2s, and reads the feed table by sequence number: after
// every notification, after every (re)connect (catching up on what was
// missed), and every PollInterval regardless, so a lost notification
// delays a revocation by at most PollInterval. When reads have failed for
// longer than a minute, reload (if not nil) is called after the next read
// that works, and again after every later read until it returns nil, so
// the caller can rebuild what it keeps from the store. fn and reload run on
// one goroutine, one call at a time; fn may see a revocation more than
// once. It returns once the starting position in the feed is known, or
// with an error (store.ErrUnavailable when the database cannot be
// reached).
func (s *Store) WatchRevocations(ctx context.Context, fn func(store.Revocation), reload func(context.Context) error) error {
	if fn == nil {
		return errors.New("watching revocations: nil function")
	}
	w := newWatcher(s, fn, reload)
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("watching revocations: %w", err)
	}
	// The read lock keeps Close from waiting for the watchers before they
	// are counted.
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return fmt.Errorf("watching revocations: %w", store.ErrClosed)
	}
	sctx, cancel := context.WithTimeout(ctx, s.timeout)
	err := w.start(sctx)
	cancel()
	if err != nil {
		return s.wrap(ctx, "watching revocations", err)
	}
	// Run until the caller's ctx is done or the store closes.
	wctx, stopAll := context.WithCancel(ctx)
	stop := context.AfterFunc(s.watchCtx, stopAll)
	s.watchers.Add(2)
	go func() {
		defer s.watchers.Done()
		w.listen(wctx)
	}()
	go func() {
		defer s.watchers.Done()
		defer stop()
		defer stopAll()
		w.poll(wctx)
	}()
	return nil
}

// watcher is the state of one WatchRevocations.
type watcher struct {
	s      *Store
	fn     func(store.Revocation)
	reload func(context.Context) error // may be nil
	wake   chan struct{}               // a read of the feed is due (buffered, coalescing)

	// Owned by the poll goroutine after start.
	last int64                   // highest seq delivered
	gaps map[int64]time.Duration // seqs below last not seen yet, with the age when first missed

	// The start range: when the feed was empty at start, the seqs in
	// (startLo, startHi] may belong to transactions in flight then; they
	// are looked for like holes, from age 0 (those delivered are in
	// startSeen).
	startLo, startHi int64
	startSeen        []int64

	age       time.Duration // time between consecutive successful reads, summed
	okAt      time.Time     // when the last successful read started
	failed    bool          // a read failed since okAt
	reloadDue bool          // an outage longer than gapRetention ended; reload not done yet
}

func newWatcher(s *Store, fn func(store.Revocation), reload func(context.Context) error) *watcher {
	return &watcher{s: s, fn: fn, reload: reload, wake: make(chan struct{}, 1), gaps: map[int64]time.Duration{}, startSeen: []int64{}}
}

// start finds the end of the feed. Holes among its recent entries are
// remembered, so a transaction in flight now is still delivered; on an
// empty feed, the numbers just below the sequence's current value are.
func (w *watcher) start(ctx context.Context) error {
	w.okAt = w.s.now()
	rows, err := w.s.pool.Query(ctx, `SELECT seq FROM wechat_auth_revocations ORDER BY seq DESC LIMIT $1`, feedBatch)
	if err != nil {
		return err
	}
	seqs, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return err
	}
	if len(seqs) == 0 {
		// An empty feed may still have used sequence numbers; anything
		// from now on has a larger seq than the sequence's current value,
		// and a transaction in flight may hold one below it (as may one
		// that committed since the feed was read).
		if err := w.s.pool.QueryRow(ctx, `SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END
			FROM wechat_auth_revocations_seq_seq`).Scan(&w.last); err != nil {
			return err
		}
		w.startLo, w.startHi = max(w.last-maxGap, 0), w.last
		return nil
	}
	w.last = seqs[0]
	for i := 1; i < len(seqs); i++ {
		if seqs[i-1]-seqs[i] > maxGap {
			continue // numbers spent by rolled-back transactions
		}
		for q := seqs[i] + 1; q < seqs[i-1]; q++ {
			w.gaps[q] = 0
		}
	}
	return nil
}

// listen keeps a LISTEN connection open and turns every notification and
// every (re)connect into a wake-up of the poll goroutine.
func (w *watcher) listen(ctx context.Context) {
	backoff := minBackoff
	for ctx.Err() == nil {
		err := w.listenOnce(ctx, func() { backoff = minBackoff })
		if ctx.Err() != nil {
			return
		}
		w.s.logger.Warn("revocation listener lost its connection; reconnecting",
			zap.String("server", w.s.addr), zap.Duration("backoff", backoff), zap.Error(err))
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// listenOnce connects, listens and waits for notifications until the
// connection fails or ctx is done. connected runs once LISTEN is in place.
func (w *watcher) listenOnce(ctx context.Context, connected func()) error {
	cfg := w.s.pool.Config().ConnConfig.Copy()
	cfg.RuntimeParams["application_name"] = ListenerAppName
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("connecting: %w", err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = conn.Close(cctx)
	}()
	if _, err := conn.Exec(ctx, "LISTEN "+notifyChannel); err != nil {
		return fmt.Errorf("listening: %w", err)
	}
	connected()
	if h := w.s.listening; h != nil {
		h(conn.PgConn().PID())
	}
	w.signal() // catch up on whatever was missed while not listening
	for {
		if _, err := conn.WaitForNotification(ctx); err != nil {
			return fmt.Errorf("waiting for notifications: %w", err)
		}
		w.signal()
	}
}

// signal asks the poll goroutine to read the feed.
func (w *watcher) signal() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// poll reads the feed on every wake-up and every PollInterval, delivering
// new revocations in sequence order.
func (w *watcher) poll(ctx context.Context) {
	t := time.NewTicker(w.s.poll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.wake:
		case <-t.C:
		}
		_ = w.catchUp(ctx) // logged; the next wake-up or tick tries again
	}
}

// catchUp reads the feed until it has nothing more, then reloads if an
// outage calls for it. Failures are logged and returned.
func (w *watcher) catchUp(ctx context.Context) error {
	for ctx.Err() == nil {
		n, err := w.read(ctx)
		if err != nil {
			if ctx.Err() == nil {
				w.s.logger.Warn("reading the revocation feed", zap.String("server", w.s.addr), zap.Error(err))
			}
			return err
		}
		if n < feedBatch {
			break
		}
	}
	if !w.reloadDue || ctx.Err() != nil {
		return ctx.Err()
	}
	if w.reload != nil {
		if err := w.reload(ctx); err != nil {
			if ctx.Err() == nil {
				w.s.logger.Warn("reloading revocations after the feed could not be read", zap.String("server", w.s.addr), zap.Error(err))
			}
			return err
		}
	}
	w.reloadDue = false
	return nil
}

// read fetches and delivers feed rows after w.last or in a hole, and
// returns how many rows it read. Only a read that works ages the holes,
// and only by the time since the previous read if that one worked too.
func (w *watcher) read(ctx context.Context) (int, error) {
	at := w.s.now()
	gaps := make([]int64, 0, len(w.gaps))
	for q := range w.gaps {
		gaps = append(gaps, q)
	}
	rctx, cancel := context.WithTimeout(ctx, w.s.timeout)
	defer cancel()
	rows, err := w.s.pool.Query(rctx, `SELECT seq, app_id, session_id, user_id, revoked_at FROM wechat_auth_revocations
		WHERE seq > $1 OR seq = ANY($2) OR (seq > $4 AND seq <= $5 AND NOT seq = ANY($6))
		ORDER BY seq LIMIT $3`, w.last, gaps, feedBatch, w.startLo, w.startHi, w.startSeen)
	if err != nil {
		w.failed = true
		return 0, err
	}
	type entry struct {
		seq int64
		rv  store.Revocation
	}
	entries, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (entry, error) {
		var (
			e   entry
			uid int64
		)
		err := r.Scan(&e.seq, &e.rv.AppID, &e.rv.SessionID, &uid, &e.rv.RevokedAt)
		e.rv.UserID, e.rv.RevokedAt = uint64(uid), e.rv.RevokedAt.UTC()
		return e, err
	})
	if err != nil {
		w.failed = true
		return 0, err
	}

	switch d := at.Sub(w.okAt); {
	case w.failed && d > gapRetention:
		w.reloadDue = true
	case !w.failed && d > 0:
		w.age += d
	}
	w.okAt, w.failed = at, false

	for _, e := range entries {
		switch {
		case e.seq > w.last:
			if e.seq-w.last <= maxGap {
				for q := w.last + 1; q < e.seq; q++ {
					w.gaps[q] = w.age
				}
			}
			w.last = e.seq
		case e.seq > w.startLo && e.seq <= w.startHi:
			w.startSeen = append(w.startSeen, e.seq)
		default:
			delete(w.gaps, e.seq)
		}
		w.fn(e.rv)
	}
	// What this read looked for in vain long enough is given up.
	for q, since := range w.gaps {
		if w.age-since > gapRetention {
			delete(w.gaps, q)
		}
	}
	if w.startHi > 0 && w.age > gapRetention {
		w.startLo, w.startHi, w.startSeen = 0, 0, []int64{}
	}
	return len(entries), nil
}
