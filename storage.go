package wechatauth

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/wxauth/caddy-wechat-auth/internal/handler"
	"github.com/wxauth/caddy-wechat-auth/store"
	"github.com/wxauth/caddy-wechat-auth/store/bolt"
	"github.com/wxauth/caddy-wechat-auth/store/postgres"
)

// storePool holds the open databases of this process, one per bbolt file
// path or PostgreSQL DSN, shared by every wechat_auth handler that uses it
// and kept open across config reloads (the new config takes its reference
// before the old one lets go of its own), as Caddy's own apps share
// listeners.
var storePool = caddy.NewUsagePool()

// lockTimeout bounds the wait for the database file lock, so that a second
// process (or a stuck reload) fails with an error instead of hanging.
const lockTimeout = 5 * time.Second

// sweepInterval is how often expired sessions are pruned.
const sweepInterval = 10 * time.Minute

// sharedDB is one open store with the per-app revocation lists of the
// handlers that use it, and a background sweep.
type sharedDB struct {
	store  store.Store
	logger *zap.Logger
	now    func() time.Time

	mu      sync.Mutex
	revs    map[string]*handler.Revocations // by app
	windows map[string]revocationTTLs       // by app: the widest token lifetimes its list was loaded for

	// secrets holds the generated secrets as sealed in the store, by app
	// and name: a reload opens them again with its app secret instead of
	// reading the store.
	secrets map[secretKey][]byte
	// counted holds the apps whose users gauge this store keeps.
	counted map[string]bool
	// countRetry is the first wait before a failed users count is
	// retried (doubling up to usersCountRetryMax).
	countRetry time.Duration

	cancel context.CancelFunc
	done   chan struct{}

	bgCtx  context.Context    // ends at Destruct
	bgStop context.CancelFunc // ends bgCtx
	bg     sync.WaitGroup     // background work other than the sweep

	stopWatch context.CancelFunc // ends the revocation watcher, if any
}

// revocationTTLs are token lifetimes an app's list was loaded from the
// store for: it holds every revocation a token living that long needs.
type revocationTTLs struct{ accessTTL, leeway time.Duration }

// openShared returns the shared store for db, a bbolt file path or a
// PostgreSQL URL, opening it on first use. The caller releases it with
// storePool.Delete(key).
func openShared(db string) (*sharedDB, string, error) {
	// The shared store outlives the config that opened it, so it logs
	// through Caddy's process logger, not that config's.
	logger := caddy.Log().Named("http.handlers.wechat_auth")
	if postgres.IsDSN(db) {
		return openSharedPostgres(db, logger)
	}
	abs, err := filepath.Abs(db)
	if err != nil {
		return nil, "", fmt.Errorf("db %s: %w", db, err)
	}
	v, _, err := storePool.LoadOrNew(abs, func() (caddy.Destructor, error) {
		st, err := bolt.Open(abs, bolt.Options{Timeout: lockTimeout})
		if err != nil {
			return nil, err
		}
		d := newSharedDB(st, logger, time.Now)
		d.startSweep(sweepInterval)
		return d, nil
	})
	if err != nil {
		return nil, "", fmt.Errorf("opening db %s: %w", abs, err)
	}
	return v.(*sharedDB), abs, nil
}

// openSharedPostgres returns the shared PostgreSQL store for dsn: one pool
// per DSN per process. Every instance sharing the database feeds this
// process's revocation lists through the store's revocation watcher.
// Errors name the server, never the DSN (it may hold a password).
func openSharedPostgres(dsn string, logger *zap.Logger) (*sharedDB, string, error) {
	v, _, err := storePool.LoadOrNew(dsn, func() (caddy.Destructor, error) {
		ctx, cancel := context.WithTimeout(context.Background(), postgresOpenTimeout)
		defer cancel()
		st, err := postgres.Open(ctx, dsn, postgres.Options{Logger: logger.Named("postgres")})
		if err != nil {
			return nil, err
		}
		d := newSharedDB(st, logger, time.Now)
		if err := d.startWatch(st); err != nil {
			_ = st.Close()
			return nil, err
		}
		d.startSweep(sweepInterval)
		return d, nil
	})
	if err != nil {
		return nil, "", fmt.Errorf("opening db: %w", err)
	}
	return v.(*sharedDB), dsn, nil
}

// postgresOpenTimeout bounds connecting to PostgreSQL and migrating its
// schema at start.
const postgresOpenTimeout = 15 * time.Second

func newSharedDB(st store.Store, logger *zap.Logger, now func() time.Time) *sharedDB {
	ctx, stop := context.WithCancel(context.Background())
	return &sharedDB{
		store: st, logger: logger, now: now,
		revs:    make(map[string]*handler.Revocations),
		windows: make(map[string]revocationTTLs),
		secrets: make(map[secretKey][]byte),
		counted: make(map[string]bool), countRetry: usersCountRetryMin,
		bgCtx: ctx, bgStop: stop,
	}
}

// secretKey names one generated secret of one app.
type secretKey struct{ app, name string }

