package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"

	"github.com/wxauth/caddy-wechat-auth/store"
)

// Defaults of Options.
const (
	// DefaultTimeout bounds one store call when Options.Timeout is zero.
	DefaultTimeout = 5 * time.Second
	// DefaultConnectTimeout bounds one connection attempt when neither
	// Options.ConnectTimeout nor the DSN's connect_timeout is set.
	DefaultConnectTimeout = 3 * time.Second
	// DefaultPollInterval is how often a revocation watcher reads the feed
	// when Options.PollInterval is zero.
	DefaultPollInterval = 2 * time.Second
)

// Options configures Open. The zero value is the production setting.
type Options struct {
	// Timeout bounds every store call, from acquiring a connection to the
	// commit. A call that runs out of it fails with store.ErrUnavailable.
	// Default: 5s.
	Timeout time.Duration

	// ConnectTimeout bounds one attempt to open a connection. The DSN's
	// connect_timeout, when given, wins. Default: 3s.
	ConnectTimeout time.Duration

	// PollInterval is how often WatchRevocations reads the revocation feed
	// whether or not a notification arrived, so a lost notification (or a
	// listener connection being re-established) delays a revocation by at
	// most this long. Default: 2s.
	PollInterval time.Duration

	// Logger receives the revocation watcher's connection problems. They
	// name the server, never the password. Default: no logging.
	Logger *zap.Logger

	// tracer, when set (by this package's tests), traces every query and
	// batch the pool's connections send.
	tracer pgx.QueryTracer
}

// Store is a store.Store on a PostgreSQL database reached through a pgx
// connection pool. Open it with Open; it is safe for concurrent use, by
// several goroutines and by several processes sharing the database.
type Store struct {
	pool    *pgxpool.Pool
	addr    string // host:port of the first host, for messages
	timeout time.Duration
	poll    time.Duration
	logger  *zap.Logger

	// mu guards closed. Every method holds it for reading while it runs,
	// so Close waits for calls in flight and later calls see closed.
	mu     sync.RWMutex
	closed bool

	// watchCtx is cancelled by Close; watchers run under it and watchers
	// counts them so Close can wait for them to stop.
	watchCtx    context.Context
	stopWatches context.CancelFunc
	watchers    sync.WaitGroup

	// listening, when set (by tests), is told the backend PID of every
	// LISTEN connection a watcher opens.
	listening func(pid uint32)

	// now is the watchers' clock, which ages the holes in the feed and
	// measures read outages: time.Now, or a test's clock.
	now func() time.Time
}

// IsDSN reports whether s is a PostgreSQL connection URL (postgres:// or
// postgresql://), as opposed to a bbolt file path.
func IsDSN(s string) bool {
	l := strings.ToLower(strings.TrimSpace(s))
	return strings.HasPrefix(l, "postgres://") || strings.HasPrefix(l, "postgresql://")
}

// defaultMaxConns is the pool size when the DSN sets none: the larger of
// 16 and four per CPU. Logins and refreshes each wait for their commit to
// reach the disk, and PostgreSQL flushes the commits waiting at one
// moment together, so the number of connections in flight, not the CPUs,
// bounds how many share a flush.
func defaultMaxConns() int32 { return int32(max(16, 4*runtime.NumCPU())) }

// Open connects to the PostgreSQL database named by dsn, checks that it
// answers, and brings its schema up to date (see Migrate). Errors name the
// server's host and port, never the password. The pool's size and other
// pgxpool settings come from the DSN (pool_max_conns, ...); without
// pool_max_conns the pool holds up to defaultMaxConns connections.
func Open(ctx context.Context, dsn string, opts Options) (*Store, error) {
	if !IsDSN(dsn) {
		return nil, errors.New("opening PostgreSQL store: the DSN must start with postgres:// or postgresql://")
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgx redacts the password in its parse errors.
		return nil, fmt.Errorf("opening PostgreSQL store: parsing DSN: %w", err)
	}
	addr := net.JoinHostPort(cfg.ConnConfig.Host, fmt.Sprint(cfg.ConnConfig.Port))
	if !strings.Contains(strings.ToLower(dsn), "pool_max_conns") {
		cfg.MaxConns = defaultMaxConns()
	}
	if !strings.Contains(strings.ToLower(dsn), "connect_timeout") {
		ct := opts.ConnectTimeout
		if ct <= 0 {
			ct = DefaultConnectTimeout
		}
		cfg.ConnConfig.ConnectTimeout = ct
	}
	if opts.tracer != nil {
		cfg.ConnConfig.Tracer = opts.tracer
	}
	if cfg.ConnConfig.RuntimeParams["application_name"] == "" {
		cfg.ConnConfig.RuntimeParams["application_name"] = "wechat_auth"
	}
	s := &Store{addr: addr, timeout: opts.Timeout, poll: opts.PollInterval, now: time.Now}
	if s.timeout <= 0 {
		s.timeout = DefaultTimeout
	}
	if s.logger = opts.Logger; s.logger == nil {
		s.logger = zap.NewNop()
	}
	if s.poll <= 0 {
		s.poll = DefaultPollInterval
	}
	s.pool, err = pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		return nil, fmt.Errorf("opening PostgreSQL store at %s: %w", addr, err)
	}
	octx, cancel := context.WithTimeout(ctx, s.timeout+cfg.ConnConfig.ConnectTimeout)
	defer cancel()
	if err := s.pool.Ping(octx); err != nil {
		s.pool.Close()
		return nil, fmt.Errorf("opening PostgreSQL store: PostgreSQL at %s is not reachable: %w", addr, err)
	}
	if err := migrate(octx, s.pool); err != nil {
		s.pool.Close()
		return nil, fmt.Errorf("opening PostgreSQL store at %s: %w", addr, err)
	}
	s.watchCtx, s.stopWatches = context.WithCancel(context.Background())
	return s, nil
}

