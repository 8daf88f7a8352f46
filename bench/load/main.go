// Command load is the loopback load program: in one run on one
// machine it starts Caddy in-process with the wechat_auth module and the
// WeChat emulator, drives it over HTTP on 127.0.0.1 and prints, side by
// side:
//
//   - guard throughput: requests/s on a `respond` route without
//     wechat_auth ("open"), and on the same route protected by wechat_auth
//     with an HS256 key, the generated Ed25519 (EdDSA) key, an ECDSA P-256
//     (ES256) and an RSA 2048 (RS256) key file, run interleaved (open,
//     HS256, EdDSA, ES256, RS256) for several rounds, with the
//     protected/open ratio per round and its median (goal ≥ 0.95);
//   - logins/s of new users (a fresh openid each) and of returning users (a
//     fixed pool, created before the measurement), refreshes/s (each worker
//     chains its own refresh tokens), all against the emulator with the
//     default durable bbolt store; and bbolt's raw durable write rate on the
//     same disk (one small Put per db.Update, one writer, as
//     store/bolt's BenchmarkRawDurableWrite) with the ratio of each to it
//     (goal ≥ 0.5, i.e. within 2×);
//   - with -postgres, the same logins and refreshes against a second
//     EdDSA site whose store is PostgreSQL (a fresh schema of the given
//     database, dropped at exit), the two sites taking turns phase by
//     phase for -rounds rounds, with PostgreSQL's rate as a fraction of
//     bbolt's for each (median of the per-round ratios; goal ≥ 0.6) and
//     its returning-user rate against its new-user rate (goal ≥ 1).
//
// Usage, from the repository root:
//
//	go run ./bench/load [flags]
//
//	-c 32            concurrent client workers
//	-duration 5s     time limit of each phase
//	-requests 200000 request limit of each phase (whichever comes first)
//	-rounds 3        interleaved rounds of the guard phases, and of the
//	                 login phases with -postgres (medians reported)
//	-warmup 500ms    warm-up before measuring (not counted)
//	-users 1000      size of the returning-user pool
//	-postgres ""     PostgreSQL DSN (postgres://…): also measure the logins
//	                 with the PostgreSQL store
//	-guard=true      run the guard phases (-guard=false: logins only)
//	-dir ""          parent of the temporary data directory (default: the
//	                 system's); put it on the disk to be measured
//	-log-level WARN  level of Caddy's default log (written to stderr)
//	-emulator-port 18090, -open-port 18091, -hs256-port 18092, -eddsa-port 18093,
//	-es256-port 18094, -rs256-port 18095, -pg-port 18096
//
// All sites listen on 127.0.0.1 only; the admin endpoint is off; the
// databases live in a temporary directory removed at exit. With the
// defaults a run takes about 70 s; -guard=false -postgres … -duration 2s
// about 50 s.
//
// A login, in this measurement, is two requests: minting the code at the
// emulator (POST /emulator/code, standing in for wx.login) and POST
// /wx/login, so the minting is part of the login's cost; the output says so. The guard phases send
// the same Authorization header to the open route too, so the two differ
// only by the guard's work.
//
// The table and goal lines are the only output on stdout; progress and
// Caddy's logs go to stderr. Every response status is checked: any
// non-200 (or a wrong body) is counted as an error and reported loudly
// next to the phase, and the exit status is then 1. A missed goal is a
// measurement, not a failure: the exit status stays 0.
package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/caddyserver/caddy/v2/modules/standard"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	_ "github.com/wxauth/caddy-wechat-auth"
	_ "github.com/wxauth/caddy-wechat-auth/emulator"
	"github.com/wxauth/caddy-wechat-auth/store/postgres"
)

// The goals the ratios are judged against.
const (
	guardGoal = 0.95 // protected req/s ÷ open req/s
	loginGoal = 0.50 // logins/s ÷ raw durable bbolt writes/s ("within 2×")
	pgGoal    = 0.60 // PostgreSQL logins (refreshes)/s ÷ bbolt's, each
	pgRetGoal = 1.00 // PostgreSQL returning-user logins/s ÷ new-user logins/s
)

