package bench

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"net/http"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/jackc/pgx/v5/pgxpool"

	wechatauth "github.com/wxauth/caddy-wechat-auth"
	"github.com/wxauth/caddy-wechat-auth/internal/pgtest"
	"github.com/wxauth/caddy-wechat-auth/store"
	"github.com/wxauth/caddy-wechat-auth/store/postgres"
	"github.com/wxauth/caddy-wechat-auth/store/storetest"
)

// The PostgreSQL store benchmarks, against the server named by
// WECHAT_AUTH_TEST_POSTGRES (each in a fresh schema): logins and refreshes
// per second of the PostgreSQL store from 1, 4 and 16 concurrent clients,
// against the raw rate of durable one-row transactions from as many
// clients on the same pool size (goal: ratio ≥ 0.5); the guard with the
// PostgreSQL store; revocation reaching a second instance (goal: p99 ≤ 1s).
// bench/pg_ratios.sh runs them and prints the ratios.

// clientCounts are the numbers of concurrent clients measured; the pool
// has as many connections. With one client every operation waits for its
// own commit to reach the disk; with more, PostgreSQL's group commit
// shares one flush among them and the CPU becomes the limit.
var clientCounts = []int{1, 4, 16}

// eachClientCount runs fn as a sub-benchmark per client count.
func eachClientCount(b *testing.B, fn func(b *testing.B, clients int)) {
	for _, n := range clientCounts {
		b.Run(fmt.Sprintf("clients=%d", n), func(b *testing.B) { fn(b, n) })
	}
}

// pgDSN returns a fresh schema's DSN with a pool of clients connections.
func pgDSN(b *testing.B, clients int) string {
	b.Helper()
	dsn, _ := pgtest.SchemaDSN(b)
	return dsn + fmt.Sprintf("&pool_max_conns=%d&pool_min_conns=%d", clients, clients)
}

