package wechatauth_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"
)

// The browser tests run their own Caddy on ports of their own, so they
// never meet another test's server.
const (
	webSite     = "http://127.0.0.1:9280"
	webWX       = "http://127.0.0.1:9281"
	webAdminEnd = `{
	admin localhost:2929
	http_port 9280
	https_port 9643
	skip_install_trust
}
http://127.0.0.1:9280 {
	respond "down" 503
}
`
	webOAApp     = "wxoa00000000000001"
	webOASecret  = "oa-secret-e2e"
	webSiteApp   = "wxsite000000000001"
	webSiteSecre = "site-secret-e2e"
)

// webConfig is the end-to-end Caddyfile with browser sessions: the
// emulator knows the mini-program and both OAuth apps; the site has a web
// block against it and echoes what its upstream would get.
func webConfig(db, extra string) string {
	return fmt.Sprintf(`{
	admin localhost:2929
	http_port 9280
	https_port 9643
	grace_period 1s
	skip_install_trust
}

http://127.0.0.1:9281 {
	wechat_emulator {
		app_id     %[1]s
		app_secret %[2]s
		oauth_app  %[4]s %[5]s
		oauth_app  %[6]s %[7]s
	}
	respond "not an emulator path" 404
}

http://127.0.0.1:9280 {
	wechat_auth {
		app_id      %[1]s
		app_secret  %[2]s
		api_base    http://127.0.0.1:9281
		db          %[3]s
		signing_key e2e-hs256-signing-key-0123456789abcdef
		timeout     1s
		%[8]s
		web {
			cookie          wa
			oa_app_id       %[4]s
			oa_app_secret   %[5]s
			oa_scope        snsapi_userinfo
			site_app_id     %[6]s
			site_app_secret %[7]s
			oauth_base      http://127.0.0.1:9281
		}
	}
	respond "user={http.auth.user.id} openid={http.auth.user.openid} cookie=[{http.request.header.Cookie}]"
}
`, e2eAppID, e2eSecret, db, webOAApp, webOASecret, webSiteApp, webSiteSecre, extra)
}

// browser is a cookie-keeping HTTP client that does not follow redirects,
// so each step of a redirect dance is seen.
type browser struct {
	t   *testing.T
	c   *http.Client
	jar *cookiejar.Jar
	ua  string
}