const (
	appID       = "wxload000000000001"
	guardPath   = "/load"
	routeBody   = "ok"
	maxBody     = 64 << 10
	setupBudget = time.Minute // bound of each unmeasured setup step
)

// config is the parsed command line.
type config struct {
	concurrency int
	duration    time.Duration
	requests    int64
	rounds      int
	warmup      time.Duration
	users       int
	dir         string
	postgres    string // PostgreSQL DSN; "" measures bbolt only
	guard       bool   // run the guard phases
	logLevel    string
	ports       ports
	// now is the clock the phases are timed with.
	now func() time.Time
}

// ports are the loopback ports of the four sites.
type ports struct {
	emulator, open, hs256, eddsa, es256, rs256, pg int
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is main without the exit: 0 all clean, 1 failure or failed
// requests, 2 bad flags.
func run(args []string, stdout, stderr io.Writer) int {
	cfg, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "load: %v\n", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := execute(ctx, cfg, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "load: %v\n", err)
		return 1
	}
	if err := rep.print(stdout); err != nil {
		fmt.Fprintf(stderr, "load: writing the report: %v\n", err)
		return 1
	}
	if n := rep.failures(); n > 0 {
		fmt.Fprintf(stderr, "load: %d requests FAILED; the phases marked !! are not clean measurements\n", n)
		return 1
	}
	return 0
}

// parseFlags reads the command line into a config.
func parseFlags(args []string, stderr io.Writer) (config, error) {
	cfg := config{now: time.Now}
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&cfg.concurrency, "c", 32, "concurrent client workers")
	fs.DurationVar(&cfg.duration, "duration", 5*time.Second, "time limit of each phase")
	fs.Int64Var(&cfg.requests, "requests", 200000, "request limit of each phase")
	fs.IntVar(&cfg.rounds, "rounds", 3, "interleaved rounds of the guard phases")
	fs.DurationVar(&cfg.warmup, "warmup", 500*time.Millisecond, "warm-up before measuring")
	fs.IntVar(&cfg.users, "users", 1000, "size of the returning-user pool")
	fs.StringVar(&cfg.dir, "dir", "", "parent of the temporary data directory (default: the system's)")
	fs.StringVar(&cfg.postgres, "postgres", "", "PostgreSQL DSN (postgres://…): also measure logins with the PostgreSQL store")
	fs.BoolVar(&cfg.guard, "guard", true, "run the guard phases")
	fs.StringVar(&cfg.logLevel, "log-level", "WARN", "level of Caddy's default log: DEBUG, INFO, WARN or ERROR")
	fs.IntVar(&cfg.ports.emulator, "emulator-port", 18090, "loopback port of the WeChat emulator")
	fs.IntVar(&cfg.ports.open, "open-port", 18091, "loopback port of the unprotected site")
	fs.IntVar(&cfg.ports.hs256, "hs256-port", 18092, "loopback port of the HS256-protected site")
	fs.IntVar(&cfg.ports.eddsa, "eddsa-port", 18093, "loopback port of the EdDSA-protected site")
	fs.IntVar(&cfg.ports.es256, "es256-port", 18094, "loopback port of the ES256-protected site")
	fs.IntVar(&cfg.ports.rs256, "rs256-port", 18095, "loopback port of the RS256-protected site")
	fs.IntVar(&cfg.ports.pg, "pg-port", 18096, "loopback port of the site on PostgreSQL (with -postgres)")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	return cfg, cfg.validate()
}

