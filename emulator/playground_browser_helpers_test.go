package emulator_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
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
	"github.com/wxauth/caddy-wechat-auth/internal/testbrowser"
)

// screenshotEnv names a directory that also receives the test's
// screenshots (they always go to the test's temporary directory).
const screenshotEnv = "WECHAT_AUTH_SCREENSHOT_DIR"

// browserPage is one headless Chromium tab for a test, with what the page
// logged as errors collected.
type browserPage struct {
	t     *testing.T
	ctx   context.Context
	shots string

	consoleMu   sync.Mutex
	consoleErrs []string
}

// newBrowserPage starts Chromium (ending the test when there is none) and
// returns its first tab, on about:blank.
func newBrowserPage(t *testing.T) *browserPage {
	t.Helper()
	ctx := testbrowser.Start(t, chromedp.WindowSize(1440, 1000))
	p := &browserPage{t: t, ctx: ctx, shots: t.TempDir()}
	consoleCtx, stopConsole := context.WithCancel(ctx)
	t.Cleanup(stopConsole)
	go func() {
		for m, err := range chromedp.Console(consoleCtx) {
			if err != nil {
				return
			}
			if m.IsException() || m.Type == chromedp.ConsoleError {
				p.consoleMu.Lock()
				p.consoleErrs = append(p.consoleErrs, m.String())
				p.consoleMu.Unlock()
			}
		}
	}()
	return p
}

// screenshot saves the whole page as name (a PNG file name).
func (p *browserPage) screenshot(name string) {
	p.t.Helper()
	png, err := chromedp.Run(p.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		p.t.Fatalf("screenshot: %v", err)
	}
	path := filepath.Join(p.shots, name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		p.t.Fatal(err)
	}
	if dir := os.Getenv(screenshotEnv); dir != "" {
		if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
			p.t.Fatal(err)
		}
	}
	p.t.Logf("screenshot: %s", path)
}

// step runs actions with a bound on their time; on failure it saves
// failedShot and ends the test showing the page's panels.
func (p *browserPage) step(failedShot, what string, actions ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	sctx, cancel := context.WithTimeout(p.ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(sctx, actions...); err != nil {
		p.screenshot(failedShot)
		p.t.Fatalf("%s: %v\nstatus: %s\nresult: %s\nlog: %s", what, err, p.text("#status"), p.text("#result"), p.text("#log"))
	}
}

// text returns the text of the first element matching sel, or a note why
// there is none.
func (p *browserPage) text(sel string) string {
	return text(p.t, p.ctx, sel)
}

// eval evaluates a JavaScript expression in the page, bounded in time.
func eval[T any](p *browserPage, expr string) T {
	p.t.Helper()
	ectx, cancel := context.WithTimeout(p.ctx, 5*time.Second)
	defer cancel()
	v, err := chromedp.Run(ectx, chromedp.Evaluate[T](expr))
	if err != nil {
		p.t.Fatalf("evaluating %s: %v", expr, err)
	}
	return v
}

// checkConsole reports every error the page logged, except the browser's
// notes of failed loads with one of the allowed statuses (the page's own
// 401s, for one, are expected answers).
func (p *browserPage) checkConsole(allowed ...int) {
	p.t.Helper()
	p.consoleMu.Lock()
	defer p.consoleMu.Unlock()
next:
	for _, e := range p.consoleErrs {
		for _, s := range allowed {
			if strings.Contains(e, fmt.Sprintf("status of %d", s)) {
				continue next
			}
		}
		p.t.Errorf("browser console: %s", e)
	}
}

// poll waits until the expression is true, evaluating it every 50 ms
// rather than at every animation frame: a page whose tab is in the
// background (behind the tab the web-view button opens) paints no frames.
func poll(expr string, timeout time.Duration) chromedp.Action[chromedp.Void] {
	return chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(timeout))
}

// waitText waits until the element's text contains want.
func waitText(sel, want string) chromedp.Action[chromedp.Void] {
	return poll(fmt.Sprintf(`document.querySelector(%q).textContent.includes(%q)`, sel, want), 15*time.Second)
}

// click clicks a button once it is enabled again (its last action done).
func click(sel string) chromedp.Action[chromedp.Void] {
	return poll(fmt.Sprintf(`(() => { const b = document.querySelector(%q); if (b.disabled) return false; b.click(); return true; })()`, sel), 15*time.Second)
}

// setInput sets an input's or a select's value and tells the page.
func setInput(sel, value string) chromedp.Action[chromedp.Void] {
	return poll(fmt.Sprintf(
		`(() => { const e = document.querySelector(%q); e.value = %q; e.dispatchEvent(new Event('change')); return e.value === %q; })()`, sel, value, value), 5*time.Second)
}

// waitIdle waits until a button is enabled again.
func waitIdle(sel string) chromedp.Action[chromedp.Void] {
	return poll(fmt.Sprintf(`!document.querySelector(%q).disabled`, sel), 15*time.Second)
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
