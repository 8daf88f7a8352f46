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

// gapRetention is how long a hole in the feed's sequence is looked at
// again. A revoking transaction takes its seq when it inserts and becomes
// visible when it commits, so a later seq can be seen first; the hole is
// read again on every poll until it fills or this long has passed (a
// rolled-back transaction leaves a hole for good). It is far longer than
// any store call may run.
const gapRetention = time.Minute

// maxGap bounds the holes remembered after one jump of the sequence; the
// holes of a larger jump are taken as numbers spent by rolled-back
// transactions and not read again.
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
// delays a revocation by at most PollInterval. fn runs on one goroutine,
// one call at a time, and may see a revocation more than once. It returns
// once the starting position in the feed is known, or with an error
// (store.ErrUnavailable when the database cannot be reached).
func (s *Store) WatchRevocations(ctx context.Context, fn func(store.Revocation)) error {
	if fn == nil {
		return errors.New("watching revocations: nil function")
	}
	w := &watcher{s: s, fn: fn, wake: make(chan struct{}, 1), gaps: map[int64]time.Time{}}
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
	s    *Store
	fn   func(store.Revocation)
	wake chan struct{} // a read of the feed is due (buffered, coalescing)

	// Owned by the poll goroutine after start.
	last int64               // highest seq delivered
	gaps map[int64]time.Time // seqs below last not seen yet, with when they were first missed
}

// start finds the end of the feed. Holes among its recent entries are
// remembered, so a transaction in flight now is still delivered.
func (w *watcher) start(ctx context.Context) error {
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
		// from now on has a larger seq than the sequence's current value.
		return w.s.pool.QueryRow(ctx, `SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END
			FROM wechat_auth_revocations_seq_seq`).Scan(&w.last)
	}
	w.last = seqs[0]
	now := time.Now()
	for i := 1; i < len(seqs); i++ {
		for q := seqs[i] + 1; q < seqs[i-1]; q++ {
			w.gaps[q] = now
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
		for ctx.Err() == nil {
			n, err := w.read(ctx)
			if err != nil {
				if ctx.Err() == nil {
					w.s.logger.Warn("reading the revocation feed", zap.String("server", w.s.addr), zap.Error(err))
				}
				break
			}
			if n < feedBatch {
				break
			}
		}
	}
}

// read fetches and delivers feed rows after w.last or in a hole, and
// returns how many rows it read.
func (w *watcher) read(ctx context.Context) (int, error) {
	now := time.Now()
	gaps := make([]int64, 0, len(w.gaps))
	for q, since := range w.gaps {
		if now.Sub(since) > gapRetention {
			delete(w.gaps, q)
			continue
		}
		gaps = append(gaps, q)
	}
	rctx, cancel := context.WithTimeout(ctx, w.s.timeout)
	defer cancel()
	rows, err := w.s.pool.Query(rctx, `SELECT seq, app_id, session_id, user_id, revoked_at FROM wechat_auth_revocations
		WHERE seq > $1 OR seq = ANY($2) ORDER BY seq LIMIT $3`, w.last, gaps, feedBatch)
	if err != nil {
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
		return 0, err
	}
	for _, e := range entries {
		if e.seq <= w.last {
			delete(w.gaps, e.seq)
		} else {
			if e.seq-w.last <= maxGap {
				for q := w.last + 1; q < e.seq; q++ {
					w.gaps[q] = now
				}
			}
			w.last = e.seq
		}
		w.fn(e.rv)
	}
	return len(entries), nil
}
