package handler

import (
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wxauth/caddy-wechat-auth/internal/wechat"
)

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
	wh.h.web.codes = hookedFlights{newLoginFlights(), func() { joined <- struct{}{} }}
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
