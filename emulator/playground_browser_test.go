package emulator_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	_ "github.com/caddyserver/caddy/v2/modules/standard"
	"github.com/chromedp/chromedp"

	_ "github.com/wxauth/caddy-wechat-auth"
	_ "github.com/wxauth/caddy-wechat-auth/emulator"
	"github.com/wxauth/caddy-wechat-auth/internal/testenv"
)

// chromiumEnv names a browser binary to use instead of the ones looked up
// on PATH.
const chromiumEnv = "WECHAT_AUTH_CHROMIUM"

// screenshotEnv names a directory that also receives the test's
// screenshots (they always go to the test's temporary directory).
const screenshotEnv = "WECHAT_AUTH_SCREENSHOT_DIR"

// TestPlaygroundInBrowser drives the playground page in headless Chromium
// against a real Caddy running the demo's example.Caddyfile (on free
// loopback ports): log in, call the protected site, refresh, replay a spent
// refresh token, re-login, a WeChat fault, log out, log out everywhere,
// checking what the page shows.
func TestPlaygroundInBrowser(t *testing.T) {
	browser := findChromium(t)
	emuURL, siteURL := startDemo(t)

	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(browser),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1440, 1000),
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	ctx, cancelCtx := chromedp.NewContext(allocCtx)
	t.Cleanup(cancelCtx)

	// Start the browser, then collect what the page throws.
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("starting %s: %v", browser, err)
	}
	var (
		consoleMu   sync.Mutex
		consoleErrs []string
	)
	consoleCtx, stopConsole := context.WithCancel(ctx)
	t.Cleanup(stopConsole)
	go func() {
		for m, err := range chromedp.Console(consoleCtx) {
			if err != nil {
				return
			}
			if m.IsException() || m.Type == chromedp.ConsoleError {
				consoleMu.Lock()
				consoleErrs = append(consoleErrs, m.String())
				consoleMu.Unlock()
			}
		}
	}()

	shots := t.TempDir()
	screenshot := func(name string) {
		t.Helper()
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot: %v", err)
		}
		path := filepath.Join(shots, name)
		if err := os.WriteFile(path, png, 0o644); err != nil {
			t.Fatal(err)
		}
		if dir := os.Getenv(screenshotEnv); dir != "" {
			if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		t.Logf("screenshot: %s", path)
	}

	// step runs actions with a bound on their time.
	step := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		if err := chromedp.Do(sctx, actions...); err != nil {
			screenshot("failed.png")
			t.Fatalf("%s: %v\nstatus: %s\nresult: %s\nlog: %s", what, err, text(t, ctx, "#status"), text(t, ctx, "#result"), text(t, ctx, "#log"))
		}
	}
	// waitText waits until the element's text contains want.
	waitText := func(sel, want string) chromedp.Action[chromedp.Void] {
		return chromedp.Poll[chromedp.Void](
			fmt.Sprintf(`document.querySelector(%q).textContent.includes(%q)`, sel, want),
			chromedp.WithPollingTimeout(15*time.Second))
	}
	// click clicks a button once it is enabled again (its last action done).
	click := func(sel string) chromedp.Action[chromedp.Void] {
		return chromedp.Poll[chromedp.Void](
			fmt.Sprintf(`(() => { const b = document.querySelector(%q); if (b.disabled) return false; b.click(); return true; })()`, sel),
			chromedp.WithPollingTimeout(15*time.Second))
	}
	setInput := func(sel, value string) chromedp.Action[chromedp.Void] {
		return chromedp.Poll[chromedp.Void](fmt.Sprintf(
			`(() => { const e = document.querySelector(%q); e.value = %q; e.dispatchEvent(new Event('change')); return true; })()`, sel, value))
	}
	waitIdle := func(sel string) chromedp.Action[chromedp.Void] {
		return chromedp.Poll[chromedp.Void](fmt.Sprintf(`!document.querySelector(%q).disabled`, sel),
			chromedp.WithPollingTimeout(15*time.Second))
	}

	const openid = "o_browser_user"
	step("opening the playground",
		chromedp.Navigate(emuURL+"/emulator/playground"),
		chromedp.WaitVisible("#login"),
		waitText("h1", "wechat_auth playground"),
		setInput("#site", siteURL+"/"),
		setInput("#openid", openid),
		setInput("#path", "/hello"),
	)

	// Log in: the page shows the session and the token's claims.
	step("logging in", click("#login"), waitText("#status", "Logged in as user "), waitIdle("#login"))
	status := text(t, ctx, "#status")
	uid := regexp.MustCompile(`Logged in as user (\d+)`).FindStringSubmatch(status)
	if uid == nil {
		t.Fatalf("status %q names no user", status)
	}
	claims := text(t, ctx, "#claims")
	for _, want := range []string{`"sub": "` + uid[1] + `"`, `"openid": "` + openid + `"`, `"typ":"at+jwt"`, `"sid": "`} {
		if !strings.Contains(claims, want) {
			t.Errorf("claims do not show %s:\n%s", want, claims)
		}
	}
	if res := text(t, ctx, "#result"); !strings.Contains(res, `"new_user": true`) || strings.Contains(res, `"token": "ey`) {
		t.Errorf("login result shows no new user, or a whole token:\n%s", res)
	}

	// The protected call: the upstream received the identity headers.
	step("calling the protected site", click("#call"), waitText("#identity", "X-WeChat-User-ID: "+uid[1]), waitIdle("#call"))
	identity := text(t, ctx, "#identity")
	for _, want := range []string{"X-WeChat-OpenID: " + openid, "X-WeChat-AppID: wxdemo000000000001"} {
		if !strings.Contains(identity, want) {
			t.Errorf("identity panel lacks %q:\n%s", want, identity)
		}
	}
	if res := text(t, ctx, "#result"); !strings.Contains(res, `"statusCode": 200`) {
		t.Errorf("call result: %s", res)
	}
	sidBefore := claimValue(t, claims, "sid")
	jtiBefore := claimValue(t, claims, "jti")

	// Refresh twice: the session stays, the token changes, two spent
	// refresh tokens are offered for replay.
	step("refreshing", click("#refresh"), waitText("#log", "auth change: refresh"), waitIdle("#refresh"),
		click("#refresh"), waitIdle("#refresh"),
		chromedp.Poll[chromedp.Void](`document.querySelectorAll('#spent option[value]:not([value=""])').length === 2`,
			chromedp.WithPollingTimeout(15*time.Second)))
	claims = text(t, ctx, "#claims")
	if claimValue(t, claims, "sid") != sidBefore || claimValue(t, claims, "jti") == jtiBefore {
		t.Errorf("after refresh: sid %s (was %s), jti %s (was %s)", claimValue(t, claims, "sid"), sidBefore, claimValue(t, claims, "jti"), jtiBefore)
	}
	if res := text(t, ctx, "#result"); !strings.Contains(res, "Refresh: ") || !strings.Contains(res, `"expires_in"`) || strings.Contains(res, "refresh_token") {
		t.Errorf("refresh result: %s", res)
	}
	screenshot("playground-refreshed.png")

	// Replay the oldest spent refresh token: theft, the session ends.
	step("replaying an old refresh token", click("#replay"), waitText("#result", "invalid_grant"), waitIdle("#replay"))
	if res := text(t, ctx, "#result"); !strings.Contains(res, "revoked") {
		t.Errorf("replay result does not say the session was revoked: %s", res)
	}

	// The next call finds out and logs in again, silently, once.
	step("calling after the replay", click("#call"), waitText("#log", "auth change: relogin"), waitIdle("#call"))
	if res := text(t, ctx, "#result"); !strings.Contains(res, `"statusCode": 200`) {
		t.Errorf("call after replay: %s", res)
	}
	log := text(t, ctx, "#log")
	for _, want := range []string{siteURL + "/wx/refresh → 401", "wx.login() → POST /emulator/code → 200", siteURL + "/wx/login → 200"} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	if sid := claimValue(t, text(t, ctx, "#claims"), "sid"); sid == sidBefore {
		t.Errorf("re-login kept session %s", sid)
	}
	if strings.Contains(log, `"refresh_token": "`) && regexp.MustCompile(`"refresh_token": "[A-Za-z0-9_-]{20,}"`).MatchString(log) {
		t.Errorf("the request log shows a whole refresh token")
	}
	screenshot("playground.png")

	// A WeChat fault: the high-risk-user errcode reaches the page as
	// user_blocked; the next login works again.
	step("injecting a fault",
		chromedp.SetValue("#fault-kind", "40226"),
		chromedp.SetValue("#fault-path", "/sns/jscode2session"),
		click("#fault-inject"), waitText("#result", `"queued": 1`), waitIdle("#fault-inject"),
		click("#logout"), waitText("#status", "Logged out"), waitIdle("#logout"),
		click("#login"), waitText("#result", "user_blocked"), waitIdle("#login"),
		click("#login"), waitText("#status", "Logged in as user "+uid[1]), waitIdle("#login"),
	)

	// Log out everywhere.
	step("logging out everywhere", click("#logout-all"), waitText("#status", "Logged out"), waitIdle("#logout-all"),
		waitText("#result", `Log out everywhere: {`), waitText("#claims", "no token"))
	if res := text(t, ctx, "#result"); !strings.Contains(res, `"status": "success"`) {
		t.Errorf("logout everywhere: %s", res)
	}
	screenshot("playground-logged-out.png")

	consoleMu.Lock()
	defer consoleMu.Unlock()
	for _, e := range consoleErrs {
		// The page's own 401s are logged by the browser as failed loads;
		// anything else is a bug in the page.
		if strings.Contains(e, "status of 401") || strings.Contains(e, "status of 403") {
			continue
		}
		t.Errorf("browser console: %s", e)
	}
}

