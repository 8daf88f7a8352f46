package wechatauth_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wxauth/caddy-wechat-auth/internal/pgtest"
)

// TestE2EPostgresOps builds Caddy once and runs the operations scenarios
// on PostgreSQL: a reload while the database is unreachable, an instance
// started with another app_secret, and a change of app_secret.
func TestE2EPostgresOps(t *testing.T) {
	c := newPGCluster(t)
	t.Run("reload without the database", func(t *testing.T) { testPGReloadWithoutDB(t, c.with(t)) })
	t.Run("another app_secret", func(t *testing.T) { testPGOtherAppSecret(t, c.with(t)) })
	t.Run("rotate app_secret", func(t *testing.T) { testPGRotateSecret(t, c.with(t)) })
}

// sitesWith is the protected site on addr (db, app secret) followed by
// an unrelated site on other answering text.
func (c *pgCluster) sitesWith(addr, db, secret, other, text string) string {
	site := strings.Replace(c.siteBlock(addr, db), "app_secret e2e-pg-app-secret", "app_secret "+secret, 1)
	return fmt.Sprintf("%s\n\nhttp://%s {\n\tbind 127.0.0.1\n\trespond %q\n}\n", site, other, text)
}

// reload rewrites the config file of the process called name with sites
// (keeping its global block, hence its admin address) and runs
// `caddy reload` against it.
func (c *pgCluster) reload(name, sites string) {
	c.t.Helper()
	path := filepath.Join(c.dir, name+".Caddyfile")
	old, err := os.ReadFile(path)
	if err != nil {
		c.t.Fatal(err)
	}
	global, _, ok := strings.Cut(string(old), "\n}\n")
	if !ok {
		c.t.Fatalf("no global block in %s", path)
	}
	if err := os.WriteFile(path, []byte(global+"\n}\n\n"+sites+"\n"), 0o600); err != nil {
		c.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.caddy, "reload", "--config", path, "--adapter", "caddyfile")
	cmd.Env = c.env(name)
	if out, err := cmd.CombinedOutput(); err != nil {
		c.t.Fatalf("caddy reload: %v\n%s", err, out)
	}
}

