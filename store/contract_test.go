package store_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/wxauth/caddy-wechat-auth/internal/pgtest"
	"github.com/wxauth/caddy-wechat-auth/store"
	"github.com/wxauth/caddy-wechat-auth/store/bolt"
	"github.com/wxauth/caddy-wechat-auth/store/postgres"
	"github.com/wxauth/caddy-wechat-auth/store/storetest"
)

// backends is every store.Store of the repository, as the contract suite
// opens them. open gives a fresh, empty store; pair gives two "instances"
// of one database (bbolt is opened by one process only, so its pair is the
// same store twice); ready, when set, ends the test once if the backend's
// server cannot be reached (a skip on a laptop, a failure in CI).
var backends = []struct {
	name  string
	ready func(t *testing.T)
	open  func(t *testing.T) store.Store
	pair  func(t *testing.T) (store.Store, store.Store)
}{
	{
		name: "bolt",
		open: openBolt,
		pair: func(t *testing.T) (store.Store, store.Store) {
			s := openBolt(t)
			return s, s
		},
	},
	{
		name:  "postgres",
		ready: func(t *testing.T) { pgtest.Connect(t) },
		open: func(t *testing.T) store.Store {
			dsn, _ := pgtest.SchemaDSN(t)
			return openPostgres(t, dsn)
		},
		pair: func(t *testing.T) (store.Store, store.Store) {
			dsn, _ := pgtest.SchemaDSN(t)
			return openPostgres(t, dsn), openPostgres(t, dsn)
		},
	},
}

// TestContract runs the whole contract suite against every backend.
func TestContract(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			if b.ready != nil {
				b.ready(t)
			}
			storetest.Run(t, b.open)
		})
	}
}

// TestContractShared runs the cross-instance cases against every backend,
// on two stores of one database.
func TestContractShared(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			if b.ready != nil {
				b.ready(t)
			}
			storetest.RunShared(t, b.pair)
		})
	}
}

func openBolt(t *testing.T) store.Store {
	t.Helper()
	s, err := bolt.Open(filepath.Join(t.TempDir(), "contract.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeStore(t, s) })
	return s
}

func openPostgres(t *testing.T, dsn string) store.Store {
	t.Helper()
	s, err := postgres.Open(context.Background(), dsn, postgres.Options{Timeout: 5 * time.Second, PollInterval: 200 * time.Millisecond})
	if err != nil {
		t.Fatalf("opening PostgreSQL store: %v", err)
	}
	t.Cleanup(func() { closeStore(t, s) })
	return s
}

func closeStore(t *testing.T, s store.Store) {
	if err := s.Close(); err != nil && !errors.Is(err, store.ErrClosed) {
		t.Errorf("Close: %v", err)
	}
}
