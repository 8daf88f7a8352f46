package wechatauth_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/wxauth/caddy-wechat-auth/internal/pgtest"
	"github.com/wxauth/caddy-wechat-auth/store/postgres"
)

// The tests in this file run real Caddy processes (built once from
// ./cmd/caddy) on free loopback ports, with their own admin addresses,
// sharing PostgreSQL schemas: several instances of one site.

const pgApp = "wxe2epg0000000001"

// caddyProc is one running Caddy process.
type caddyProc struct {
	t    *testing.T
	name string
	cmd  *exec.Cmd
	out  *lockedBuffer
	site string // http://127.0.0.1:port of the protected site
	done chan struct{}
}

// lockedBuffer collects a process's output.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// pgCluster is the shared state of the multi-instance tests: the Caddy
// binary and the emulator process every instance asks.
type pgCluster struct {
	t      *testing.T
	caddy  string // binary
	dir    string
	emuURL string
	client *http.Client
}

// freeAddr returns a loopback address nothing listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

// newPGCluster builds Caddy and starts the emulator.
func newPGCluster(t *testing.T) *pgCluster {
	t.Helper()
	pgtest.Connect(t)
	if testing.Short() {
		t.Skip("builds and runs Caddy processes")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "caddy")
	build := exec.Command("go", "build", "-o", bin, "./cmd/caddy")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building caddy: %v\n%s", err, out)
	}
	c := &pgCluster{t: t, caddy: bin, dir: dir, client: &http.Client{Timeout: 10 * time.Second}}
	emu := freeAddr(t)
	c.emuURL = "http://" + emu
	c.start("emulator", fmt.Sprintf(`http://%s {
	bind 127.0.0.1
	wechat_emulator
}`, emu), c.emuURL+"/emulator/code")
	return c
}

// with returns the cluster bound to t (a subtest): its helpers fail t
// and the processes they start stop when t ends.
func (c *pgCluster) with(t *testing.T) *pgCluster {
	cc := *c
	cc.t = t
	return &cc
}

// siteBlock is a protected site on addr using db.
func (c *pgCluster) siteBlock(addr, db string) string {
	return fmt.Sprintf(`http://%s {
	bind 127.0.0.1
	wechat_auth {
		app_id %s
		app_secret e2e-pg-app-secret
		api_base %s
		db %s
	}
	respond "user={http.auth.user.id} sid={http.auth.user.sid}"
}`, addr, pgApp, c.emuURL, db)
}

// site starts a Caddy serving the protected site on db.
func (c *pgCluster) site(name, db string) *caddyProc {
	c.t.Helper()
	addr := freeAddr(c.t)
	p := c.start(name, c.siteBlock(addr, db), "http://"+addr+"/")
	p.site = "http://" + addr
	return p
}

// config writes a Caddyfile with a global block (own admin address, no
// saved config) and sites.
func (c *pgCluster) config(name, sites string) string {
	c.t.Helper()
	cfg := fmt.Sprintf("{\n\tadmin %s\n\tpersist_config off\n\tlog {\n\t\tlevel WARN\n\t}\n}\n\n%s\n", freeAddr(c.t), sites)
	path := filepath.Join(c.dir, name+".Caddyfile")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		c.t.Fatal(err)
	}
	return path
}

// env isolates a Caddy process's data and config directories.
func (c *pgCluster) env(name string) []string {
	home := filepath.Join(c.dir, "home-"+name)
	return append(os.Environ(), "HOME="+home, "XDG_DATA_HOME="+home+"/data", "XDG_CONFIG_HOME="+home+"/config")
}

