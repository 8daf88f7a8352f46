package handler

import (
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wxauth/caddy-wechat-auth/store"
)

const miniUA = "Mozilla/5.0 (iPhone) AppleWebKit MicroMessenger/8.0.50"

// ticketFor asks a ticket with the mini-program's access token.
func (wh *webHarness) ticketFor(access, next string) result {
	wh.t.Helper()
	return wh.call("POST", "/wx/web/ticket", `{"next":"`+next+`"}`, "Authorization", "Bearer "+access)
}

func TestWebTicketEnter(t *testing.T) {
	wh := newWebHarness(t, nil)
	access, _ := wh.login("o-mini")
	tr := wh.ticketFor(access, "/shop?item=1")
	want(t, tr, 200, "")
	if tr.body["expires_in"] != float64(60) {
		t.Fatalf("expires_in = %v", tr.body["expires_in"])
	}
	u, err := url.Parse(tr.body["url"].(string))
	if err != nil || u.Path != "/wx/web/enter" || u.Query().Get("ticket") != tr.body["ticket"] || u.Query().Get("next") != "/shop?item=1" {
		t.Fatalf("url = %v", tr.body["url"])
	}
	if len(tr.body["ticket"].(string)) < 22 {
		t.Fatalf("ticket %q shorter than 128 bits", tr.body["ticket"])
	}

	r := wh.navigate(tr.body["url"].(string))
	if r.status != http.StatusFound || r.header.Get("Location") != "/shop?item=1" {
		t.Fatalf("enter: %d to %q: %s", r.status, r.header.Get("Location"), r.raw)
	}
	cks := setCookies(r)
	for _, name := range []string{"wa", "wa_refresh"} {
		ck := cks[name]
		if ck == nil || !ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode || ck.Path != "/" || ck.Domain != "" || ck.Secure {
			t.Fatalf("cookie %s: %+v", name, ck)
		}
	}
	if cks["wa"].MaxAge != 900 || cks["wa_refresh"].MaxAge != int((720*time.Hour)/time.Second) {
		t.Fatalf("Max-Age: access %d, refresh %d", cks["wa"].MaxAge, cks["wa_refresh"].MaxAge)
	}
	p := wh.navigate("/shop?item=1")
	if p.status != 200 || !strings.HasPrefix(p.raw, "page of user 1") {
		t.Fatalf("page with the cookie: %d %s", p.status, p.raw)
	}
	// A session of its own: the mini-program's session is another.
	if wh.upstream.Get("X-WeChat-User-ID") != "1" || wh.upstream.Get("X-WeChat-OpenID") != "o-mini" {
		t.Fatalf("identity headers %v", wh.upstream)
	}

	// The same ticket again: refused, no cookie.
	wh.jar = map[string]string{}
	again := wh.navigate(tr.body["url"].(string))
	if again.status != http.StatusUnauthorized || !strings.Contains(again.raw, "from the mini-program") || len(setCookies(again)) != 0 {
		t.Fatalf("reused ticket: %d %v %s", again.status, again.header, again.raw)
	}
	if ct := again.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
		t.Fatalf("reused ticket answered %s", ct)
	}
}

