package wechatauth

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/wxauth/caddy-wechat-auth/internal/handler"
	"github.com/wxauth/caddy-wechat-auth/store"
	"github.com/wxauth/caddy-wechat-auth/store/bolt"
)

// storePool holds the open database files of this process, one per path,
// shared by every wechat_auth handler that uses the file and kept open
// across config reloads (the new config takes its reference before the old
// one lets go of its own), as Caddy's own apps share listeners.
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

	mu   sync.Mutex
	revs map[string]*handler.Revocations // by app

	cancel context.CancelFunc
	done   chan struct{}
}

// openShared returns the shared store for path, opening it on first use.
// The caller releases it with storePool.Delete(key).
func openShared(path string, logger *zap.Logger) (*sharedDB, string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, "", fmt.Errorf("db %s: %w", path, err)
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

func newSharedDB(st store.Store, logger *zap.Logger, now func() time.Time) *sharedDB {
	return &sharedDB{store: st, logger: logger, now: now, revs: make(map[string]*handler.Revocations)}
}

// revocations returns the app's revocation list, loading it from the store
// the first time.
func (d *sharedDB) revocations(ctx context.Context, app string, accessTTL, leeway time.Duration) (*handler.Revocations, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if r, ok := d.revs[app]; ok {
		return r, nil
	}
	r := handler.NewRevocations()
	if err := handler.LoadRevocations(ctx, d.store, app, r, accessTTL, leeway, d.now()); err != nil {
		return nil, err
	}
	d.revs[app] = r
	return r, nil
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

// Destruct stops the sweep and closes the store; the pool calls it when
// the last handler using the file is cleaned up.
func (d *sharedDB) Destruct() error {
	if d.cancel != nil {
		d.cancel()
		<-d.done
	}
	return d.store.Close()
}