// start runs Caddy with sites and waits until ready answers (any status).
func (c *pgCluster) start(name, sites, ready string) *caddyProc {
	c.t.Helper()
	p := &caddyProc{t: c.t, name: name, out: &lockedBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(c.caddy, "run", "--config", c.config(name, sites), "--adapter", "caddyfile")
	p.cmd.Env = c.env(name)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		c.t.Fatalf("starting %s: %v", name, err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	c.t.Cleanup(func() {
		p.stop()
		if c.t.Failed() {
			c.t.Logf("output of %s:\n%s", name, p.out.String())
		}
	})
	for i := 0; ; i++ {
		select {
		case <-p.done:
			c.t.Fatalf("%s exited: %s", name, p.out.String())
		default:
		}
		if res, err := c.client.Get(ready); err == nil {
			res.Body.Close()
			return p
		}
		if i == 300 {
			c.t.Fatalf("%s not ready after 30s: %s", name, p.out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stop ends the process (gracefully, then by force) and waits for it.
func (p *caddyProc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// call sends a request with a JSON body (when v is not nil) and optional
// bearer token.
func (c *pgCluster) call(method, url string, v any, tok string) answer {
	c.t.Helper()
	var body io.Reader
	if v != nil {
		b, _ := json.Marshal(v)
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		c.t.Fatal(err)
	}
	if v != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	res, err := c.client.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, url, err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	a := answer{status: res.StatusCode, header: res.Header, raw: string(raw)}
	_ = json.Unmarshal(raw, &a.body)
	return a
}

// mint asks the emulator for a wx.login code for openid.
func (c *pgCluster) mint(openid string) string {
	c.t.Helper()
	a := c.call("POST", c.emuURL+"/emulator/code", map[string]string{"openid": openid}, "")
	code, _ := a.body["code"].(string)
	if a.status != 200 || code == "" {
		c.t.Fatalf("minting a code: %d %s", a.status, a.raw)
	}
	return code
}

// login logs openid in on p and returns the answer.
func (c *pgCluster) login(p *caddyProc, openid string) answer {
	c.t.Helper()
	a := c.call("POST", p.site+"/wx/login", map[string]string{"code": c.mint(openid)}, "")
	expect(c.t, a, 200, "")
	return a
}

// within polls check every 50ms until it returns true or d has passed,
// and returns how long it took.
func within(t *testing.T, d time.Duration, what string, check func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for n := 0; n <= int(d/(50*time.Millisecond)); n++ {
		if check() {
			return time.Since(start)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: not within %s", what, d)
	return 0
}

// terminateListeners kills the LISTEN connections of every wechat_auth
// process on the test server (found by application_name) and returns how
// many it killed. The watchers reconnect on their own.
func terminateListeners(t *testing.T) int {
	t.Helper()
	conn := pgtest.Connect(t)
	var n int
	err := conn.QueryRow(context.Background(), `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE application_name = $1 AND pid <> pg_backend_pid()`, postgres.ListenerAppName).Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestE2EPostgres builds Caddy once and runs the multi-instance
// scenarios with one emulator process.
func TestE2EPostgres(t *testing.T) {
	c := newPGCluster(t)
	t.Run("two instances", func(t *testing.T) { testPGInstances(t, c.with(t)) })
	t.Run("database unavailable", func(t *testing.T) { testPGUnavailable(t, c.with(t)) })
	t.Run("move from bbolt", func(t *testing.T) { testPGMoveFromBolt(t, c.with(t)) })
}

// testPGInstances runs two Caddy instances of one site on one PostgreSQL
// schema, started at the same moment.
func testPGInstances(t *testing.T, c *pgCluster) {
	dsn, _ := pgtest.SchemaDSN(t)
	var a, b *caddyProc
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); a = c.site("a", dsn) }()
	go func() { defer wg.Done(); b = c.site("b", dsn) }()
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}

	t.Run("token of one instance works on the other", func(t *testing.T) {
		c := c.with(t)
		lg := c.login(a, "o-pg-1")
		tok, rt := lg.body["token"].(string), lg.body["refresh_token"].(string)
		expect(t, c.call("GET", b.site+"/x", nil, tok), 200, "")

		r := c.call("POST", b.site+"/wx/refresh", map[string]string{"refresh_token": rt}, "")
		expect(t, r, 200, "")
		tok2 := r.body["token"].(string)
		// The retry of the same refresh on the other instance gets the
		// same pair; the rotated token's replay after that is caught.
		again := c.call("POST", a.site+"/wx/refresh", map[string]string{"refresh_token": rt}, "")
		expect(t, again, 200, "")
		if again.body["refresh_token"] != r.body["refresh_token"] {
			t.Errorf("a retried refresh on the other instance got another refresh token")
		}

		expect(t, c.call("POST", a.site+"/wx/logout", map[string]any{}, tok2), 200, "")
		took := within(t, time.Second, "logout on A refused on B", func() bool {
			return c.call("GET", b.site+"/x", nil, tok2).status == 401
		})
		t.Logf("logout on A reached B in %s", took)
		expect(t, c.call("GET", b.site+"/x", nil, tok), 401, "invalid_token")
		expect(t, c.call("POST", b.site+"/wx/refresh", map[string]string{"refresh_token": r.body["refresh_token"].(string)}, ""), 401, "invalid_grant")
	})

	t.Run("simultaneous first logins make one user", func(t *testing.T) {
		c := c.with(t)
		codes := []string{c.mint("o-pg-race"), c.mint("o-pg-race")}
		answers := make([]answer, 2)
		var wg sync.WaitGroup
		for i, p := range []*caddyProc{a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				req, _ := http.NewRequest("POST", p.site+"/wx/login", strings.NewReader(`{"code":"`+codes[i]+`"}`))
				req.Header.Set("Content-Type", "application/json")
				res, err := c.client.Do(req)
				if err != nil {
					t.Errorf("login %d: %v", i, err)
					return
				}
				defer res.Body.Close()
				raw, _ := io.ReadAll(res.Body)
				answers[i] = answer{status: res.StatusCode, raw: string(raw)}
				_ = json.Unmarshal(raw, &answers[i].body)
			}()
		}
		wg.Wait()
		for _, x := range answers {
			expect(t, x, 200, "")
		}
		if answers[0].body["user_id"] != answers[1].body["user_id"] {
			t.Errorf("two users for one openid: %v and %v", answers[0].body["user_id"], answers[1].body["user_id"])
		}
		if answers[0].body["new_user"] == answers[1].body["new_user"] {
			t.Errorf("new_user is %v on both instances, want true on exactly one", answers[0].body["new_user"])
		}
	})

	t.Run("revocation arrives after the listener connection is killed", func(t *testing.T) {
		c := c.with(t)
		tok := c.login(a, "o-pg-2").body["token"].(string)
		expect(t, c.call("GET", b.site+"/x", nil, tok), 200, "")
		if n := terminateListeners(t); n < 2 {
			t.Fatalf("terminated %d listener connections, want at least 2 (A and B)", n)
		}
		expect(t, c.call("POST", a.site+"/wx/logout", map[string]any{}, tok), 200, "")
		took := within(t, postgres.DefaultPollInterval+500*time.Millisecond, "logout refused on B after its listener was killed", func() bool {
			return c.call("GET", b.site+"/x", nil, tok).status == 401
		})
		t.Logf("revocation reached B in %s with its listener killed", took)
	})
}

// testPGUnavailable runs an instance whose database connection goes
// through a proxy the test cuts and restores.
func testPGUnavailable(t *testing.T, c *pgCluster) {
	dsn, _ := pgtest.SchemaDSN(t)

	t.Run("unreachable at start", func(t *testing.T) {
		c := c.with(t)
		dead := freeAddr(t)
		cfg := c.config("dead", c.siteBlock(freeAddr(t), "postgres://wechat:hunter2@"+dead+"/test?sslmode=disable"))
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, c.caddy, "run", "--config", cfg, "--adapter", "caddyfile")
		cmd.Env = c.env("dead")
		out, err := cmd.CombinedOutput()
		if err == nil {
			t.Fatal("caddy run succeeded with an unreachable database")
		}
		if !strings.Contains(string(out), dead) || !strings.Contains(string(out), "not reachable") {
			t.Errorf("start-up error does not name %s as not reachable:\n%s", dead, out)
		}
		if strings.Contains(string(out), "hunter2") {
			t.Errorf("start-up error reveals the password:\n%s", out)
		}
	})

	proxy := pgtest.NewProxy(t, pgtest.Target(t))
	p := c.site("proxied", pgtest.ProxyDSN(t, dsn, proxy))
	lg := c.login(p, "o-pg-down")
	tok, rt := lg.body["token"].(string), lg.body["refresh_token"].(string)

	proxy.Stop()
	calls := []struct {
		name string
		do   func() answer
	}{
		{"login", func() answer {
			return c.call("POST", p.site+"/wx/login", map[string]string{"code": c.mint("o-pg-down-2")}, "")
		}},
		{"refresh", func() answer {
			return c.call("POST", p.site+"/wx/refresh", map[string]string{"refresh_token": rt}, "")
		}},
		{"logout", func() answer { return c.call("POST", p.site+"/wx/logout", map[string]any{}, tok) }},
		{"profile", func() answer { return c.call("GET", p.site+"/wx/profile", nil, tok) }},
	}
	for _, cl := range calls {
		a := cl.do()
		expect(t, a, 503, "store_unavailable")
		if a.header.Get("Retry-After") == "" {
			t.Errorf("%s: 503 without Retry-After", cl.name)
		}
	}
	// The guard reads no storage: the access token still works.
	expect(t, c.call("GET", p.site+"/x", nil, tok), 200, "")

	proxy.Start()
	within(t, 10*time.Second, "login after the database came back", func() bool {
		return c.call("POST", p.site+"/wx/login", map[string]string{"code": c.mint("o-pg-down-3")}, "").status == 200
	})
	expect(t, c.call("POST", p.site+"/wx/refresh", map[string]string{"refresh_token": rt}, ""), 200, "")
	expect(t, c.call("POST", p.site+"/wx/logout", map[string]any{}, tok), 200, "")
	expect(t, c.call("GET", p.site+"/x", nil, tok), 401, "invalid_token")
}

// testPGMoveFromBolt follows the README's recipe: a bbolt site with users
// (one with a second openid linked by unionid) and a live session is
// stopped, exported and imported into PostgreSQL; a Caddy on PostgreSQL
// with the same app secret accepts the same tokens, users keep their ids
// and linked openids, and new users continue after them.
func testPGMoveFromBolt(t *testing.T, c *pgCluster) {
	dsn, _ := pgtest.SchemaDSN(t)
	file := filepath.Join(c.dir, "site.db")

	// The bbolt site links openids by unionid; the emulator remembers the
	// unionid of each openid minted with one.
	addr := freeAddr(t)
	old := c.start("bolt", strings.Replace(c.siteBlock(addr, file), "\t\tdb ", "\t\tlink_unionid\n\t\tdb ", 1), "http://"+addr+"/")
	old.site = "http://" + addr
	loginUnion := func(openid string) answer {
		t.Helper()
		m := c.call("POST", c.emuURL+"/emulator/code", map[string]string{"openid": openid, "unionid": "u-move"}, "")
		code, _ := m.body["code"].(string)
		if m.status != 200 || code == "" {
			t.Fatalf("minting a code with a unionid: %d %s", m.status, m.raw)
		}
		a := c.call("POST", old.site+"/wx/login", map[string]string{"code": code}, "")
		expect(t, a, 200, "")
		return a
	}
	loginUnion("o-move-1")
	lg := c.login(old, "o-move-2")
	tok, rt := lg.body["token"].(string), lg.body["refresh_token"].(string)
	if lg.body["user_id"] != 2.0 {
		t.Fatalf("second user got id %v", lg.body["user_id"])
	}
	if got := loginUnion("o-move-1-linked"); got.body["user_id"] != 1.0 || got.body["new_user"] != false {
		t.Fatalf("openid linked by unionid: id %v new %v, want 1 false", got.body["user_id"], got.body["new_user"])
	}
	old.stop()

	dump := filepath.Join(c.dir, "site.jsonl")
	for _, args := range [][]string{
		{"wechat-auth", "export", "--db", file, "--app", pgApp, "--out", dump},
		{"wechat-auth", "import", "--db", dsn, "--app", pgApp, "--in", dump},
	} {
		cmd := exec.Command(c.caddy, args...)
		cmd.Env = c.env("cli")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("caddy %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}

	moved := c.site("moved", dsn)
	a := c.call("GET", moved.site+"/x", nil, tok)
	expect(t, a, 200, "")
	if !strings.HasPrefix(a.raw, "user=2 ") {
		t.Errorf("the moved site sees %q, want user 2", a.raw)
	}
	expect(t, c.call("POST", moved.site+"/wx/refresh", map[string]string{"refresh_token": rt}, ""), 200, "")
	if got := c.login(moved, "o-move-1"); got.body["user_id"] != 1.0 || got.body["new_user"] != false {
		t.Errorf("returning user on the moved site: id %v new %v, want 1 false", got.body["user_id"], got.body["new_user"])
	}
	// The moved site does not link by unionid: only the moved index
	// entry can lead the linked openid to user 1.
	if got := c.login(moved, "o-move-1-linked"); got.body["user_id"] != 1.0 || got.body["new_user"] != false {
		t.Errorf("linked openid on the moved site: id %v new %v, want 1 false", got.body["user_id"], got.body["new_user"])
	}
	if got := c.login(moved, "o-move-3"); got.body["user_id"] != 3.0 || got.body["new_user"] != true {
		t.Errorf("new user on the moved site: id %v new %v, want 3 true", got.body["user_id"], got.body["new_user"])
	}
	// The logout of a moved session holds on the moved site.
	expect(t, c.call("POST", moved.site+"/wx/logout", map[string]any{}, tok), 200, "")
	expect(t, c.call("GET", moved.site+"/x", nil, tok), 401, "invalid_token")
}