// validate rejects values the run cannot work with.
func (c config) validate() error {
	switch {
	case c.concurrency < 1 || c.concurrency > 4096:
		return fmt.Errorf("-c must be between 1 and 4096, got %d", c.concurrency)
	case c.duration <= 0:
		return fmt.Errorf("-duration must be positive, got %v", c.duration)
	case c.requests < 1:
		return fmt.Errorf("-requests must be positive, got %d", c.requests)
	case c.rounds < 1 || c.rounds > 100:
		return fmt.Errorf("-rounds must be between 1 and 100, got %d", c.rounds)
	case c.warmup < 0:
		return fmt.Errorf("-warmup must not be negative, got %v", c.warmup)
	case c.users < 1 || c.users > 1_000_000:
		return fmt.Errorf("-users must be between 1 and 1000000, got %d", c.users)
	case strings.ContainsAny(c.dir, "\"{}\\`\n\r"):
		return fmt.Errorf("-dir must not contain quotes, braces, backslashes or newlines: %q", c.dir)
	case c.postgres != "" && !postgres.IsDSN(c.postgres):
		return errors.New("-postgres must be a postgres:// or postgresql:// URL")
	case strings.ContainsAny(c.postgres, "\"{}\\`\n\r"):
		return errors.New("-postgres must not contain quotes, braces, backslashes or newlines")
	}
	switch strings.ToUpper(c.logLevel) {
	case "DEBUG", "INFO", "WARN", "ERROR":
	default:
		return fmt.Errorf("-log-level must be DEBUG, INFO, WARN or ERROR, got %q", c.logLevel)
	}
	seen := map[int]bool{}
	for _, p := range []int{c.ports.emulator, c.ports.open, c.ports.hs256, c.ports.eddsa, c.ports.es256, c.ports.rs256, c.ports.pg} {
		if p < 1 || p > 65535 {
			return fmt.Errorf("port %d out of range", p)
		}
		if seen[p] {
			return fmt.Errorf("port %d given twice", p)
		}
		seen[p] = true
	}
	return nil
}

// execute starts Caddy, runs every phase and stops Caddy again.
func execute(ctx context.Context, cfg config, stderr io.Writer) (rep *report, err error) {
	dir, err := os.MkdirTemp(cfg.dir, "wechat-auth-load-")
	if err != nil {
		return nil, fmt.Errorf("creating the data directory: %w", err)
	}
	defer func() {
		if rerr := os.RemoveAll(dir); rerr != nil && err == nil {
			err = fmt.Errorf("removing the data directory: %w", rerr)
		}
	}()
	pgDSN := ""
	if cfg.postgres != "" {
		var drop func() error
		if pgDSN, drop, err = pgSchema(ctx, cfg.postgres); err != nil {
			return nil, err
		}
		defer func() {
			if derr := drop(); derr != nil && err == nil {
				err = derr
			}
		}()
	}
	cfgJSON, err := caddyConfig(cfg, dir, pgDSN, stderr)
	if err != nil {
		return nil, err
	}
	fmt.Fprintln(stderr, "load: starting caddy on 127.0.0.1")
	if err := caddy.Load(cfgJSON, true); err != nil {
		return nil, fmt.Errorf("starting caddy: %w", err)
	}
	defer func() {
		if serr := caddy.Stop(); serr != nil && err == nil {
			err = fmt.Errorf("stopping caddy: %w", serr)
		}
	}()

	l := newLoader(cfg, stderr)
	defer l.client.CloseIdleConnections()
	rep = &report{cfg: cfg, dir: dir}
	if cfg.guard {
		if err := l.guardPhases(ctx, rep); err != nil {
			return nil, err
		}
	}
	if err := l.loginPhases(ctx, rep); err != nil {
		return nil, err
	}
	if err := l.rawPhase(ctx, rep, filepath.Join(dir, "raw.db")); err != nil {
		return nil, err
	}
	return rep, nil
}

// pgSchema creates a fresh schema in the database of dsn and returns the
// DSN that puts the store in it, and a function that drops it.
func pgSchema(ctx context.Context, dsn string) (string, func() error, error) {
	suffix, err := randomHex(6)
	if err != nil {
		return "", nil, err
	}
	schema := "wxload_" + suffix
	exec := func(ctx context.Context, sql string) error {
		ctx, cancel := context.WithTimeout(ctx, setupBudget)
		defer cancel()
		// pgxpool's parser knows the pool_… settings a DSN for the store
		// may carry; a single connection ignores them.
		cfg, err := pgxpool.ParseConfig(dsn)
		if err != nil {
			return err
		}
		conn, err := pgx.ConnectConfig(ctx, cfg.ConnConfig)
		if err != nil {
			return err
		}
		defer conn.Close(context.Background())
		_, err = conn.Exec(ctx, sql)
		return err
	}
	if err := exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		return "", nil, fmt.Errorf("creating schema %s in PostgreSQL: %w", schema, err)
	}
	drop := func() error {
		if err := exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			return fmt.Errorf("dropping schema %s in PostgreSQL: %w", schema, err)
		}
		return nil
	}
	u, err := url.Parse(dsn)
	if err != nil {
		return "", nil, errors.Join(fmt.Errorf("parsing -postgres: %w", err), drop())
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String(), drop, nil
}