// adminAddr is the admin address in the config file of the process
// called name.
func (c *pgCluster) adminAddr(name string) string {
	c.t.Helper()
	b, err := os.ReadFile(filepath.Join(c.dir, name+".Caddyfile"))
	if err != nil {
		c.t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^\tadmin (\S+)$`).FindSubmatch(b)
	if m == nil {
		c.t.Fatal("no admin address in the config")
	}
	return string(m[1])
}

// usersGauge reads caddy_wechat_auth_users of pgApp from the metrics on
// the admin endpoint of the process called name (-1: no such series).
func (c *pgCluster) usersGauge(name string) float64 {
	c.t.Helper()
	res, err := c.client.Get("http://" + c.adminAddr(name) + "/metrics")
	if err != nil {
		c.t.Fatalf("reading metrics: %v", err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	m := regexp.MustCompile(`(?m)^caddy_wechat_auth_users\{app_id="` + pgApp + `"\} (\S+)$`).FindSubmatch(b)
	if m == nil {
		return -1
	}
	v, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		c.t.Fatalf("users gauge %q: %v", m[1], err)
	}
	return v
}

// testPGReloadWithoutDB reloads the config of an instance whose database
// has become unreachable (a changed unrelated site): the reload succeeds,
// issued tokens keep working, the endpoints answer 503 store_unavailable
// until the database returns, then everything works again.
func testPGReloadWithoutDB(t *testing.T, c *pgCluster) {
	dsn, _ := pgtest.SchemaDSN(t)
	proxy := pgtest.NewProxy(t, pgtest.Target(t))
	db := pgtest.ProxyDSN(t, dsn, proxy)
	addr, other := freeAddr(t), freeAddr(t)
	p := c.start("reload", c.sitesWith(addr, db, "e2e-pg-app-secret", other, "v1"), "http://"+addr+"/")
	p.site = "http://" + addr
	lg := c.login(p, "o-reload-1")
	tok, rt := lg.body["token"].(string), lg.body["refresh_token"].(string)
	// The users gauge is counted in the background at start.
	within(t, 10*time.Second, "users gauge seeded", func() bool { return c.usersGauge("reload") == 1 })

	proxy.Stop()
	c.reload("reload", c.sitesWith(addr, db, "e2e-pg-app-secret", other, "v2"))
	if a := c.call("GET", "http://"+other+"/", nil, ""); a.status != 200 || a.raw != "v2" {
		t.Fatalf("the unrelated site after the reload: %d %q, want v2", a.status, a.raw)
	}
	// A second reload, of the same config, while still unreachable.
	c.reload("reload", c.sitesWith(addr, db, "e2e-pg-app-secret", other, "v3"))
	if a := c.call("GET", "http://"+other+"/", nil, ""); a.raw != "v3" {
		t.Fatalf("the unrelated site after the second reload: %q, want v3", a.raw)
	}

	expect(t, c.call("GET", p.site+"/x", nil, tok), 200, "")
	for name, a := range map[string]answer{
		"login":   c.call("POST", p.site+"/wx/login", map[string]string{"code": c.mint("o-reload-2")}, ""),
		"refresh": c.call("POST", p.site+"/wx/refresh", map[string]string{"refresh_token": rt}, ""),
		"profile": c.call("GET", p.site+"/wx/profile", nil, tok),
		"logout":  c.call("POST", p.site+"/wx/logout", map[string]any{}, tok),
	} {
		expect(t, a, 503, "store_unavailable")
		if a.header.Get("Retry-After") == "" {
			t.Errorf("%s: 503 without Retry-After", name)
		}
	}
	if g := c.usersGauge("reload"); g != 1 {
		t.Errorf("users gauge after the reload: %v, want 1 (kept)", g)
	}

	proxy.Start()
	within(t, 10*time.Second, "login after the database came back", func() bool {
		return c.call("POST", p.site+"/wx/login", map[string]string{"code": c.mint("o-reload-3")}, "").status == 200
	})
	r := c.call("POST", p.site+"/wx/refresh", map[string]string{"refresh_token": rt}, "")
	expect(t, r, 200, "")
	expect(t, c.call("GET", p.site+"/x", nil, r.body["token"].(string)), 200, "")
	expect(t, c.call("POST", p.site+"/wx/logout", map[string]any{}, tok), 200, "")
	expect(t, c.call("GET", p.site+"/x", nil, tok), 401, "invalid_token")
	if g := c.usersGauge("reload"); g != 2 {
		t.Errorf("users gauge after a new user: %v, want 2", g)
	}
}

// startFails runs `caddy run` with sites and returns its output; the
// process must exit with an error.
func (c *pgCluster) startFails(name, sites string) string {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.caddy, "run", "--config", c.config(name, sites), "--adapter", "caddyfile")
	cmd.Env = c.env(name)
	out, err := cmd.CombinedOutput()
	if err == nil || ctx.Err() != nil {
		c.t.Fatalf("caddy run of %s did not fail: %v\n%s", name, err, out)
	}
	return string(out)
}

// testPGOtherAppSecret starts a second instance on the database of a
// running one with another app_secret: it refuses to start, naming the
// app, and the first instance's keys are untouched (its tokens verify on
// a third instance with the right app_secret).
func testPGOtherAppSecret(t *testing.T, c *pgCluster) {
	dsn, _ := pgtest.SchemaDSN(t)
	a := c.site("first", dsn)
	tok := c.login(a, "o-secret-1").body["token"].(string)

	out := c.startFails("wrong", c.sitesWith(freeAddr(t), dsn, "another-app-secret", freeAddr(t), "x"))
	for _, want := range []string{pgApp, "app_secret", "rotate-secret", "signing_key_ed25519"} {
		if !strings.Contains(out, want) {
			t.Errorf("start-up error does not mention %s:\n%s", want, out)
		}
	}
	for _, secret := range []string{"another-app-secret", "e2e-pg-app-secret"} {
		if strings.Contains(out, secret) {
			t.Errorf("start-up error reveals an app secret:\n%s", out)
		}
	}

	b := c.site("third", dsn)
	expect(t, c.call("GET", b.site+"/x", nil, tok), 200, "")
	expect(t, c.call("GET", a.site+"/x", nil, c.login(b, "o-secret-2").body["token"].(string)), 200, "")
}

// testPGRotateSecret changes app_secret with `caddy wechat-auth
// rotate-secret` while an instance runs: tokens issued before stay valid
// on an instance started with the new app_secret, and the old instance
// keeps working; an instance started with the old app_secret afterwards
// is refused.
func testPGRotateSecret(t *testing.T, c *pgCluster) {
	dsn, _ := pgtest.SchemaDSN(t)
	old := c.site("before", dsn)
	lg := c.login(old, "o-rotate-1")
	tok, rt := lg.body["token"].(string), lg.body["refresh_token"].(string)

	cmd := exec.Command(c.caddy, "wechat-auth", "rotate-secret", "--db", dsn, "--app", pgApp,
		"--old-secret-env", "OLD_SECRET", "--new-secret-env", "NEW_SECRET")
	cmd.Env = append(c.env("cli"), "OLD_SECRET=e2e-pg-app-secret", "NEW_SECRET=rotated-app-secret")
	out, err := cmd.CombinedOutput()
	if err != nil || strings.Count(string(out), "resealed") != 2 {
		t.Fatalf("rotate-secret: %v\n%s", err, out)
	}

	addr := freeAddr(t)
	rotated := c.start("after", c.sitesWith(addr, dsn, "rotated-app-secret", freeAddr(t), "x"), "http://"+addr+"/")
	rotated.site = "http://" + addr
	expect(t, c.call("GET", rotated.site+"/x", nil, tok), 200, "")
	r := c.call("POST", rotated.site+"/wx/refresh", map[string]string{"refresh_token": rt}, "")
	expect(t, r, 200, "")
	// The instance still running with the old app_secret verifies the
	// new instance's tokens: the keys did not change.
	expect(t, c.call("GET", old.site+"/x", nil, r.body["token"].(string)), 200, "")

	out2 := c.startFails("stale", c.siteBlock(freeAddr(t), dsn))
	if !strings.Contains(out2, "app_secret") || !strings.Contains(out2, pgApp) {
		t.Errorf("start with the old app_secret after the rotation:\n%s", out2)
	}
}
