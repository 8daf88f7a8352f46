// Package testbrowser starts headless Chromium for the project's browser
// tests. Where no Chromium is installed the test is ended through
// testenv.Missing: a skip on a laptop, a failure in CI.
package testbrowser

import (
	"context"
	"os"
	"os/exec"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/wxauth/caddy-wechat-auth/internal/testenv"
)

// EnvChromium names a browser binary to use instead of the ones looked up
// on PATH.
const EnvChromium = "WECHAT_AUTH_CHROMIUM"

// Find returns the Chromium or Chrome binary to run, ending the test when
// there is none.
func Find(t testing.TB) string {
	t.Helper()
	if p := os.Getenv(EnvChromium); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	testenv.Missing(t, "Chromium is not installed", "install it (Debian: apt-get install chromium) or set "+EnvChromium+" to a Chrome or Chromium binary")
	return ""
}

// Start finds Chromium, starts it headless with a fresh profile and the
// flags that keep it off the network (no background requests, no QUIC),
// plus opts, and returns its first tab, already on about:blank. The
// browser is stopped when the test ends.
func Start(t testing.TB, opts ...chromedp.ExecAllocatorOption) context.Context {
	t.Helper()
	bin := Find(t)
	all := append([]chromedp.ExecAllocatorOption{
		chromedp.ExecPath(bin),
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
	}, opts...)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), all...)
	t.Cleanup(cancelAlloc)
	ctx, cancelCtx := chromedp.NewContext(allocCtx)
	t.Cleanup(cancelCtx)
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("starting %s: %v", bin, err)
	}
	return ctx
}