func newBrowser(t *testing.T, ua string) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, jar: jar, ua: ua, c: &http.Client{
		Jar: jar, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// do sends one request; a relative target is on the site.
func (b *browser) do(method, target string, body io.Reader, hdr ...string) answer {
	b.t.Helper()
	if strings.HasPrefix(target, "/") {
		target = webSite + target
	}
	req, err := http.NewRequest(method, target, body)
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Accept", "text/html,application/xhtml+xml")
	if b.ua != "" {
		req.Header.Set("User-Agent", b.ua)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := b.c.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", method, target, err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	return answer{status: res.StatusCode, header: res.Header, raw: string(raw)}
}

func (b *browser) get(target string, hdr ...string) answer {
	b.t.Helper()
	return b.do(http.MethodGet, target, nil, hdr...)
}

// cookie returns the browser's cookie name for the site, or "".
func (b *browser) cookie(name string) string {
	u, _ := url.Parse(webSite)
	for _, c := range b.jar.Cookies(u) {
		if c.Name == name {
			return c.Value
		}
	}
	return ""
}

// setCookie puts (or with "" removes) a cookie for the site.
func (b *browser) setCookie(name, value string) {
	u, _ := url.Parse(webSite)
	c := &http.Cookie{Name: name, Value: value, Path: "/"}
	if value == "" {
		c.MaxAge = -1
	}
	b.jar.SetCookies(u, []*http.Cookie{c})
}

func newWebE2E(t *testing.T, extra string) *e2e {
	t.Helper()
	e := &e2e{t: t, tester: caddytest.NewTester(t).WithDefaultOverrides(caddytest.Config{AdminPort: 2929}),
		client: &http.Client{Timeout: 10 * time.Second}, db: filepath.Join(t.TempDir(), "wechat_auth.db")}
	e.loadRaw(webConfig(e.db, extra))
	t.Cleanup(func() {
		e.tester.InitServer(webAdminEnd, "caddyfile")
		e.client.CloseIdleConnections()
	})
	return e
}

// webMiniLogin logs a mini-program user in on the browser tests' site.
func webMiniLogin(e *e2e, openid string) map[string]any {
	e.t.Helper()
	a := e.postJSON(webWX+"/emulator/code", map[string]string{"openid": openid}, nil)
	code, _ := a.body["code"].(string)
	a = e.postJSON(webSite+"/wx/login", map[string]string{"code": code}, nil)
	if a.status != 200 {
		e.t.Fatalf("login: %d %s", a.status, a.raw)
	}
	return a.body
}

// wantRedirect checks a redirect's status and returns its Location.
func wantRedirect(t *testing.T, a answer, status int, prefix string) string {
	t.Helper()
	loc := a.header.Get("Location")
	if a.status != status || !strings.HasPrefix(loc, prefix) {
		t.Fatalf("want %d to %s…, got %d to %q: %s", status, prefix, a.status, loc, a.raw)
	}
	return loc
}

// TestE2EWebOAuthDance: a page navigation without a session goes to the
// login, on to the emulator's authorize page, back through the callback
// with the Allow button's code, and ends on the page with a session; a
// second navigation needs no WeChat at all.
func TestE2EWebOAuthDance(t *testing.T) {
	e := newWebE2E(t, "")
	b := newBrowser(t, "Mozilla/5.0 (iPhone) MicroMessenger/8.0.50")

	loc := wantRedirect(t, b.get("/orders?id=7"), 302, "/wx/web/login?next=")
	loc = wantRedirect(t, b.get(loc), 302, webWX+"/connect/oauth2/authorize?appid="+webOAApp)
	if b.cookie("wa_state") == "" {
		t.Fatal("no state cookie after login")
	}
	page := b.get(loc)
	if page.status != 200 || !strings.Contains(page.raw, webOAApp) || !strings.Contains(page.raw, "snsapi_userinfo") {
		t.Fatalf("authorize page: %d %s", page.status, page.raw)
	}
	au, _ := url.Parse(loc)
	q := au.Query()
	form := url.Values{"appid": {webOAApp}, "redirect_uri": {q.Get("redirect_uri")}, "response_type": {"code"},
		"scope": {q.Get("scope")}, "state": {q.Get("state")}, "openid": {"o_web_oa"}, "unionid": {"u_web_1"},
		"nickname": {"Web Ann"}, "action": {"allow"}}
	allow := b.do(http.MethodPost, webWX+"/connect/oauth2/authorize", strings.NewReader(form.Encode()),
		"Content-Type", "application/x-www-form-urlencoded")
	loc = wantRedirect(t, allow, 302, webSite+"/wx/web/callback?code=")
	callbackURL := loc
	loc = wantRedirect(t, b.get(loc), 302, "/orders?id=7")
	if b.cookie("wa") == "" || b.cookie("wa_refresh") == "" || b.cookie("wa_state") != "" {
		t.Fatalf("cookies after the callback: wa=%q refresh=%q state=%q", b.cookie("wa"), b.cookie("wa_refresh"), b.cookie("wa_state"))
	}
	p := b.get(loc)
	if p.status != 200 || !strings.Contains(p.raw, "user=1 openid=o_web_oa") || strings.Contains(p.raw, "wa=") {
		t.Fatalf("the page: %d %s", p.status, p.raw)
	}
	// The user is the same when the mini-program logs in with the unionid.
	a := e.postJSON(webWX+"/emulator/code", map[string]string{"openid": "o_mini_1", "unionid": "u_web_1"}, nil)
	lg := e.postJSON(webSite+"/wx/login", map[string]string{"code": a.body["code"].(string)}, nil)
	expect(t, lg, 200, "")

	// The callback URL replayed: its state cookie is gone.
	r := b.get(callbackURL)
	if r.status != 400 || !strings.Contains(r.raw, "invalid_state") {
		t.Fatalf("replayed callback: %d %s", r.status, r.raw)
	}
	// The code replayed with a fresh state: WeChat's code is spent.
	loc = wantRedirect(t, b.get("/wx/web/login?next=/"), 302, webWX)
	au, _ = url.Parse(loc)
	cu, _ := url.Parse(callbackURL)
	r = b.get("/wx/web/callback?code=" + url.QueryEscape(cu.Query().Get("code")) + "&state=" + url.QueryEscape(au.Query().Get("state")))
	if r.status != 400 || !strings.Contains(r.raw, "invalid_code") {
		t.Fatalf("reused code: %d %s", r.status, r.raw)
	}
	noSecrets(t, r, webOASecret, cu.Query().Get("code"))
}

// mintOAuth asks the emulator for what its Allow button would give.
func mintOAuth(e *e2e, body map[string]any) string {
	e.t.Helper()
	a := e.postJSON(webWX+"/emulator/oauth/code", body, nil)
	code, _ := a.body["code"].(string)
	if a.status != 200 || code == "" {
		e.t.Fatalf("minting an OAuth code: %d %s", a.status, a.raw)
	}
	return code
}

// startLogin runs the login step and returns the state WeChat would get.
func startLogin(b *browser) string {
	b.t.Helper()
	loc := wantRedirect(b.t, b.get("/wx/web/login?next=/back"), 302, webWX)
	u, _ := url.Parse(loc)
	return u.Query().Get("state")
}

func TestE2EWebCallbackBadInput(t *testing.T) {
	e := newWebE2E(t, "")
	desktop := newBrowser(t, "Mozilla/5.0 (X11) Chrome/130")

	// Website QR login outside WeChat.
	loc := wantRedirect(t, desktop.get("/wx/web/login"), 302, webWX+"/connect/qrconnect?appid="+webSiteApp)
	if !strings.Contains(loc, "scope=snsapi_login") {
		t.Fatalf("qrconnect location %q", loc)
	}

	badState := func(name string, a answer) {
		t.Helper()
		if a.status != 400 || !strings.Contains(a.raw, "invalid_state") || len(a.header.Values("Set-Cookie")) != 0 {
			t.Fatalf("%s: %d %v %s", name, a.status, a.header.Values("Set-Cookie"), a.raw)
		}
	}
	code := mintOAuth(e, map[string]any{"appid": webSiteApp, "openid": "o_site_1", "scope": "snsapi_login"})
	state := startLogin(desktop)
	badState("forged state", desktop.get("/wx/web/callback?code="+code+"&state=forged"))
	badState("missing state", desktop.get("/wx/web/callback?code="+code))
	other := newBrowser(t, "Mozilla/5.0 (X11) Chrome/130")
	badState("no state cookie", other.get("/wx/web/callback?code="+code+"&state="+state))
	desktop.setCookie("wa_state", desktop.cookie("wa_state")[:20]+"x"+desktop.cookie("wa_state")[21:])
	badState("tampered state cookie", desktop.get("/wx/web/callback?code="+code+"&state="+state))

	// The code survived the refused callbacks (none reached WeChat).
	state = startLogin(desktop)
	wantRedirect(t, desktop.get("/wx/web/callback?code="+code+"&state="+state), 302, "/back")
	if desktop.cookie("wa") == "" {
		t.Fatal("no session after a good callback")
	}

	// Deny: back to next, no session.
	fresh := newBrowser(t, "Mozilla/5.0 (X11) Chrome/130")
	state = startLogin(fresh)
	wantRedirect(t, fresh.get("/wx/web/callback?state="+state), 302, "/back")
	if fresh.cookie("wa") != "" {
		t.Fatal("a denied login has a session")
	}

	// A snapshot user (inside WeChat): 403 page, no session.
	wx := newBrowser(t, "MicroMessenger/8.0")
	state = startLogin(wx)
	snap := mintOAuth(e, map[string]any{"appid": webOAApp, "openid": "o_snap", "scope": "snsapi_userinfo", "snapshot": true})
	a := wx.get("/wx/web/callback?code=" + snap + "&state=" + state)
	if a.status != 403 || !strings.Contains(a.raw, "Open this page in WeChat") || wx.cookie("wa") != "" {
		t.Fatalf("snapshot user: %d %s", a.status, a.raw)
	}

	// WeChat's errors reach the page as clear answers; nothing is set.
	for _, c := range []struct {
		name   string
		fault  map[string]any
		status int
		code   string
	}{
		{"busy twice", map[string]any{"errcode": -1, "times": 2}, 503, "wechat_unavailable"},
		{"bad code", map[string]any{"errcode": 40029}, 400, "invalid_code"},
		{"other errcode", map[string]any{"errcode": 40013}, 502, "wechat_error"},
		{"garbage", map[string]any{"garbage": true}, 502, "wechat_error"},
	} {
		t.Run(c.name, func(t *testing.T) {
			state := startLogin(wx)
			code := mintOAuth(e, map[string]any{"appid": webOAApp, "openid": "o_fault", "scope": "snsapi_base"})
			c.fault["path"] = "/sns/oauth2/access_token"
			if a := e.postJSON(webWX+"/emulator/fault", c.fault, nil); a.status >= 300 {
				t.Fatalf("fault: %d %s", a.status, a.raw)
			}
			a := wx.do(http.MethodGet, "/wx/web/callback?code="+code+"&state="+state, nil, "Accept", "application/json")
			var body map[string]any
			_ = jsonUnmarshal(a.raw, &body)
			if a.status != c.status || body["error"] != c.code || wx.cookie("wa") != "" {
				t.Fatalf("%d %s", a.status, a.raw)
			}
			noSecrets(t, a, code, webOASecret)
		})
	}
}

func TestE2EWebTicket(t *testing.T) {
	e := newWebE2E(t, "")
	mini := webMiniLogin(e, "o_mini_t")
	access := mini["token"].(string)
	tk := e.postJSON(webSite+"/wx/web/ticket", map[string]string{"next": "/shop"}, bearer(access))
	expect(t, tk, 200, "")
	enter := tk.body["url"].(string)

	b := newBrowser(t, "MicroMessenger/8.0 miniProgram")
	wantRedirect(t, b.get(enter), 302, "/shop")
	p := b.get("/shop")
	if p.status != 200 || !strings.Contains(p.raw, "user=1 openid=o_mini_t") {
		t.Fatalf("page: %d %s", p.status, p.raw)
	}
	// Reused: 401 page, no cookie.
	other := newBrowser(t, "")
	a := other.get(enter)
	if a.status != 401 || !strings.Contains(a.raw, "from the mini-program") || other.cookie("wa") != "" {
		t.Fatalf("reused ticket: %d %s", a.status, a.raw)
	}
	// A ticket of a session that ended.
	tk = e.postJSON(webSite+"/wx/web/ticket", nil, bearer(access))
	expect(t, tk, 200, "")
	expect(t, e.postJSON(webSite+"/wx/logout", map[string]any{}, bearer(access)), 200, "")
	a = other.get(tk.body["url"].(string))
	if a.status != 401 || other.cookie("wa") != "" {
		t.Fatalf("ticket of an ended session: %d %s", a.status, a.raw)
	}
	// The web session lives on (its own session).
	if p := b.get("/shop"); p.status != 200 {
		t.Fatalf("web session after the mini-program's logout: %d", p.status)
	}
}

// TestE2EWebGuard: cookies stripped, CSRF, inline rotation, a replayed
// refresh cookie revoking the session, logout.
func TestE2EWebGuard(t *testing.T) {
	e := newWebE2E(t, "refresh_grace 0")
	access := webMiniLogin(e, "o_guard")["token"].(string)
	tk := e.postJSON(webSite+"/wx/web/ticket", nil, bearer(access))
	b := newBrowser(t, "")
	wantRedirect(t, b.get(tk.body["url"].(string)), 302, "/")
	b.setCookie("theme", "dark")

	p := b.get("/x")
	if p.status != 200 || !strings.Contains(p.raw, "cookie=[theme=dark]") {
		t.Fatalf("upstream cookies: %s", p.raw)
	}
	// Not a navigation: 401 JSON, not a redirect.
	anon := newBrowser(t, "")
	a := anon.get("/api", "Accept", "application/json")
	if a.status != 401 || !strings.Contains(a.raw, `"invalid_token"`) {
		t.Fatalf("anonymous API call: %d %s", a.status, a.raw)
	}
	// CSRF.
	a = b.do(http.MethodPost, "/api/order", strings.NewReader("{}"), "Origin", "http://evil.example", "Content-Type", "application/json")
	if a.status != 403 || !strings.Contains(a.raw, "csrf_rejected") || strings.Contains(a.raw, "user=") {
		t.Fatalf("cross-origin POST: %d %s", a.status, a.raw)
	}
	a = b.do(http.MethodPost, "/api/order", strings.NewReader("{}"), "Origin", webSite, "Content-Type", "application/json")
	if a.status != 200 || !strings.Contains(a.raw, "user=1") {
		t.Fatalf("same-origin POST: %d %s", a.status, a.raw)
	}

	// Inline rotation: the access cookie is gone.
	oldRefresh := b.cookie("wa_refresh")
	b.setCookie("wa", "")
	if p := b.get("/x"); p.status != 200 || b.cookie("wa") == "" || b.cookie("wa_refresh") == oldRefresh {
		t.Fatalf("inline rotation: %d %s", p.status, p.raw)
	}
	// The old refresh cookie replayed (past the window, here 0): the
	// whole session is revoked; the new cookies stop working too.
	thief := newBrowser(t, "")
	thief.setCookie("wa_refresh", oldRefresh)
	wantRedirect(t, thief.get("/x"), 302, "/wx/web/login")
	wantRedirect(t, b.get("/x"), 302, "/wx/web/login")

	// Logout.
	tk = e.postJSON(webSite+"/wx/web/ticket", nil, bearer(access))
	c := newBrowser(t, "")
	wantRedirect(t, c.get(tk.body["url"].(string)), 302, "/")
	old := c.cookie("wa")
	wantRedirect(t, c.do(http.MethodPost, "/wx/web/logout?next=/bye", nil, "Origin", webSite), 303, "/bye")
	if c.cookie("wa") != "" || c.cookie("wa_refresh") != "" {
		t.Fatal("logout left cookies")
	}
	c.setCookie("wa", old)
	wantRedirect(t, c.get("/x"), 302, "/wx/web/login")
}

func jsonUnmarshal(s string, v any) error { return json.Unmarshal([]byte(s), v) }