// caddyConfig is the Caddyfile of the run, adapted to JSON. pgDSN, when
// not empty, adds the EdDSA site on PostgreSQL.
func caddyConfig(cfg config, dir, pgDSN string, stderr io.Writer) ([]byte, error) {
	appSecret, err := randomHex(32)
	if err != nil {
		return nil, err
	}
	hsKey, err := randomHex(32)
	if err != nil {
		return nil, err
	}
	p := cfg.ports
	site := func(port int, db, extra string) string {
		if !postgres.IsDSN(db) {
			db = filepath.Join(dir, db)
		}
		return fmt.Sprintf(`http://127.0.0.1:%d {
	bind 127.0.0.1
	wechat_auth {
		app_id %s
		app_secret %s
		api_base http://127.0.0.1:%d
		db "%s"
%s	}
	respond %q 200
}
`, port, appID, appSecret, p.emulator, db, extra, routeBody)
	}
	caddyfile := fmt.Sprintf(`{
	admin off
	persist_config off
	auto_https off
	storage file_system "%s"
	log {
		output stderr
		level %s
	}
}

# The WeChat emulator, checking app_id and app_secret like WeChat.
http://127.0.0.1:%d {
	bind 127.0.0.1
	wechat_emulator {
		app_id %s
		app_secret %s
	}
	respond "not a WeChat API path" 404
}

# The baseline: the same route, unprotected.
http://127.0.0.1:%d {
	bind 127.0.0.1
	respond %q 200
}

`, filepath.Join(dir, "caddy"), strings.ToUpper(cfg.logLevel), p.emulator, appID, appSecret, p.open, routeBody)
	caddyfile += "# HS256.\n" + site(p.hs256, "hs256.db", "\t\tsigning_key "+hsKey+"\n")
	caddyfile += "\n# EdDSA: the generated default key.\n" + site(p.eddsa, "eddsa.db", "")
	if pgDSN != "" {
		caddyfile += "\n# EdDSA with the PostgreSQL store.\n" + site(p.pg, pgDSN, "")
	}
	ecKey, err := writeKey(dir, "es256.pem", func() (any, error) { return ecdsa.GenerateKey(elliptic.P256(), rand.Reader) })
	if err != nil {
		return nil, err
	}
	caddyfile += "\n# ES256: a P-256 key file.\n" + site(p.es256, "es256.db", "\t\tsigning_key_file \""+ecKey+"\"\n")
	rsKey, err := writeKey(dir, "rs256.pem", func() (any, error) { return rsa.GenerateKey(rand.Reader, 2048) })
	if err != nil {
		return nil, err
	}
	caddyfile += "\n# RS256: an RSA 2048 key file.\n" + site(p.rs256, "rs256.db", "\t\tsigning_key_file \""+rsKey+"\"\n")

	adapter := caddyconfig.GetAdapter("caddyfile")
	if adapter == nil {
		return nil, errors.New("adapting the config: no caddyfile adapter registered")
	}
	out, warnings, err := adapter.Adapt([]byte(caddyfile), map[string]any{"filename": "load.Caddyfile"})
	if err != nil {
		return nil, fmt.Errorf("adapting the config: %w", err)
	}
	for _, w := range warnings {
		fmt.Fprintf(stderr, "load: caddyfile warning: %s\n", w)
	}
	return out, nil
}

// writeKey writes a new private key as PKCS#8 PEM into dir and returns
// its path.
func writeKey(dir, name string, gen func() (any, error)) (string, error) {
	k, err := gen()
	if err != nil {
		return "", fmt.Errorf("generating %s: %w", name, err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return "", fmt.Errorf("encoding %s: %w", name, err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return "", fmt.Errorf("writing %s: %w", name, err)
	}
	return path, nil
}

// randomHex is n random bytes in hex.
func randomHex(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generating a secret: %w", err)
	}
	return hex.EncodeToString(b), nil
}