func TestWebTicketRefused(t *testing.T) {
	wh := newWebHarness(t, nil)
	access, refresh := wh.login("o-mini")

	// Expired: 60 s.
	tr := wh.ticketFor(access, "/")
	wh.clock.Advance(61 * time.Second)
	if r := wh.navigate(tr.body["url"].(string)); r.status != 401 || len(setCookies(r)) != 0 {
		t.Fatalf("expired ticket: %d", r.status)
	}
	// Missing, forged, oversized.
	for _, q := range []string{"", "?ticket=forged", "?ticket=" + strings.Repeat("x", 200)} {
		if r := wh.navigate("/wx/web/enter" + q); r.status != 401 || len(setCookies(r)) != 0 {
			t.Fatalf("enter%s: %d", q, r.status)
		}
	}
	// Asked with a cookie rather than a header.
	if r := wh.call("POST", "/wx/web/ticket", "", "Cookie", "wa="+access); r.status != 401 {
		t.Fatalf("ticket with the access token in a cookie: %d %s", r.status, r.raw)
	}
	// Asked without any token.
	want(t, wh.call("POST", "/wx/web/ticket", ""), 401, CodeInvalidToken)
	want(t, wh.call("GET", "/wx/web/ticket", ""), 405, CodeMethodNotAllowed)

	// The asking session ends before the ticket is used.
	access, refresh = wh.refreshPair(refresh)
	tr = wh.ticketFor(access, "/")
	want(t, tr, 200, "")
	want(t, wh.call("POST", "/wx/logout", "", "Authorization", "Bearer "+access), 200, "")
	if r := wh.navigate(tr.body["url"].(string)); r.status != 401 || len(setCookies(r)) != 0 {
		t.Fatalf("ticket of an ended session: %d %s", r.status, r.raw)
	}
	// And no new ticket for it.
	want(t, wh.ticketFor(access, "/"), 401, CodeInvalidToken)
}

// refreshPair refreshes and returns the new pair.
func (wh *webHarness) refreshPair(rt string) (string, string) {
	wh.t.Helper()
	r := wh.refresh(rt)
	if r.status != 200 {
		wh.t.Fatalf("refresh: %d %s", r.status, r.raw)
	}
	return r.body["token"].(string), r.body["refresh_token"].(string)
}

func TestWebTicketNextSanitised(t *testing.T) {
	wh := newWebHarness(t, nil)
	access, _ := wh.login("o-mini")
	tr := wh.ticketFor(access, "//evil.example/x")
	u, _ := url.Parse(tr.body["url"].(string))
	if u.Query().Get("next") != "/" {
		t.Fatalf("ticket next = %q", u.Query().Get("next"))
	}
	q := u.Query()
	q.Set("next", "https://evil.example/")
	r := wh.navigate("/wx/web/enter?" + q.Encode())
	if r.status != 302 || r.header.Get("Location") != "/" {
		t.Fatalf("enter with an outside next: %d to %q", r.status, r.header.Get("Location"))
	}
}

func TestWebGuardUnauthenticated(t *testing.T) {
	wh := newWebHarness(t, nil)
	r := wh.navigate("/shop/item?id=7&x=%2F")
	if r.status != 302 {
		t.Fatalf("navigation: %d", r.status)
	}
	u := location(t, r)
	if u.Path != "/wx/web/login" || u.Query().Get("next") != "/shop/item?id=7&x=%2F" {
		t.Fatalf("redirect to %q", r.header.Get("Location"))
	}
	// Not a navigation: 401 JSON.
	want(t, wh.browse("GET", "/api/x", "", "Accept", "application/json"), 401, CodeInvalidToken)
	want(t, wh.browse("POST", "/api/x", "{}"), 401, CodeInvalidToken)
	// Without an OAuth app, a navigation gets a 401 page.
	wh = newWebHarness(t, func(c *WebConfig) { c.OA, c.Site = nil, nil })
	r = wh.navigate("/shop")
	if r.status != 401 || !strings.HasPrefix(r.header.Get("Content-Type"), "text/html") || r.header.Get("WWW-Authenticate") == "" {
		t.Fatalf("no OAuth app: %d %v", r.status, r.header)
	}
}

// enterSession gives the harness's browser a cookie session of a new
// mini-program user, through a ticket.
func (wh *webHarness) enterSession(openid string) {
	wh.t.Helper()
	access, _ := wh.login(openid)
	tr := wh.ticketFor(access, "/")
	if r := wh.navigate(tr.body["url"].(string)); r.status != 302 {
		wh.t.Fatalf("enter: %d %s", r.status, r.raw)
	}
}

func TestWebCookieStripped(t *testing.T) {
	wh := newWebHarness(t, nil)
	wh.enterSession("o")
	wh.jar["theme"] = "dark"
	wh.jar["wa_state"] = "leftover"
	if r := wh.navigate("/p"); r.status != 200 {
		t.Fatalf("%d %s", r.status, r.raw)
	}
	ck := wh.upstream.Get("Cookie")
	if ck != "theme=dark" {
		t.Fatalf("upstream Cookie %q, want only theme=dark", ck)
	}
}

