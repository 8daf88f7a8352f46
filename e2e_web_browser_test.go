package wechatauth_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/wxauth/caddy-wechat-auth/internal/testbrowser"
)

// TestE2EWebBrowser drives headless Chromium through the whole redirect
// dance against a real Caddy and the emulator: a navigation to a protected
// page goes to the login, to the emulator's QR-login page, back through the
// callback when Allow is clicked, and ends on the page showing the user.
// The session cookies are HttpOnly (the page's script cannot read them)
// and SameSite=Lax, and a second navigation reaches the page with no
// redirect at all: no WeChat round trip.
func TestE2EWebBrowser(t *testing.T) {
	ctx := testbrowser.Start(t)
	newWebE2E(t, "")

	step := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		if err := chromedp.Do(sctx, actions...); err != nil {
			body, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
			loc, _ := chromedp.Run(ctx, chromedp.Location())
			t.Fatalf("%s: %v\nat %s: %s", what, err, loc, body)
		}
	}
	eval := func(expr string) string {
		t.Helper()
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		v, err := chromedp.Run(sctx, chromedp.Evaluate[string](expr))
		if err != nil {
			t.Fatalf("evaluating %s: %v", expr, err)
		}
		return v
	}
	page := webSite + "/orders?id=7"

	// The protected page sends the browser to WeChat's (the emulator's)
	// QR-login page: Chromium is not WeChat.
	step("opening the protected page", chromedp.Navigate(page), chromedp.WaitVisible("#allow"))
	if loc := eval(`location.href`); !strings.HasPrefix(loc, webWX+"/connect/qrconnect?appid="+webSiteApp) {
		t.Fatalf("the login went to %s", loc)
	}
	step("allowing", chromedp.SetValue("#openid", "o_chromium"), chromedp.SetValue("#unionid", "u_chromium"),
		chromedp.Click("#allow"))
	// The click starts a chain of navigations (emulator, callback, page);
	// a poll that meets one of them in flight is asked again.
	arrived := chromedp.Poll[chromedp.Void](fmt.Sprintf(`location.href === %q && document.body.innerText.includes("user=1")`, page),
		chromedp.WithPollingTimeout(15*time.Second))
	var werr error
	for range 5 {
		sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		werr = chromedp.Do(sctx, arrived)
		cancel()
		if werr == nil || !(strings.Contains(werr.Error(), "navigated or closed") || strings.Contains(werr.Error(), "Cannot find context")) {
			break
		}
	}
	if werr != nil {
		t.Fatalf("waiting for the page after Allow: %v (at %s)", werr, eval(`location.href`))
	}
	if body := eval(`document.body.innerText`); !strings.Contains(body, "user=1 openid=o_chromium") || strings.Contains(body, "wa=") {
		t.Fatalf("the page shows %q", body)
	}

	// The cookies, as the browser keeps them.
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	res, err := chromedp.Call(sctx, network.GetCookies, network.GetCookiesParams{URLs: []string{webSite + "/"}})
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]*network.Cookie{}
	for _, c := range res.Cookies {
		got[c.Name] = c
	}
	for _, name := range []string{"wa", "wa_refresh"} {
		c := got[name]
		if c == nil || !c.HTTPOnly || c.SameSite != network.CookieSameSiteLax || c.Path != "/" || c.Secure {
			t.Fatalf("cookie %s: %+v", name, c)
		}
	}
	if _, ok := got["wa_state"]; ok {
		t.Fatal("the state cookie outlived the callback")
	}
	if dc := eval(`document.cookie`); strings.Contains(dc, "wa") {
		t.Fatalf("the page's script can read the session cookies: %q", dc)
	}

	// A second navigation: straight to the page, no redirect on the way.
	step("opening the page again", chromedp.Navigate(webSite+"/orders?id=8"),
		chromedp.Poll[chromedp.Void](`document.body && document.body.innerText.includes("user=1")`,
			chromedp.WithPollingTimeout(15*time.Second)))
	if n := eval(`String(performance.getEntriesByType("navigation")[0].redirectCount)`); n != "0" {
		t.Fatalf("the second navigation was redirected %s times", n)
	}
	if loc := eval(`location.href`); loc != webSite+"/orders?id=8" {
		t.Fatalf("the second navigation ended at %s", loc)
	}
}
