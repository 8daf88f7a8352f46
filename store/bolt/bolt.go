package bolt

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/wxauth/caddy-wechat-auth/store"
)

// DefaultTimeout is how long Open waits for the file lock when
// Options.Timeout is zero.
const DefaultTimeout = 5 * time.Second

// batchDelay is how long a write batch gathers company before it commits
// (bbolt's default is 10ms). It only applies while another write is in
// flight (see Store.write), so a lone write never waits; writers that
// queue behind a commit resubmit within microseconds of it, so a delay of
// about one commit gathers them all. Measured where fsync takes ~0.5ms:
// 0.5ms to 1ms is best, 5ms halves throughput, 0.1ms splits batches.
const batchDelay = time.Millisecond

// ErrLocked is returned (wrapped, together with bbolt's ErrTimeout) by Open
// when another process, or another Store in this process, holds the file
// and the lock timeout passes.
var ErrLocked = errors.New("bolt: database file is locked by another process or store")

// Options configures Open. The zero value is the production setting.
type Options struct {
	// Timeout is how long Open waits for the exclusive file lock before it
	// fails with ErrLocked, so a second opener (another process, or a
	// config reload that did not release the file) never hangs.
	// Default: 5s.
	Timeout time.Duration

	// NoSync skips fsync on commit. It is for tests and benchmarks only:
	// with NoSync a write is NOT durable when its method returns, and a
	// crash of the machine (not only of the process) can lose
	// acknowledged writes or corrupt the file. This drops the durability
	// promise of store.Store. Default: false.
	NoSync bool
}

// Store is a store.Store kept in one bbolt file. Open it with Open; it is
// safe for concurrent use.
type Store struct {
	db   *bbolt.DB
	path string

	// mu guards closed. Every method holds it for reading while it runs,
	// so Close waits for calls in flight and later calls see closed.
	mu     sync.RWMutex
	closed bool

	// writers counts write transactions in flight (see write).
	writers atomic.Int64
}

// Open opens the store file at path, creating it (mode 0600) and its
// parent directory (mode 0700) when missing. It fails with an error
// wrapping ErrLocked when the file stays locked for opts.Timeout, and
// refuses a file written in another format version.
func Open(path string, opts Options) (*Store, error) {
	if path == "" {
		return nil, errors.New("opening bolt store: empty path")
	}
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("creating directory of bolt store: %w", err)
	}
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{
		Timeout:      timeout,
		NoSync:       opts.NoSync,
		FreelistType: bbolt.FreelistMapType,
	})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("opening bolt store %s: gave up after %s: %w: %w", path, timeout, ErrLocked, err)
	}
	if err != nil {
		return nil, fmt.Errorf("opening bolt store %s: %w", path, err)
	}
	db.MaxBatchDelay = batchDelay
	if err := initialize(db); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("opening bolt store %s: %w", path, err)
	}
	return &Store{db: db, path: path}, nil
}

// initialize creates the top-level buckets of a new file and checks the
// format version of an existing one.
func initialize(db *bbolt.DB) error {
	return db.Update(func(tx *bbolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta == nil {
			if tx.Bucket(bucketApps) != nil {
				return fmt.Errorf("apps bucket without meta bucket: %w", errCorrupt)
			}
			var err error
			if meta, err = tx.CreateBucket(bucketMeta); err != nil {
				return fmt.Errorf("creating meta bucket: %w", err)
			}
			if err := meta.Put(keyFormat, binary.AppendUvarint(nil, formatVersion)); err != nil {
				return fmt.Errorf("writing format version: %w", err)
			}
			if _, err := tx.CreateBucket(bucketApps); err != nil {
				return fmt.Errorf("creating apps bucket: %w", err)
			}
			return nil
		}
		v, n := binary.Uvarint(meta.Get(keyFormat))
		if n <= 0 {
			return fmt.Errorf("reading format version: %w", errCorrupt)
		}
		if v == 0 || v > formatVersion {
			return fmt.Errorf("unsupported format version %d (this build reads up to %d)", v, formatVersion)
		}
		if tx.Bucket(bucketApps) == nil {
			return fmt.Errorf("missing apps bucket: %w", errCorrupt)
		}
		if v < formatVersion {
			return migrate(tx, meta, v)
		}
		return nil
	})
}