// Addr returns the host:port of the server the store connects to.
func (s *Store) Addr() string { return s.addr }

// Close stops the revocation watchers, waits for calls in flight and
// closes the pool. Calls after Close, a second Close included, return
// store.ErrClosed.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return fmt.Errorf("closing PostgreSQL store: %w", store.ErrClosed)
	}
	s.closed = true
	s.mu.Unlock()
	s.stopWatches()
	s.watchers.Wait()
	s.pool.Close()
	return nil
}

// call runs fn with a context bounded by the store's timeout, on an open
// store, and turns its error into one that says it happened while doing op
// and wraps the store's sentinels (see wrap).
func (s *Store) call(ctx context.Context, op string, fn func(ctx context.Context) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return fmt.Errorf("%s: %w", op, store.ErrClosed)
	}
	cctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	err := fn(cctx)
	if retryable(err) && cctx.Err() == nil {
		// PostgreSQL aborted the transaction to break a deadlock (two
		// transactions locking one session and its refresh tokens in
		// opposite orders, e.g. a prune and a refresh) or a serialization
		// conflict: nothing was written, and running it again succeeds.
		err = fn(cctx)
	}
	if err != nil {
		return s.wrap(ctx, op, err)
	}
	return nil
}

// retryable reports whether err is PostgreSQL aborting a transaction that
// may simply be run again: deadlock_detected (40P01) or
// serialization_failure (40001).
func retryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40P01" || pe.Code == "40001")
}

// inTx runs fn in one transaction (see call): committed when fn returns
// nil, rolled back otherwise, so a refusal fn returns writes nothing.
func (s *Store) inTx(ctx context.Context, op string, fn func(ctx context.Context, tx pgx.Tx) error) error {
	return s.call(ctx, op, func(ctx context.Context) error {
		return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error { return fn(ctx, tx) })
	})
}

// wrap maps a failure to the store's sentinels: no rows is ErrNotFound; a
// connection that cannot be made, was lost or ran out of time is
// ErrUnavailable (naming the server); a cancelled caller gets its context's
// error. Other errors pass through, wrapped with op.
func (s *Store) wrap(ctx context.Context, op string, err error) error {
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return fmt.Errorf("%s: %w", op, store.ErrNotFound)
	case isRefusal(err):
		return fmt.Errorf("%s: %w", op, err)
	case ctx.Err() != nil:
		return fmt.Errorf("%s: %w", op, ctx.Err())
	case unavailable(err):
		return fmt.Errorf("%s: %w: PostgreSQL at %s: %v", op, store.ErrUnavailable, s.addr, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}

// isRefusal reports whether err is one of the store's own outcomes (not
// found, revoked, ...) rather than a database failure.
func isRefusal(err error) bool {
	for _, e := range []error{store.ErrNotFound, store.ErrRevoked, store.ErrExpired, store.ErrBanned, store.ErrConflict, errDuplicate, errInvalid} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// unavailable reports whether err says the database could not be reached
// or the connection was lost, rather than that it refused the statement.
func unavailable(err error) bool {
	var (
		ce  *pgconn.ConnectError
		pe  *pgconn.PgError
		ne  net.Error
		ope *net.OpError
	)
	switch {
	case errors.As(err, &ce), errors.As(err, &ne), errors.As(err, &ope):
		return true
	case errors.Is(err, context.DeadlineExceeded), pgconn.Timeout(err):
		return true
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed):
		return true
	case errors.As(err, &pe):
		// Class 08: connection exception; class 57P: the server is
		// shutting down or not accepting connections; 53300: too many
		// connections.
		return strings.HasPrefix(pe.Code, "08") || strings.HasPrefix(pe.Code, "57P") || pe.Code == "53300"
	case strings.Contains(err.Error(), "conn closed"), strings.Contains(err.Error(), "closed pool"):
		return true
	}
	return false
}

// Errors that a call reports as refusals, with what was refused.
var (
	// errDuplicate reports an id or hash that is already taken.
	errDuplicate = errors.New("already exists")
	// errInvalid reports an argument the store cannot accept.
	errInvalid = errors.New("invalid argument")
)

// maxKeyLen bounds apps, openids, unionids, session ids and secret names,
// as the bbolt backend does.
const maxKeyLen = 255

// validKey reports whether s can be used as an app, openid, session id or
// secret name: 1 to 255 bytes of UTF-8 without NUL (PostgreSQL text cannot
// hold NUL).
func validKey(s string) bool {
	return len(s) > 0 && len(s) <= maxKeyLen && validText(s)
}

// validText reports whether PostgreSQL text can hold s.
func validText(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsRune(s, 0)
}

// invalid returns a refusal of bad input.
func invalid(what string) error { return fmt.Errorf("%w: %s", errInvalid, what) }

// Interface guards.
var (
	_ store.Store             = (*Store)(nil)
	_ store.RevocationWatcher = (*Store)(nil)
)