// openPG opens the PostgreSQL store on a fresh schema.
func openPG(b *testing.B, clients int) (*postgres.Store, string) {
	b.Helper()
	dsn := pgDSN(b, clients)
	s, err := postgres.Open(context.Background(), dsn, postgres.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s, dsn
}

// BenchmarkPostgresRawTx is the baseline: one durable one-row INSERT
// transaction per operation, from each number of clients on a pool of as
// many connections.
func BenchmarkPostgresRawTx(b *testing.B) { eachClientCount(b, benchRawTx) }

func benchRawTx(b *testing.B, clients int) {
	dsn := pgDSN(b, clients)
	pool, err := pgxpool.New(context.Background(), dsn)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(pool.Close)
	ctx := context.Background()
	if _, err := pool.Exec(ctx, `CREATE TABLE raw_rows (id bigint PRIMARY KEY, v bytea NOT NULL)`); err != nil {
		b.Fatal(err)
	}
	val := make([]byte, 64)
	runClients(b, clients, func(i int64) error {
		_, err := pool.Exec(ctx, `INSERT INTO raw_rows (id, v) VALUES ($1, $2)`, i, val)
		return err
	})
}

// runClients runs fn b.N times in all from exactly clients goroutines.
func runClients(b *testing.B, clients int, fn func(i int64) error) {
	b.Helper()
	var next atomic.Int64
	n := int64(b.N)
	errs := make(chan error, clients)
	b.ResetTimer()
	start := time.Now()
	for range clients {
		go func() {
			for {
				i := next.Add(1)
				if i > n {
					errs <- nil
					return
				}
				if err := fn(i); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for range clients {
		if err := <-errs; err != nil {
			b.Fatal(err)
		}
	}
	el := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/el.Seconds(), "ops/s")
}

// loginArgs builds the session and first token of login number i.
func loginArgs(i int64, now time.Time) (store.Session, store.RefreshToken) {
	sid := fmt.Sprintf("bench-sid-%d", i)
	tok := store.RefreshToken{
		Hash: sha256.Sum256([]byte(sid)), SessionID: sid, IssuedAt: now,
		ExpiresAt: now.Add(720 * time.Hour), AccessID: "jti-" + sid, AccessIssuedAt: now,
	}
	return store.Session{ID: sid, AppID: benchApp, SealedSessionKey: make([]byte, 60), CreatedAt: now}, tok
}

// BenchmarkPostgresLogin is store.Login (user and session in one
// transaction) of new users (a fresh openid each) and of returning users
// (a pool of 1000 created first).
func BenchmarkPostgresLogin(b *testing.B) {
	b.Run("new", func(b *testing.B) { eachClientCount(b, benchLoginNew) })
	b.Run("returning", func(b *testing.B) { eachClientCount(b, benchLoginReturning) })
}

func benchLoginNew(b *testing.B, clients int) {
	now := time.Now()
	s, _ := openPG(b, clients)
	ctx := context.Background()
	runClients(b, clients, func(i int64) error {
		sess, tok := loginArgs(i, now)
		_, _, _, err := s.Login(ctx, benchApp, store.NewUser{OpenID: fmt.Sprintf("o-new-%d", i)}, sess, tok, now)
		return err
	})
}

func benchLoginReturning(b *testing.B, clients int) {
	now := time.Now()
	s, _ := openPG(b, clients)
	ctx := context.Background()
	const users = 1000
	openIDs := make([]string, users)
	for i := range openIDs {
		openIDs[i] = fmt.Sprintf("o-%d", i)
	}
	if _, err := storetest.CreateUsers(ctx, s, benchApp, openIDs, now); err != nil {
		b.Fatal(err)
	}
	runClients(b, clients, func(i int64) error {
		sess, tok := loginArgs(i, now)
		_, _, _, err := s.Login(ctx, benchApp, store.NewUser{OpenID: fmt.Sprintf("o-%d", i%users)}, sess, tok, now)
		return err
	})
}

// BenchmarkPostgresRefresh is store.Rotate of a current refresh token:
// each operation rotates a different session's token (one session per
// operation, created first).
func BenchmarkPostgresRefresh(b *testing.B) { eachClientCount(b, benchRefresh) }

func benchRefresh(b *testing.B, clients int) {
	s, _ := openPG(b, clients)
	ctx := context.Background()
	now := time.Now()
	u, _, err := storetest.CreateUser(ctx, s, benchApp, store.NewUser{OpenID: "o-refresh"}, now)
	if err != nil {
		b.Fatal(err)
	}
	hashes := make([][32]byte, b.N+1)
	for i := 1; i <= b.N; i++ {
		sess, tok := loginArgs(int64(i), now)
		sess.UserID, sess.OpenID = u.ID, u.OpenID
		if err := storetest.CreateSession(ctx, s, sess, tok); err != nil {
			b.Fatal(err)
		}
		hashes[i] = tok.Hash
	}
	runClients(b, clients, func(i int64) error {
		var next [32]byte
		binary.BigEndian.PutUint64(next[:], uint64(i))
		next[31] = 0xff
		res, err := s.Rotate(ctx, benchApp, hashes[i], store.RefreshToken{
			Hash: next, IssuedAt: now, ExpiresAt: now.Add(720 * time.Hour), AccessID: "a", AccessIssuedAt: now,
		}, now.Add(time.Second), 10*time.Second)
		if err == nil && res.Outcome != store.Rotated {
			err = fmt.Errorf("outcome %v", res.Outcome)
		}
		return err
	})
}

// provisionDB starts the module as Caddy would, with its store at db.
func provisionDB(tb testing.TB, m wechatauth.WeChatAuth, db string) *wechatauth.WeChatAuth {
	tb.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	tb.Cleanup(cancel)
	m.AppID, m.AppSecret = benchApp, "bench-app-secret"
	m.APIBase = "http://127.0.0.1:1" // never called by the guard
	m.DB = db
	if err := m.Provision(ctx); err != nil {
		tb.Fatal(err)
	}
	if err := m.Validate(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = m.Cleanup() })
	return &m
}

// BenchmarkGuardServeHTTPPostgres is BenchmarkGuardServeHTTP's HS256 case
// with the module's store on PostgreSQL: the guard reads no storage, so
// it costs the same as with bbolt.
func BenchmarkGuardServeHTTPPostgres(b *testing.B) {
	for _, backend := range []string{"bolt", "postgres"} {
		b.Run(backend, func(b *testing.B) {
			var m *wechatauth.WeChatAuth
			if backend == "postgres" {
				m = provisionDB(b, wechatauth.WeChatAuth{SigningKey: benchSecret}, pgDSN(b, 4))
			} else {
				m = provision(b, wechatauth.WeChatAuth{SigningKey: benchSecret})
			}
			c := algCases(b)[0]
			r, rc := guardRequest(issue(b, c.signer))
			w := &discardWriter{h: http.Header{}}
			if err := m.ServeHTTP(w, r, nextOK); err != nil || r.Header.Get("X-WeChat-User-ID") != "42" {
				b.Fatalf("guard refused the token: %v", err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				rc.repl = requestReplacer()
				if err := m.ServeHTTP(w, r, nextOK); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRevocationPropagation measures how long a revocation committed
// through one store (instance B) takes to reach the revocation watcher of
// another (instance A) on the same database: 100 logouts, one after the
// other, timed from just before RevokeSession to delivery. It reports the
// median and the 99th percentile in milliseconds (goal p99 ≤ 1000).
func BenchmarkRevocationPropagation(b *testing.B) {
	const logouts = 100
	for b.Loop() {
		b.StopTimer()
		dsn := pgDSN(b, 4)
		a, err := postgres.Open(context.Background(), dsn, postgres.Options{})
		if err != nil {
			b.Fatal(err)
		}
		other, err := postgres.Open(context.Background(), dsn, postgres.Options{})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		got := make(chan store.Revocation, logouts)
		if err := a.WatchRevocations(ctx, func(r store.Revocation) { got <- r }, nil); err != nil {
			b.Fatal(err)
		}
		now := time.Now()
		u, _, err := storetest.CreateUser(ctx, other, benchApp, store.NewUser{OpenID: "o-prop"}, now)
		if err != nil {
			b.Fatal(err)
		}
		for i := range logouts {
			sess, tok := loginArgs(int64(i), now)
			sess.UserID, sess.OpenID = u.ID, u.OpenID
			if err := storetest.CreateSession(ctx, other, sess, tok); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
		lat := make([]time.Duration, 0, logouts)
		for i := range logouts {
			sid := fmt.Sprintf("bench-sid-%d", i)
			start := time.Now()
			if _, err := other.RevokeSession(ctx, benchApp, sid, store.ReasonLogout, time.Now()); err != nil {
				b.Fatal(err)
			}
			for r := range got {
				if r.SessionID == sid {
					break
				}
			}
			lat = append(lat, time.Since(start))
		}
		b.StopTimer()
		slices.Sort(lat)
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
		b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max-ms")
		cancel()
		a.Close()
		other.Close()
		b.StartTimer()
	}
}
