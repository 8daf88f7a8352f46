// Package pgtest gives tests a PostgreSQL database of their own: a fresh
// schema in the database named by WECHAT_AUTH_TEST_POSTGRES (default
// postgres://postgres@127.0.0.1:5432/test?sslmode=disable), reached
// through search_path in the DSN and dropped when the test ends. Where no
// PostgreSQL answers, the test is ended through testenv.Missing (a skip on
// a laptop, a failure in CI).
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"net/url"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/wxauth/caddy-wechat-auth/internal/testenv"
)

// EnvDSN names the environment variable holding the test server's DSN.
const EnvDSN = "WECHAT_AUTH_TEST_POSTGRES"

// DefaultDSN is the test server used when EnvDSN is unset.
const DefaultDSN = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// BaseDSN returns the DSN of the test server.
func BaseDSN() string {
	if v := os.Getenv(EnvDSN); v != "" {
		return v
	}
	return DefaultDSN
}

// Connect opens a plain connection to the test server, ending the test
// through testenv.Missing when none answers. The connection is closed
// when the test ends.
func Connect(t testing.TB) *pgx.Conn {
	t.Helper()
	dsn := BaseDSN()
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatalf("parsing %s: %v", EnvDSN, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		testenv.Missing(t, "PostgreSQL not reachable at "+net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port))), "set "+EnvDSN+" or start PostgreSQL")
		return nil
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

// SchemaDSN creates a fresh schema on the test server and returns a DSN
// whose search_path selects it, with the schema's name. The schema and
// everything in it are dropped when the test ends.
func SchemaDSN(t testing.TB) (dsn, schema string) {
	t.Helper()
	conn := Connect(t)
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema = "wxtest_" + hex.EncodeToString(b[:])
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("creating schema %s: %v", schema, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, BaseDSN())
		if err != nil {
			t.Errorf("dropping schema %s: %v", schema, err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("dropping schema %s: %v", schema, err)
		}
	})
	return WithSearchPath(t, BaseDSN(), schema), schema
}

// WithSearchPath returns dsn with search_path set to schema.
func WithSearchPath(t testing.TB, dsn, schema string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatalf("parsing DSN: %v", err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// Target returns the host:port of the test server.
func Target(t testing.TB) string {
	t.Helper()
	u, err := url.Parse(BaseDSN())
	if err != nil {
		t.Fatalf("parsing DSN: %v", err)
	}
	host := u.Host
	if u.Port() == "" {
		host += ":5432"
	}
	return host
}

// replaceHost returns dsn with its host:port set to addr.
func replaceHost(t testing.TB, dsn, addr string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatalf("parsing DSN: %v", err)
	}
	u.Host = addr
	return u.String()
}
