package emulator

import (
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func TestAuthorizePageShowsAndEscapes(t *testing.T) {
	e, _ := oauthConfigured(t)
	state := `"><script>alert(1)</script>`
	for _, tt := range []struct {
		page, scope string
		nickname    bool
		snapshot    bool
	}{
		{pathAuthorize, scopeBase, false, false},
		{pathAuthorize, scopeUserInfo, true, true},
		{pathQRConnect, scopeLogin, true, false},
	} {
		t.Run(tt.page+" "+tt.scope, func(t *testing.T) {
			q := authorizeQuery(tt.scope, state)
			w := rawCall(t, e, httptest.NewRequest(http.MethodGet, tt.page+"?"+q.Encode()+"#wechat_redirect", nil))
			body := w.Body.String()
			if w.Code != http.StatusOK || w.Header().Get("Content-Type") != "text/html; charset=utf-8" {
				t.Fatalf("status %d type %q:\n%s", w.Code, w.Header().Get("Content-Type"), body)
			}
			if strings.Contains(body, "<script>") || !strings.Contains(body, "&lt;script&gt;") {
				t.Fatalf("state is not escaped:\n%s", body)
			}
			for _, want := range []string{testOAAppID, tt.scope, `name="openid"`, `name="unionid"`, `value="allow"`, `value="deny"`, `action="` + tt.page + `"`, "127.0.0.1:8080"} {
				if !strings.Contains(body, want) {
					t.Errorf("page lacks %q", want)
				}
			}
			if strings.Contains(body, `name="nickname"`) != tt.nickname || strings.Contains(body, `name="snapshot"`) != tt.snapshot {
				t.Errorf("nickname field %v snapshot field %v, want %v %v", !tt.nickname, !tt.snapshot, tt.nickname, tt.snapshot)
			}
			csp := w.Header().Get("Content-Security-Policy")
			if !strings.Contains(csp, "form-action 'self' http://127.0.0.1:8080") || !strings.Contains(csp, "default-src 'none'") {
				t.Errorf("CSP = %q", csp)
			}
			if w.Header().Get("Cache-Control") != "no-store" {
				t.Errorf("Cache-Control = %q", w.Header().Get("Cache-Control"))
			}
		})
	}
}

func TestAuthorizeRefusesBadRequests(t *testing.T) {
	e, _ := oauthConfigured(t)
	valid := func(page string) url.Values {
		if page == pathQRConnect {
			q := authorizeQuery(scopeLogin, "s")
			q.Set("appid", testSiteAppID)
			return q
		}
		return authorizeQuery(scopeBase, "s")
	}
	tests := []struct {
		name   string
		page   string
		change func(url.Values)
		want   string
	}{
		{"no appid", pathAuthorize, func(q url.Values) { q.Del("appid") }, "Error 10012: appid is missing"},
		{"unknown appid", pathAuthorize, func(q url.Values) { q.Set("appid", "wxother") }, "appid is not an app the emulator knows"},
		{"no redirect_uri", pathAuthorize, func(q url.Values) { q.Del("redirect_uri") }, "Error 10011"},
		{"relative redirect_uri", pathAuthorize, func(q url.Values) { q.Set("redirect_uri", "/wx/web/callback") }, "Error 10003: redirect_uri: must be an absolute http(s) URL"},
		{"scheme-relative redirect_uri", pathAuthorize, func(q url.Values) { q.Set("redirect_uri", "//evil.example/cb") }, "must be an absolute http(s) URL"},
		{"javascript redirect_uri", pathAuthorize, func(q url.Values) { q.Set("redirect_uri", "javascript:alert(1)") }, "must be an absolute http(s) URL"},
		{"ftp redirect_uri", pathAuthorize, func(q url.Values) { q.Set("redirect_uri", "ftp://example.com/cb") }, "must be an absolute http(s) URL"},
		{"user in redirect_uri", pathAuthorize, func(q url.Values) { q.Set("redirect_uri", "http://a:b@example.com/cb") }, "must not carry user information"},
		{"fragment in redirect_uri", pathAuthorize, func(q url.Values) { q.Set("redirect_uri", "http://example.com/cb#x") }, "must not carry a fragment"},
		{"odd host", pathAuthorize, func(q url.Values) { q.Set("redirect_uri", "http://exa%3Bmple.com/cb") }, "must"},
		{"control in redirect_uri", pathAuthorize, func(q url.Values) { q.Set("redirect_uri", "http://example.com/c\nb") }, "must be an absolute http(s) URL"},
		{"bad port", pathAuthorize, func(q url.Values) { q.Set("redirect_uri", "http://example.com:70000/cb") }, "port must be 1 to 65535"},
		{"response_type token", pathAuthorize, func(q url.Values) { q.Set("response_type", "token") }, "response_type must be code"},
		{"no scope", pathAuthorize, func(q url.Values) { q.Del("scope") }, "Error 10010"},
		{"login scope on authorize", pathAuthorize, func(q url.Values) { q.Set("scope", scopeLogin) }, "Error 10005"},
		{"two scopes", pathAuthorize, func(q url.Values) { q.Set("scope", "snsapi_base,snsapi_userinfo") }, "Error 10005"},
		{"base scope on qrconnect", pathQRConnect, func(q url.Values) { q.Set("scope", scopeBase) }, "scope must be snsapi_login"},
		{"long state", pathAuthorize, func(q url.Values) { q.Set("state", strings.Repeat("a", 129)) }, "state is longer than 128 bytes"},
		{"control in state", pathAuthorize, func(q url.Values) { q.Set("state", "a\x00b") }, "state contains control characters"},
		{"appid twice", pathAuthorize, func(q url.Values) { q.Add("appid", testSiteAppID) }, "appid is given more than once"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := valid(tt.page)
			tt.change(q)
			w := rawCall(t, e, httptest.NewRequest(http.MethodGet, tt.page+"?"+q.Encode(), nil))
			if w.Code != http.StatusBadRequest || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/html") {
				t.Fatalf("status %d type %q, want 400 HTML", w.Code, w.Header().Get("Content-Type"))
			}
			if !strings.Contains(w.Body.String(), tt.want) || strings.Contains(w.Body.String(), "<form") {
				t.Fatalf("page does not say %q (or shows the form):\n%s", tt.want, w.Body.String())
			}
			if w.Header().Get("Location") != "" {
				t.Fatalf("a refused request redirects to %q", w.Header().Get("Location"))
			}
		})
	}
	// The valid queries themselves are served.
	for _, page := range []string{pathAuthorize, pathQRConnect} {
		w := rawCall(t, e, httptest.NewRequest(http.MethodGet, page+"?"+valid(page).Encode(), nil))
		if w.Code != http.StatusOK {
			t.Fatalf("%s with a valid query: %d\n%s", page, w.Code, w.Body.String())
		}
	}
}

