package emulator_test

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestPlaygroundInBrowser drives the playground page in headless Chromium
// against a real Caddy running the demo's example.Caddyfile (on free
// loopback ports): log in, call the protected site, refresh, replay a spent
// refresh token, re-login, a WeChat fault, log out, log out everywhere,
// checking what the page shows.
func TestPlaygroundInBrowser(t *testing.T) {
	p := newBrowserPage(t)
	emuURL, siteURL := startDemo(t)
	ctx := p.ctx
	screenshot := p.screenshot
	step := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		p.step("failed.png", what, actions...)
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
		poll(`document.querySelectorAll('#spent option[value]:not([value=""])').length === 2`, 15*time.Second))
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

	// The page's own 401s and 403s are logged by the browser as failed
	// loads; anything else is a bug in the page.
	p.checkConsole(401, 403)
}