func TestWebInlineRotation(t *testing.T) {
	wh := newWebHarness(t, nil)
	wh.enterSession("o")
	oldAccess, oldRefresh := wh.jar["wa"], wh.jar["wa_refresh"]

	// The access cookie expired (the browser dropped it).
	wh.clock.Advance(16 * time.Minute)
	delete(wh.jar, "wa")
	r := wh.navigate("/p")
	if r.status != 200 {
		t.Fatalf("rotation: %d %s", r.status, r.raw)
	}
	cks := setCookies(r)
	if cks["wa"] == nil || cks["wa_refresh"] == nil || cks["wa_refresh"].Value == oldRefresh {
		t.Fatalf("rotation cookies %v", r.header["Set-Cookie"])
	}
	// A page load that still carried the old cookies (sent at once with
	// the first): the retry window gives it the same pair.
	twin := &webHarness{harness: wh.harness, jar: map[string]string{"wa": oldAccess, "wa_refresh": oldRefresh}}
	r = twin.navigate("/p2")
	if r.status != 200 || setCookies(r)["wa_refresh"].Value != cks["wa_refresh"].Value {
		t.Fatalf("concurrent page load: %d %v", r.status, r.header["Set-Cookie"])
	}
	// An expired access cookie still sent: rotated too.
	wh.clock.Advance(16 * time.Minute)
	r = wh.navigate("/p3")
	if r.status != 200 || setCookies(r)["wa"] == nil {
		t.Fatalf("expired access cookie: %d", r.status)
	}
	// The old refresh cookie replayed after the window: the whole session
	// is revoked.
	twin.jar = map[string]string{"wa_refresh": oldRefresh}
	r = twin.navigate("/p4")
	if r.status != 302 || setCookies(r)["wa_refresh"] == nil || setCookies(r)["wa_refresh"].MaxAge >= 0 {
		t.Fatalf("replay: %d %v", r.status, r.header["Set-Cookie"])
	}
	r = wh.browse("GET", "/api", "", "Accept", "application/json")
	want(t, r, 401, CodeInvalidToken)
	if r.body["message"] != "the session has ended; log in again" {
		t.Fatalf("after reuse: %s", r.raw)
	}
}

func TestWebCSRF(t *testing.T) {
	wh := newWebHarness(t, nil)
	access, _ := wh.login("o-mini")
	wh.enterSession("o")
	for _, tc := range []struct {
		name   string
		hdr    []string
		status int
	}{
		{"cross-site", []string{"Sec-Fetch-Site", "cross-site"}, 403},
		{"same-site other origin", []string{"Sec-Fetch-Site", "same-site"}, 403},
		{"same-origin", []string{"Sec-Fetch-Site", "same-origin"}, 200},
		{"user typed", []string{"Sec-Fetch-Site", "none"}, 200},
		{"origin differs", []string{"Origin", "https://evil.example"}, 403},
		{"origin same", []string{"Origin", "http://example.com"}, 200},
		{"no browser headers", nil, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := wh.browse("POST", "/api/order", "{}", tc.hdr...)
			if r.status != tc.status {
				t.Fatalf("%d %s", r.status, r.raw)
			}
			if tc.status == 403 && (r.body["error"] != CodeCSRFRejected || wh.upstream != nil) {
				t.Fatalf("refusal %s, upstream saw %v", r.raw, wh.upstream)
			}
		})
	}
	// A header token is the site's CORS business, not CSRF.
	r := wh.call("POST", "/api/order", "{}", "Authorization", "Bearer "+access, "Sec-Fetch-Site", "cross-site")
	if r.status != 200 {
		t.Fatalf("header token cross-site: %d %s", r.status, r.raw)
	}
	// Only the refresh cookie left: still refused cross-site, nothing rotated.
	delete(wh.jar, "wa")
	r = wh.browse("DELETE", "/api/order", "", "Sec-Fetch-Site", "cross-site")
	if r.status != 403 || setCookies(r)["wa"] != nil {
		t.Fatalf("refresh cookie cross-site: %d %v", r.status, r.header["Set-Cookie"])
	}
}