func TestAllowThenExchangeThenUserInfo(t *testing.T) {
	e, _ := oauthConfigured(t)
	form := authorizeQuery(scopeUserInfo, "n0nce-1")
	form.Set("openid", "oWebUser1")
	form.Set("unionid", "uShared1")
	form.Set("nickname", "小明 <b>")
	form.Set("action", "allow")
	w := submit(t, e, pathAuthorize, form)
	if w.Code != http.StatusFound {
		t.Fatalf("Allow: status %d\n%s", w.Code, w.Body.String())
	}
	loc, err := url.Parse(w.Header().Get("Location"))
	if err != nil || loc.Scheme+"://"+loc.Host+loc.Path != testCallback {
		t.Fatalf("Allow redirects to %q", w.Header().Get("Location"))
	}
	q := loc.Query()
	code := q.Get("code")
	if q.Get("from") != "test" || q.Get("state") != "n0nce-1" || len(code) < 32 {
		t.Fatalf("redirect query = %v, want the original query plus code and state", q)
	}

	m := oauthExchange(t, e, code)
	if m["openid"] != "oWebUser1" || m["unionid"] != "uShared1" || m["scope"] != scopeUserInfo ||
		m["expires_in"] != float64(7200) || m["access_token"] == "" || m["refresh_token"] == "" {
		t.Fatalf("access_token answer = %v", m)
	}
	if _, ok := m["is_snapshotuser"]; ok {
		t.Fatalf("a real user's answer carries is_snapshotuser: %v", m)
	}
	// The code is single-use.
	status, again := call(t, e, http.MethodGet, oauthExchangeURL(testOAAppID, testOASecret, code), "")
	wantErrcode(t, status, again, codeCodeUsed)

	status, info := call(t, e, http.MethodGet, userInfoURL(m["access_token"].(string), "oWebUser1"), "")
	wantErrcode(t, status, info, 0)
	if info["openid"] != "oWebUser1" || info["nickname"] != "小明 <b>" || info["unionid"] != "uShared1" ||
		info["sex"] != float64(0) || info["headimgurl"] != "" || info["country"] != "" {
		t.Fatalf("userinfo = %v", info)
	}
	if p, ok := info["privilege"].([]any); !ok || len(p) != 0 {
		t.Fatalf("privilege = %#v, want an empty array", info["privilege"])
	}
}