// generatedSecret returns the app's generated secret called name. When
// this process holds the sealed value (a reload) and sealer opens it, no
// store I/O is done; otherwise it is loaded from the store
// (handler.Sealer.GeneratedSecret: a value sealed with another app secret
// is an error) and kept. A value this process holds that sealer cannot
// open (app_secret changed in the config) is read again from the store,
// where a rotation may have resealed it.
func (d *sharedDB) generatedSecret(ctx context.Context, sealer *handler.Sealer, app, name string, log *zap.Logger) ([]byte, error) {
	k := secretKey{app, name}
	d.mu.Lock()
	sealed := d.secrets[k]
	d.mu.Unlock()
	if sealed != nil {
		if pt, err := sealer.OpenGeneratedSecret(app, name, sealed, handler.GeneratedSecretSize); err == nil {
			return pt, nil
		}
	}
	pt, sealed, err := sealer.GeneratedSecret(ctx, d.store, app, name, handler.GeneratedSecretSize, log)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	d.secrets[k] = sealed
	d.mu.Unlock()
	return pt, nil
}

// startWatch feeds the revocation lists from w, which reports revocations
// committed by every process sharing the store, until Destruct.
func (d *sharedDB) startWatch(w store.RevocationWatcher) error {
	ctx, cancel := context.WithCancel(context.Background())
	if err := w.WatchRevocations(ctx, d.noteRevocation, d.reloadRevocations); err != nil {
		cancel()
		return fmt.Errorf("watching revocations: %w", err)
	}
	d.stopWatch = cancel
	return nil
}

// noteRevocation puts a revocation made by any process on its app's list,
// if this process serves the app, for the list's window from the later of
// its revocation time and now. (An app whose list is loaded later reads the
// revocation from the store.)
func (d *sharedDB) noteRevocation(rv store.Revocation) {
	d.mu.Lock()
	r, ok := d.revs[rv.AppID]
	d.mu.Unlock()
	if ok {
		r.Add(rv.SessionID, rv.RevokedAt, d.now())
	}
}

// revocations returns the app's revocation list, loading it from the store
// the first time, and again when a handler with a longer access-token
// window (access_ttl + leeway) than any the list was loaded for asks for
// it. The window the list is loaded for grows only once a load succeeds,
// so a failed load is tried again by the next handler that asks.
func (d *sharedDB) revocations(ctx context.Context, app string, accessTTL, leeway time.Duration) (*handler.Revocations, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	r, ok := d.revs[app]
	w := d.windows[app]
	if ok && accessTTL+leeway <= w.accessTTL+w.leeway {
		return r, nil
	}
	if !ok {
		r = handler.NewRevocations()
	}
	// First use, or a handler whose tokens live longer than those of the
	// handlers that loaded the list: load what its window adds, so a
	// revocation made before a restart still covers every token it can
	// accept.
	if err := handler.LoadRevocations(ctx, d.store, app, r, accessTTL, leeway, d.now()); err != nil {
		return nil, err
	}
	d.windows[app] = revocationTTLs{accessTTL, leeway}
	d.revs[app] = r
	return r, nil
}

// reloadRevocations loads every app's revocation list from the store again,
// for the widest window it was loaded for; the watcher calls it after a
// read outage long enough that the feed alone may not cover what was
// missed. Entries already on the lists stay.
func (d *sharedDB) reloadRevocations(ctx context.Context) error {
	type list struct {
		app string
		r   *handler.Revocations
		w   revocationTTLs
	}
	d.mu.Lock()
	lists := make([]list, 0, len(d.revs))
	for app, r := range d.revs {
		lists = append(lists, list{app, r, d.windows[app]})
	}
	d.mu.Unlock()
	var errs []error
	for _, l := range lists {
		if err := handler.LoadRevocations(ctx, d.store, l.app, l.r, l.w.accessTTL, l.w.leeway, d.now()); err != nil {
			errs = append(errs, fmt.Errorf("app %s: %w", l.app, err))
		}
	}
	return errors.Join(errs...)
}

// startSweep prunes the store and the revocation lists every interval
// until Destruct.
func (d *sharedDB) startSweep(interval time.Duration) {
	ctx, cancel := context.WithCancel(context.Background())
	d.cancel, d.done = cancel, make(chan struct{})
	go func() {
		defer close(d.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			d.sweep(ctx)
			d.recountUsers(ctx)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
}

// sweep runs one pruning pass.
func (d *sharedDB) sweep(ctx context.Context) {
	now := d.now()
	n, err := d.store.Prune(ctx, now, now.Add(-handler.RevokedRetention))
	if err != nil {
		if ctx.Err() == nil {
			d.logger.Error("pruning expired sessions", zap.Error(err))
		}
		return
	}
	dropped := 0
	d.mu.Lock()
	for _, r := range d.revs {
		dropped += r.Sweep(now)
	}
	d.mu.Unlock()
	if n == 0 && dropped == 0 {
		return
	}
	if ce := d.logger.Check(zap.DebugLevel, "pruned expired sessions"); ce != nil {
		ce.Write(zap.Int("records", n), zap.Int("revocations", dropped))
	}
}

// Destruct stops the sweep, the revocation watcher and the users counts
// and closes the store; the pool calls it when the last handler using the
// database is cleaned up.
func (d *sharedDB) Destruct() error {
	if d.stopWatch != nil {
		d.stopWatch()
	}
	d.bgStop()
	d.bg.Wait()
	if d.cancel != nil {
		d.cancel()
		<-d.done
	}
	return d.store.Close()
}
