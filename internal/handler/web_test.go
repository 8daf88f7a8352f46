package handler

import (
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wxauth/caddy-wechat-auth/internal/wechat"
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

func TestWebLoginRedirect(t *testing.T) {
	wh := newWebHarness(t, nil)
	for _, tc := range []struct {
		ua, path, app, scope string
	}{
		{miniUA, "/connect/oauth2/authorize", "wxoa", "snsapi_base"},
		{"Mozilla/5.0 (X11; Linux x86_64) Chrome/130", "/connect/qrconnect", "wxsite", "snsapi_login"},
	} {
		r := wh.navigate("/wx/web/login?next=%2Fpage%3Fa%3D1", "User-Agent", tc.ua)
		if r.status != 302 {
			t.Fatalf("login: %d %s", r.status, r.raw)
		}
		loc := r.header.Get("Location")
		u := location(t, r)
		if u.Scheme+"://"+u.Host+u.Path != "https://open.example"+tc.path || u.Fragment != "wechat_redirect" {
			t.Fatalf("location %q", loc)
		}
		q := u.Query()
		if q.Get("appid") != tc.app || q.Get("scope") != tc.scope || q.Get("response_type") != "code" ||
			q.Get("redirect_uri") != "http://example.com/wx/web/callback" || len(q.Get("state")) < 43 {
			t.Fatalf("location %q", loc)
		}
		if !strings.HasPrefix(loc, "https://open.example"+tc.path+"?appid=") || strings.Index(loc, "redirect_uri=") > strings.Index(loc, "response_type=") {
			t.Fatalf("parameters out of WeChat's order: %q", loc)
		}
		st := setCookies(r)["wa_state"]
		if st == nil || !st.HttpOnly || st.SameSite != http.SameSiteLaxMode || st.MaxAge != 600 || strings.Contains(st.Value, "page") {
			t.Fatalf("state cookie %+v", st)
		}
	}
	// Only a website app: qrconnect even inside WeChat.
	wh = newWebHarness(t, func(c *WebConfig) { c.OA = nil; c.CallbackURL = "https://site.example/cb" })
	r := wh.navigate("/wx/web/login", "User-Agent", miniUA)
	if u := location(t, r); u.Path != "/connect/qrconnect" || u.Query().Get("redirect_uri") != "https://site.example/cb" {
		t.Fatalf("site only: %q", r.header.Get("Location"))
	}
	// Neither: 404.
	wh = newWebHarness(t, func(c *WebConfig) { c.OA, c.Site = nil, nil })
	if r := wh.navigate("/wx/web/login"); r.status != 404 || len(setCookies(r)) != 0 {
		t.Fatalf("no OAuth app: %d", r.status)
	}
}

func TestWebCallback(t *testing.T) {
	wh := newWebHarness(t, nil)
	wh.oa.addCode("c1", wechat.OAuthToken{OpenID: "o-oa", Scope: "snsapi_base"})
	r := wh.oauthLogin("/page?a=1", miniUA, "c1")
	if r.status != 302 || r.header.Get("Location") != "/page?a=1" {
		t.Fatalf("callback: %d to %q: %s", r.status, r.header.Get("Location"), r.raw)
	}
	cks := setCookies(r)
	if cks["wa"] == nil || cks["wa_refresh"] == nil || cks["wa_state"] == nil || cks["wa_state"].MaxAge >= 0 {
		t.Fatalf("callback cookies %v", r.header["Set-Cookie"])
	}
	p := wh.navigate("/page?a=1")
	if p.status != 200 || wh.upstream.Get("X-WeChat-OpenID") != "o-oa" {
		t.Fatalf("page: %d %s %v", p.status, p.raw, wh.upstream)
	}
	// The code again (a replayed callback, state re-sealed by a new login).
	r = wh.oauthLogin("/", miniUA, "c1")
	if r.status != 400 || !strings.Contains(r.raw, "invalid_code") || setCookies(r)["wa"] != nil {
		t.Fatalf("reused code: %d %s", r.status, r.raw)
	}
}

func TestWebCallbackBadState(t *testing.T) {
	wh := newWebHarness(t, nil)
	wh.oa.addCode("c1", wechat.OAuthToken{OpenID: "o-oa"})
	start := func() string {
		wh.jar = map[string]string{}
		r := wh.navigate("/wx/web/login?next=/x", "User-Agent", miniUA)
		return location(t, r).Query().Get("state")
	}
	check := func(name string, r result) {
		t.Helper()
		if r.status != 400 || !strings.Contains(r.raw, CodeInvalidState) || len(setCookies(r)) != 0 {
			t.Fatalf("%s: %d %v %s", name, r.status, r.header["Set-Cookie"], r.raw)
		}
	}
	state := start()
	delete(wh.jar, "wa_state")
	check("no state cookie", wh.navigate("/wx/web/callback?code=c1&state="+state))

	start()
	check("forged state", wh.navigate("/wx/web/callback?code=c1&state=forged"))
	check("no state parameter", wh.navigate("/wx/web/callback?code=c1"))

	state = start()
	wh.jar["wa_state"] = wh.jar["wa_state"][:len(wh.jar["wa_state"])-2] + "AA"
	check("tampered cookie", wh.navigate("/wx/web/callback?code=c1&state="+state))

	state = start()
	wh.clock.Advance(10*time.Minute + time.Second)
	check("expired state", wh.navigate("/wx/web/callback?code=c1&state="+state))

	// Another browser's state: its cookie and this browser's state.
	start()
	otherCookie := wh.jar["wa_state"]
	mine := start()
	wh.jar["wa_state"] = otherCookie
	r := wh.browse("GET", "/wx/web/callback?code=c1&state="+mine, "", "Accept", "application/json")
	want(t, r, 400, CodeInvalidState)

	if wh.oa.exchanges != 0 {
		t.Fatalf("%d code exchanges for bad states", wh.oa.exchanges)
	}
}

func TestWebCallbackOutcomes(t *testing.T) {
	wh := newWebHarness(t, nil)
	// The user refused: back to next, no session.
	r := wh.navigate("/wx/web/login?next=/back", "User-Agent", miniUA)
	state := location(t, r).Query().Get("state")
	r = wh.navigate("/wx/web/callback?state=" + state)
	if r.status != 302 || r.header.Get("Location") != "/back" || setCookies(r)["wa"] != nil {
		t.Fatalf("refusal: %d %q", r.status, r.header.Get("Location"))
	}
	// A snapshot user: 403 page, no session.
	wh.oa.addCode("snap", wechat.OAuthToken{OpenID: "o-snap", SnapshotUser: true})
	r = wh.oauthLogin("/", miniUA, "snap")
	if r.status != 403 || !strings.Contains(r.raw, "Open this page in WeChat") || setCookies(r)["wa"] != nil {
		t.Fatalf("snapshot: %d %s", r.status, r.raw)
	}
	// WeChat unavailable: 503 with Retry-After.
	wh.oa.err = &wechat.APIError{API: "oauth2_access_token", Code: -1}
	wh.oa.addCode("busy", wechat.OAuthToken{OpenID: "o"})
	r = wh.oauthLogin("/", miniUA, "busy")
	if r.status != 503 || r.header.Get("Retry-After") == "" || setCookies(r)["wa"] != nil {
		t.Fatalf("WeChat unavailable: %d %s", r.status, r.raw)
	}
	wh.oa.err = &wechat.APIError{API: "oauth2_access_token", Code: 40013}
	if r = wh.oauthLogin("/", miniUA, "busy"); r.status != 502 {
		t.Fatalf("WeChat error: %d", r.status)
	}
}

// TestWebCallbackUnionID: a website login whose unionid is the
// mini-program user's is that user; userinfo fills a new user's profile
// only.
func TestWebCallbackUnionID(t *testing.T) {
	wh := newWebHarness(t, nil)
	wh.n++
	wh.wx.addCode("mp", "o-mini", "u-1")
	want(t, wh.call("POST", "/wx/login", `{"code":"mp"}`), 200, "")

	wh.site.addCode("s1", wechat.OAuthToken{OpenID: "o-site", UnionID: "u-1", Scope: "snsapi_login"})
	wh.site.infos["o-site"] = wechat.UserInfo{OpenID: "o-site", UnionID: "u-1", Nickname: "Site Ann"}
	r := wh.oauthLogin("/", "Desktop", "s1")
	want(t, r, 302, "")
	wh.navigate("/")
	if wh.upstream.Get("X-WeChat-User-ID") != "1" || wh.upstream.Get("X-WeChat-OpenID") != "o-site" {
		t.Fatalf("linked login: %v", wh.upstream)
	}
	u, _ := wh.st.User(t.Context(), testApp, 1)
	if u.Nickname != "" {
		t.Fatalf("an existing user's profile was overwritten: %+v", u)
	}

	// A new user with a profile scope gets userinfo.
	wh.jar = map[string]string{}
	wh.site.addCode("s2", wechat.OAuthToken{OpenID: "o-new", Scope: "snsapi_login"})
	wh.site.infos["o-new"] = wechat.UserInfo{OpenID: "o-new", UnionID: "u-2", Nickname: "Bo\x07b", HeadImgURL: "https://thirdwx.example/a.png", Gender: 1}
	want(t, wh.oauthLogin("/", "Desktop", "s2"), 302, "")
	wh.navigate("/")
	if wh.upstream.Get("X-WeChat-User-ID") != "2" || wh.upstream.Get("X-WeChat-UnionID") != "u-2" {
		t.Fatalf("new user: %v", wh.upstream)
	}
	u, _ = wh.st.User(t.Context(), testApp, 2)
	if u.Nickname != "Bob" || u.AvatarURL != "https://thirdwx.example/a.png" || u.Gender != 1 {
		t.Fatalf("new user's profile %+v", u)
	}
	calls := wh.site.userinfos
	// A returning user does not ask userinfo again.
	wh.jar = map[string]string{}
	wh.site.addCode("s3", wechat.OAuthToken{OpenID: "o-new", Scope: "snsapi_login"})
	want(t, wh.oauthLogin("/", "Desktop", "s3"), 302, "")
	if wh.site.userinfos != calls {
		t.Fatal("userinfo asked for a returning user")
	}
}

// TestWebCallbackSharedCode: concurrent callbacks with one code make one
// exchange and one session.
func TestWebCallbackSharedCode(t *testing.T) {
	wh := newWebHarness(t, nil)
	wh.oa.addCode("c", wechat.OAuthToken{OpenID: "o-oa"})
	r := wh.navigate("/wx/web/login?next=/p", "User-Agent", miniUA)
	state := location(t, r).Query().Get("state")
	wh.oa.block = make(chan struct{})
	joined := make(chan struct{}, 4)
	wh.h.web.codes.testHookJoin = func() { joined <- struct{}{} }
	var wg sync.WaitGroup
	results := make([]result, 3)
	jar := wh.jar
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := &webHarness{harness: wh.harness, jar: map[string]string{"wa_state": jar["wa_state"]}}
			results[i] = w.navigate("/wx/web/callback?code=c&state=" + state)
		}()
	}
	<-joined
	<-joined
	close(wh.oa.block)
	wg.Wait()
	for _, r := range results {
		if r.status != 302 || setCookies(r)["wa"] == nil {
			t.Fatalf("shared callback: %d %s", r.status, r.raw)
		}
	}
	if wh.oa.exchanges != 1 {
		t.Fatalf("%d exchanges, want 1", wh.oa.exchanges)
	}
	ss, err := wh.st.UserSessions(t.Context(), testApp, 1)
	if err != nil || len(ss) != 1 {
		t.Fatalf("%d sessions (%v), want 1", len(ss), err)
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

// TestWebCallbackRateLimited: OAuth callbacks count against the login
// rate limit, before WeChat is asked.
func TestWebCallbackRateLimited(t *testing.T) {
	wh := newWebHarness(t, nil)
	c := wh.h.cfg
	c.LoginLimit = NewRateLimiter(1, time.Minute)
	h, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	wh.h = h
	wh.oa.addCode("c1", wechat.OAuthToken{OpenID: "o1"})
	wh.oa.addCode("c2", wechat.OAuthToken{OpenID: "o2"})
	want(t, wh.oauthLogin("/", miniUA, "c1"), 302, "")
	wh.jar = map[string]string{}
	r := wh.oauthLogin("/", miniUA, "c2")
	if r.status != 429 || r.header.Get("Retry-After") == "" || setCookies(r)["wa"] != nil {
		t.Fatalf("second web login: %d %s", r.status, r.raw)
	}
	if wh.oa.exchanges != 1 {
		t.Fatalf("%d exchanges, want 1 (the limited one never reaches WeChat)", wh.oa.exchanges)
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