func TestDenyRedirectsWithStateOnly(t *testing.T) {
	e, _ := oauthConfigured(t)
	for _, page := range []string{pathAuthorize, pathQRConnect} {
		form := authorizeQuery(scopeBase, "st")
		if page == pathQRConnect {
			form.Set("scope", scopeLogin)
			form.Set("appid", testSiteAppID)
		}
		form.Set("redirect_uri", testCallback)
		form.Set("action", "deny")
		w := submit(t, e, page, form)
		if w.Code != http.StatusFound || w.Header().Get("Location") != testCallback+"?state=st" {
			t.Fatalf("%s Deny: %d Location %q", page, w.Code, w.Header().Get("Location"))
		}
		if len(e.state.oauth.codes) != 0 {
			t.Fatalf("Deny minted a code")
		}
	}
}

func TestAllowChecksTheForm(t *testing.T) {
	e, _ := oauthConfigured(t)
	tests := []struct {
		name   string
		page   string
		change func(url.Values)
		status int
		want   string
	}{
		{"no action", pathAuthorize, func(f url.Values) { f.Del("action") }, 400, "action must be allow or deny"},
		{"empty openid", pathAuthorize, func(f url.Values) { f.Set("openid", " ") }, 400, "openid must be"},
		{"bad openid", pathAuthorize, func(f url.Values) { f.Set("openid", "o/../x") }, 400, "openid must be"},
		{"bad unionid", pathAuthorize, func(f url.Values) { f.Set("unionid", "u u") }, 400, "unionid must be"},
		{"control in nickname", pathAuthorize, func(f url.Values) { f.Set("nickname", "a\u0085b") }, 400, "nickname must be"},
		{"long nickname", pathAuthorize, func(f url.Values) { f.Set("nickname", strings.Repeat("名", 65)) }, 400, "nickname must be"},
		{"snapshot with snsapi_base", pathAuthorize, func(f url.Values) { f.Set("snapshot", "1") }, 400, "snapshot-page user exists only with snsapi_userinfo"},
		{"tampered redirect_uri", pathAuthorize, func(f url.Values) { f.Set("redirect_uri", "javascript:alert(1)") }, 400, "must be an absolute http(s) URL"},
		{"tampered scope", pathAuthorize, func(f url.Values) { f.Set("scope", scopeLogin) }, 400, "Error 10005"},
		{"qrconnect with snapshot", pathQRConnect, func(f url.Values) {
			f.Set("appid", testSiteAppID)
			f.Set("scope", scopeLogin)
			f.Set("snapshot", "1")
		}, 400, "snapshot-page user exists only"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			form := authorizeQuery(scopeBase, "s")
			form.Set("openid", "oWebUser1")
			form.Set("action", "allow")
			tt.change(form)
			w := submit(t, e, tt.page, form)
			if w.Code != tt.status || !strings.Contains(w.Body.String(), tt.want) || w.Header().Get("Location") != "" {
				t.Fatalf("status %d Location %q, want %d saying %q:\n%s", w.Code, w.Header().Get("Location"), tt.status, tt.want, w.Body.String())
			}
		})
	}
	if n := len(e.state.oauth.codes); n != 0 {
		t.Fatalf("refused forms minted %d codes", n)
	}

	// The form must be a form.
	r := httptest.NewRequest(http.MethodPost, pathAuthorize, strings.NewReader(`{"action":"allow"}`))
	r.Header.Set("Content-Type", "application/json")
	if w := rawCall(t, e, r); w.Code != http.StatusUnsupportedMediaType {
		t.Fatalf("JSON body: status %d, want 415", w.Code)
	}
	r = httptest.NewRequest(http.MethodPost, pathAuthorize, strings.NewReader("openid="+strings.Repeat("a", maxBodyBytes)))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if w := rawCall(t, e, r); w.Code != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversized form: status %d, want 413", w.Code)
	}
	w := rawCall(t, e, httptest.NewRequest(http.MethodDelete, pathQRConnect, nil))
	if w.Code != http.StatusMethodNotAllowed || w.Header().Get("Allow") != "GET, HEAD, POST" {
		t.Fatalf("DELETE: status %d Allow %q", w.Code, w.Header().Get("Allow"))
	}
}