// Path returns the file the store was opened from.
func (s *Store) Path() string { return s.path }

// Close waits for calls in flight, then closes the file. Calls after Close,
// a second Close included, return store.ErrClosed.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("closing bolt store: %w", store.ErrClosed)
	}
	s.closed = true
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("closing bolt store %s: %w", s.path, err)
	}
	return nil
}

// enter starts a call: it checks ctx and takes the read side of s.mu. On
// success the caller must call s.mu.RUnlock.
func (s *Store) enter(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return store.ErrClosed
	}
	return nil
}

// write runs fn in a durable read-write transaction.
//
// While no other write is in flight fn runs alone in db.Update, so a lone
// write pays for one commit and no batch delay. Otherwise it goes through
// db.Batch, which coalesces concurrent writes into one commit (one pair of
// fsyncs). Batch may run fn more than once, and runs a failing fn again on
// its own, so fn must:
//   - touch nothing outside tx except result variables that it resets at
//     its start (the last run is the one that committed);
//   - return an error only for a failure that must roll back (the whole
//     batch is then retried without it, and fn is re-run solo);
//   - report outcomes that write nothing (not found, expired, ...) through
//     its result variables and return nil, so they neither abort the
//     batch nor cost a second run.
func (s *Store) write(fn func(*bbolt.Tx) error) error {
	n := s.writers.Add(1)
	defer s.writers.Add(-1)
	if n == 1 {
		return s.db.Update(fn)
	}
	return s.db.Batch(fn)
}

// view runs fn in a read-only transaction.
func (s *Store) view(fn func(*bbolt.Tx) error) error { return s.db.View(fn) }

// writeIn runs fn on app's buckets in a durable write of an open store
// (see write for what fn may do). fn returns its result, a refusal that
// writes nothing (given to the caller; a batch goes on), or an error that
// rolls the transaction back. An app without buckets is refused with
// ErrNotFound before fn runs. Errors say they happened while doing op.
func writeIn[T any](s *Store, ctx context.Context, op, app string, fn func(*appBuckets) (out T, refused, err error)) (T, error) {
	var zero T
	if err := s.enter(ctx); err != nil {
		return zero, fmt.Errorf("%s: %w", op, err)
	}
	defer s.mu.RUnlock()
	var (
		out     T
		refused error
	)
	err := s.write(func(tx *bbolt.Tx) error {
		out, refused = zero, nil
		b, err := readApp(tx, app)
		if err != nil {
			return err
		}
		if b == nil {
			refused = store.ErrNotFound
			return nil
		}
		out, refused, err = fn(b)
		return err
	})
	if err == nil {
		err = refused
	}
	if err != nil {
		return zero, fmt.Errorf("%s: %w", op, err)
	}
	return out, nil
}

// readIn runs fn on app's buckets in a read transaction of an open store;
// an app with no buckets yet has nothing, so it reads as ErrNotFound.
// Errors say they happened while doing op.
func readIn[T any](s *Store, ctx context.Context, op, app string, fn func(*appBuckets) (T, error)) (T, error) {
	var out T
	if err := s.enter(ctx); err != nil {
		return out, fmt.Errorf("%s: %w", op, err)
	}
	defer s.mu.RUnlock()
	err := s.view(func(tx *bbolt.Tx) error {
		b, err := readApp(tx, app)
		if err != nil {
			return err
		}
		if b == nil {
			return store.ErrNotFound
		}
		out, err = fn(b)
		return err
	})
	if err != nil {
		var zero T
		return zero, fmt.Errorf("%s: %w", op, err)
	}
	return out, nil
}

// Interface guard.
var _ store.Store = (*Store)(nil)