func TestWebLogout(t *testing.T) {
	wh := newWebHarness(t, nil)
	wh.enterSession("o")
	access := wh.jar["wa"]
	r := wh.browse("POST", "/wx/web/logout?next=/bye", "", "Sec-Fetch-Site", "cross-site")
	want(t, r, 403, CodeCSRFRejected)
	r = wh.browse("POST", "/wx/web/logout?next=/bye", "", "Sec-Fetch-Site", "same-origin")
	if r.status != 303 || r.header.Get("Location") != "/bye" {
		t.Fatalf("logout: %d %q", r.status, r.header.Get("Location"))
	}
	for _, name := range []string{"wa", "wa_refresh"} {
		if ck := setCookies(r)[name]; ck == nil || ck.MaxAge >= 0 || !strings.Contains(strings.Join(r.header["Set-Cookie"], "\n"), name+"=; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=0") {
			t.Fatalf("%s not cleared: %v", name, r.header["Set-Cookie"])
		}
	}
	// The old access cookie: the login redirect.
	wh.jar["wa"] = access
	if r := wh.navigate("/p"); r.status != 302 || !strings.HasPrefix(r.header.Get("Location"), "/wx/web/login") {
		t.Fatalf("old cookie after logout: %d", r.status)
	}
	// Again, asking JSON: 200, idempotent.
	want(t, wh.browse("POST", "/wx/web/logout", "", "Accept", "application/json"), 200, "")
	s, err := wh.st.UserSessions(t.Context(), testApp, 1)
	if err != nil {
		t.Fatal(err)
	}
	ended := 0
	for _, x := range s {
		if x.Revoked() && x.RevokeReason == store.ReasonLogout {
			ended++
		}
	}
	if ended != 1 {
		t.Fatalf("%d sessions ended, want the cookie session only", ended)
	}
}

// TestWebInlineRotationConcurrent: page loads that arrive at once with one
// expired session all go through with the same new pair; none trips reuse
// detection.
func TestWebInlineRotationConcurrent(t *testing.T) {
	wh := newWebHarness(t, nil)
	wh.enterSession("o")
	refresh := wh.jar["wa_refresh"]
	wh.clock.Advance(16 * time.Minute)
	const n = 8
	var wg sync.WaitGroup
	results := make([]result, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b := &webHarness{harness: wh.harness, jar: map[string]string{"wa_refresh": refresh}}
			results[i] = b.navigate("/asset")
		}()
	}
	wg.Wait()
	var first string
	for i, r := range results {
		ck := setCookies(r)["wa_refresh"]
		if r.status != 200 || ck == nil || ck.MaxAge <= 0 {
			t.Fatalf("load %d: %d %v", i, r.status, r.header["Set-Cookie"])
		}
		if first == "" {
			first = ck.Value
		} else if ck.Value != first {
			t.Fatalf("load %d got another refresh token", i)
		}
	}
	s, err := wh.st.UserSessions(t.Context(), testApp, 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range s {
		if x.Revoked() {
			t.Fatalf("session %s revoked (%s) by concurrent page loads", x.ID, x.RevokeReason)
		}
	}
}

// TestWebBannedNoRotation: a banned user's cookie session is not renewed.
func TestWebBannedNoRotation(t *testing.T) {
	wh := newWebHarness(t, nil)
	wh.enterSession("o")
	if _, ss, err := wh.st.Ban(t.Context(), testApp, 1, "spam", wh.clock.Now()); err != nil {
		t.Fatal(err)
	} else {
		for _, s := range ss {
			wh.h.markRevoked(s)
		}
	}
	delete(wh.jar, "wa")
	r := wh.navigate("/p")
	if r.status != 302 || setCookies(r)["wa"] != nil && setCookies(r)["wa"].MaxAge > 0 {
		t.Fatalf("banned user's page load: %d %v", r.status, r.header["Set-Cookie"])
	}
}