func TestAuthorizePagePrefillsTheLatestGrant(t *testing.T) {
	e, _ := oauthConfigured(t)
	page := func() string {
		q := authorizeQuery(scopeUserInfo, "s")
		return rawCall(t, e, httptest.NewRequest(http.MethodGet, pathAuthorize+"?"+q.Encode(), nil)).Body.String()
	}
	first := page()
	if !strings.Contains(first, `value="`+defaultOAuthNickname+`"`) || strings.Contains(first, "oPrefill") {
		t.Fatalf("first page is not prefilled with a fresh openid:\n%s", first)
	}
	mintOAuth(t, e, `{"appid":"`+testOAAppID+`","openid":"oPrefill","unionid":"uPrefill","scope":"snsapi_userinfo","nickname":"Ada"}`)
	second := page()
	for _, want := range []string{`value="oPrefill"`, `value="uPrefill"`, `value="Ada"`} {
		if !strings.Contains(second, want) {
			t.Errorf("second page lacks %s", want)
		}
	}
	// Another app's page is not prefilled with this app's user.
	q := authorizeQuery(scopeLogin, "s")
	q.Set("appid", testSiteAppID)
	if body := rawCall(t, e, httptest.NewRequest(http.MethodGet, pathQRConnect+"?"+q.Encode(), nil)).Body.String(); strings.Contains(body, "oPrefill") {
		t.Fatalf("the site app's page shows the OA app's openid")
	}
}

// formInput matches one input of the page's form.
var formInput = regexp.MustCompile(`<input type="(?:hidden|text)"(?: id="[a-z]+")? name="([a-z_]+)" value="([^"]*)"`)

// TestAuthorizePageFormRoundTrip plays the browser over HTTP: it opens the
// page, submits its own form as rendered (hidden fields and prefilled
// values, Allow), and follows the redirect to the callback, which must get
// a code the app can exchange and the state it sent.
func TestAuthorizePageFormRoundTrip(t *testing.T) {
	e, _ := oauthConfigured(t)
	got := make(chan url.Values, 1)
	callback := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.URL.Query()
	}))
	t.Cleanup(callback.Close)
	emu := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = e.ServeHTTP(w, r, caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
			http.NotFound(w, r)
			return nil
		}))
	}))
	t.Cleanup(emu.Close)

	q := authorizeQuery(scopeUserInfo, "st&=é")
	q.Set("redirect_uri", callback.URL+"/wx/web/callback")
	resp, err := http.Get(emu.URL + pathAuthorize + "?" + q.Encode() + "#wechat_redirect")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	action := regexp.MustCompile(`<form method="post" action="([^"]+)"`).FindSubmatch(page)
	if resp.StatusCode != http.StatusOK || action == nil {
		t.Fatalf("page: %d\n%s", resp.StatusCode, page)
	}
	form := url.Values{"action": {"allow"}}
	for _, m := range formInput.FindAllSubmatch(page, -1) {
		form.Set(string(m[1]), html.UnescapeString(string(m[2])))
	}
	form.Set("unionid", "uRound")
	resp, err = http.PostForm(emu.URL+html.UnescapeString(string(action[1])), form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var cb url.Values
	select {
	case cb = <-got:
	default:
		t.Fatalf("the callback was not reached (status %d)", resp.StatusCode)
	}
	if cb.Get("state") != "st&=é" || cb.Get("code") == "" {
		t.Fatalf("callback query = %v", cb)
	}
	m := oauthExchange(t, e, cb.Get("code"))
	if m["unionid"] != "uRound" || m["scope"] != scopeUserInfo || !strings.HasPrefix(m["openid"].(string), "o") {
		t.Fatalf("exchange = %v", m)
	}
}
