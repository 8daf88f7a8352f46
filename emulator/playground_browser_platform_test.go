package emulator_test

import (
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// TestPlaygroundPlatformInBrowser drives the playground's platform switch
// in headless Chromium against the demo's example.Caddyfile, whose
// emulator and site serve WeChat only: every other platform's login fails
// at once, naming the mismatch, instead of logging in a "QQ" user through
// WeChat's exchange; back on WeChat the login works.
func TestPlaygroundPlatformInBrowser(t *testing.T) {
	p := newBrowserPage(t)
	emuURL, siteURL := startDemo(t)
	step := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		p.step("platform-failed.png", what, actions...)
	}

	// ?platform= preselects the platform.
	step("opening the playground for QQ",
		chromedp.Navigate(emuURL+"/emulator/playground?platform=qq"),
		chromedp.WaitVisible("#login"),
		setInput("#site", siteURL+"/"),
		setInput("#openid", "o_browser_platform"),
	)
	if got := eval[string](p, `document.querySelector('#platform').value`); got != "qq" {
		t.Fatalf("?platform=qq selected %q", got)
	}

	// Each platform's host object (wx-shaped qq, tt and swan; my with
	// getAuthCode) gets the emulator's WeChat code and refuses it.
	for _, c := range []struct{ platform, call string }{
		{"qq", "qq.login"},
		{"douyin", "tt.login"},
		{"alipay", "my.getAuthCode"},
		{"baidu", "swan.login"},
	} {
		step("logging in on "+c.platform,
			setInput("#platform", c.platform),
			click("#login"), waitText("#result", "Log in failed: "), waitIdle("#login"),
			waitText("#result", c.call+" failed: "),
		)
		res := p.text("#result")
		for _, want := range []string{`"error": "wx_login_failed"`, "mints wechat codes, not " + c.platform + " ones", "`platform " + c.platform + "`"} {
			if !strings.Contains(res, want) {
				t.Errorf("%s: the result lacks %q:\n%s", c.platform, want, res)
			}
		}
		if c.platform == "qq" {
			p.screenshot("playground-platform-mismatch.png")
		}
		// Cleared, so the next platform's failure is its own.
		step("clearing the result", chromedp.Evaluate[chromedp.Void](`document.querySelector('#result').textContent = ''`))
	}
	if status := p.text("#status"); status != "Logged out" {
		t.Errorf("status after the refused logins: %q", status)
	}
	log := p.text("#log")
	if strings.Contains(log, "/wx/login") {
		t.Errorf("a refused code reached the site's login:\n%s", log)
	}
	if !strings.Contains(log, "platform: alipay (the emulator and the site must serve the same platform)") {
		t.Errorf("the log does not show the switch:\n%s", log)
	}

	// Back on WeChat, the platform of both the emulator and the site.
	step("logging in on wechat",
		setInput("#platform", "wechat"),
		click("#login"), waitText("#status", "Logged in as user "), waitIdle("#login"),
	)
	p.checkConsole(401, 403)
}