// findChromium returns the browser to drive, or ends the test.
func findChromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv(chromiumEnv); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	testenv.Missing(t, "Chromium is not installed", "install it (Debian: apt-get install chromium) or set "+chromiumEnv+" to a Chrome or Chromium binary")
	return ""
}

// startDemo runs example.Caddyfile in this process, moved to free loopback
// ports with its data in a temporary directory, and returns the emulator's
// and the protected site's URLs.
func startDemo(t *testing.T) (emuURL, siteURL string) {
	t.Helper()
	src, err := os.ReadFile(filepath.Join("..", "example.Caddyfile"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	t.Setenv("HOME", dir)
	t.Setenv("XDG_DATA_HOME", filepath.Join(dir, "data"))
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(dir, "config"))
	admin, emu, site := freePort(t), freePort(t), freePort(t)
	cfg := string(src)
	for _, r := range []struct{ old, new string }{
		{"admin localhost:2019", fmt.Sprintf("admin 127.0.0.1:%d\n\tpersist_config off\n\tgrace_period 1s\n\tstorage file_system %s", admin, filepath.Join(dir, "storage"))},
		{"api_base http://127.0.0.1:8081", "api_base http://127.0.0.1:8081\n\t\tdb " + filepath.Join(dir, "wechat_auth.db")},
		{"127.0.0.1:8081", fmt.Sprintf("127.0.0.1:%d", emu)},
		{"127.0.0.1:8080", fmt.Sprintf("127.0.0.1:%d", site)},
	} {
		if !strings.Contains(cfg, r.old) {
			t.Fatalf("example.Caddyfile no longer contains %q; update this test", r.old)
		}
		cfg = strings.ReplaceAll(cfg, r.old, r.new)
	}
	adapted, warnings, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(cfg), nil)
	if err != nil {
		t.Fatalf("adapting example.Caddyfile: %v", err)
	}
	for _, w := range warnings {
		t.Logf("adapt warning: %s", w.String())
	}
	if err := caddy.Load(adapted, true); err != nil {
		t.Fatalf("loading example.Caddyfile: %v", err)
	}
	t.Cleanup(func() {
		if err := caddy.Stop(); err != nil {
			t.Errorf("stopping caddy: %v", err)
		}
	})
	emuURL = fmt.Sprintf("http://127.0.0.1:%d", emu)
	siteURL = fmt.Sprintf("http://127.0.0.1:%d", site)
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := client.Get(siteURL + "/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusUnauthorized {
				return emuURL, siteURL
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the demo site did not answer 401 within 15s (last error: %v)", err)
		}
		time.Sleep(50 * time.Millisecond) // waiting for a listener, not for logic
	}
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// text returns the text of the first element matching sel, or a note why
// there is none.
func text(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	s, err := chromedp.Run(tctx, chromedp.Evaluate[string](fmt.Sprintf(`(document.querySelector(%q) || {textContent: ""}).textContent`, sel)))
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return "(page did not answer)"
		}
		return "(" + err.Error() + ")"
	}
	return s
}

// claimValue returns a string claim from the claims panel's JSON.
func claimValue(t *testing.T, claims, name string) string {
	t.Helper()
	m := regexp.MustCompile(`"` + regexp.QuoteMeta(name) + `": "([^"]*)"`).FindStringSubmatch(claims)
	if m == nil {
		t.Fatalf("claims panel has no %s:\n%s", name, claims)
	}
	return m[1]
}
