package wechatauth_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// echoUpstream is an upstream on loopback that answers with the request
// headers it received, as JSON (names exactly as they arrived).
func echoUpstream(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(r.Header)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// stripConfig is a site with two wechat_auth blocks under matchers, with
// different header prefixes, in front of the echo upstream. servers goes
// into the global servers options.
func stripConfig(dir, upstream, servers string) string {
	return fmt.Sprintf(`{
	admin localhost:2999
	http_port 9080
	https_port 9443
	grace_period 1s
	skip_install_trust
	servers {
		%[6]s
	}
}

http://127.0.0.1:9081 {
	wechat_emulator {
		app_id     %[1]s
		app_secret %[2]s
	}
	respond "not an emulator path" 404
}

http://127.0.0.1:9080 {
	wechat_auth /api/* {
		app_id      %[1]s
		app_secret  %[2]s
		api_base    http://127.0.0.1:9081
		db          %[3]s/a.db
		signing_key %[4]s
		login_path  /api/wx/login
	}
	wechat_auth /b/* {
		app_id        wxe2e00000000000b2
		app_secret    secret-of-b
		api_base      http://127.0.0.1:9081
		db            %[3]s/b.db
		header_prefix X-App-B-
		optional
	}
	reverse_proxy %[5]s
}
`, e2eAppID, e2eSecret, dir, e2eKey, strings.TrimPrefix(upstream, "http://"), servers)
}

// forged are identity headers a client makes up, in both spellings and
// for both prefixes of stripConfig.
var forged = map[string]string{
	"X-WeChat-User-ID": "1",
	"X_WeChat_User_ID": "1",
	"x-wechat-role":    "admin",
	"X-App-B-User-ID":  "2",
	"X_App_B_OpenID":   "o_forged",
	"X-Not-Identity":   "kept",
	"X_Not_Identity":   "kept_too",
	// PHP and other CGI-style backends fold '.' as they fold '-' and '_'.
	"X.WeChat.User.ID": "1",
	"X.App.B.OpenID":   "o_forged_dot",
	"X.Not.Identity":   "kept_dot",
}

// getEcho sends GET path with the forged headers (names exactly as
// written, underscores included) and hdr, and returns the headers the
// upstream received, names as they arrived.
func getEcho(t *testing.T, e *e2e, path string, hdr map[string]string) map[string][]string {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, siteURL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range forged {
		req.Header[k] = []string{v} // not canonicalized: the underscore spelling goes out as is
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	res, err := e.client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: status %d", path, res.StatusCode)
	}
	var got map[string][]string
	if err := json.NewDecoder(res.Body).Decode(&got); err != nil {
		t.Fatalf("GET %s: reading the echo: %v", path, err)
	}
	return got
}

// TestE2EStripOutsideMatcher shows that forged identity headers never
// reach the upstream on any path of the site: outside both matchers, and
// inside one matcher where the other block's prefix is forged, while the
// headers the guard sets do arrive. Caddy drops request headers with '_'
// or '.' unless the server lists them in expected_underscore_headers or
// expected_dot_headers (and then drops their '-' spelling), so the '-'
// spelling is shown with the default server and the '_' and '.'
// spellings with servers that let them in.
func TestE2EStripOutsideMatcher(t *testing.T) {
	up := echoUpstream(t)
	e := newE2E(t, "")
	for _, c := range []struct {
		name, servers string
		spelling      string // of the forged identity headers that must arrive without the fix
	}{
		{"dash", "", "-"},
		{"underscore", "expected_underscore_headers x_wechat_* x_app_b_* x_not_*", "_"},
		{"dot", "expected_dot_headers x.wechat.* x.app.b.* x.not.*", "."},
	} {
		t.Run(c.name, func(t *testing.T) {
			e.loadRaw(stripConfig(filepath.Dir(e.db), up.URL, c.servers))
			checkStripped(t, e, c.spelling)
		})
	}
}

// checkStripped sends the forged headers to each kind of path of
// stripConfig and checks what reaches the upstream; spelling is the
// separator of the names this server lets in.
func checkStripped(t *testing.T, e *e2e, spelling string) {
	identity := func(k string) bool {
		f := strings.NewReplacer("_", "-", ".", "-").Replace(strings.ToLower(k))
		return strings.HasPrefix(f, "x-wechat-") || strings.HasPrefix(f, "x-app-b-")
	}
	noIdentity := func(t *testing.T, got map[string][]string, guardSet ...string) {
		t.Helper()
		for k, v := range got {
			if identity(k) && !slices.Contains(guardSet, k) {
				t.Errorf("forged header reached the upstream: %s: %v", k, v)
			}
		}
		// The server lets this spelling in: an unrelated header in it arrives.
		unrelated := strings.ReplaceAll("X-Not-Identity", "-", spelling)
		if v := got[textproto.CanonicalMIMEHeaderKey(unrelated)]; len(v) != 1 || !strings.HasPrefix(v[0], "kept") {
			t.Errorf("an unrelated header %s did not arrive: %v", unrelated, got)
		}
	}

	t.Run("outside every matcher", func(t *testing.T) {
		noIdentity(t, getEcho(t, e, "/other", nil))
	})

	t.Run("inside the optional block, anonymous", func(t *testing.T) {
		noIdentity(t, getEcho(t, e, "/b/x", nil))
	})

	t.Run("inside the guarded block", func(t *testing.T) {
		a := e.postJSON(siteURL+"/api/wx/login", map[string]string{"code": e.mint("o_strip_user")}, nil)
		expect(t, a, 200, "")
		tok := a.body["token"].(string)
		uid := fmt.Sprint(int64(a.body["user_id"].(float64)))
		got := getEcho(t, e, "/api/x", bearer(tok))
		noIdentity(t, got, "X-Wechat-User-Id", "X-Wechat-Openid", "X-Wechat-Appid", "X-Wechat-Platform")
		if v := got["X-Wechat-Platform"]; len(v) != 1 || v[0] != "wechat" {
			t.Fatalf("X-WeChat-Platform at the upstream: %v", v)
		}
		if v := got["X-Wechat-User-Id"]; len(v) != 1 || v[0] != uid {
			t.Fatalf("X-WeChat-User-ID at the upstream: want [%s], got %v", uid, v)
		}
		if v := got["X-Wechat-Openid"]; len(v) != 1 || v[0] != "o_strip_user" {
			t.Fatalf("X-WeChat-OpenID at the upstream: %v", v)
		}
	})
}

// TestE2EStripDirective: with wechat_auth inside a handle block, its own
// strip step covers that block only; wechat_auth_strip at the top of the
// site covers the other paths too, in both spellings.
func TestE2EStripDirective(t *testing.T) {
	up := echoUpstream(t)
	e := newE2E(t, "")
	config := func(strip string) string {
		return fmt.Sprintf(`{
	admin localhost:2999
	http_port 9080
	https_port 9443
	grace_period 1s
	skip_install_trust
	servers {
		expected_underscore_headers x_wechat_user_id
	}
}

http://127.0.0.1:9080 {
	%[1]s
	handle /api/* {
		wechat_auth {
			app_id     %[2]s
			app_secret %[3]s
			api_base   http://127.0.0.1:9081
			db         %[4]s
			login_path /api/wx/login
		}
		reverse_proxy %[5]s
	}
	handle {
		reverse_proxy %[5]s
	}
}
`, strip, e2eAppID, e2eSecret, e.db, strings.TrimPrefix(up.URL, "http://"))
	}
	forgedAt := func(t *testing.T) []string {
		t.Helper()
		got := getEcho(t, e, "/other", nil)
		var leaked []string
		for k := range got {
			if strings.HasPrefix(strings.ReplaceAll(strings.ToLower(k), "_", "-"), "x-wechat-") {
				leaked = append(leaked, k)
			}
		}
		slices.Sort(leaked)
		return leaked
	}

	e.loadRaw(config(""))
	// Caddy itself drops X-WeChat-User-ID here (the '-' twin of an allowed
	// '_' name), so the forged headers that arrive are these two.
	if got := forgedAt(t); !slices.Equal(got, []string{"X-Wechat-Role", "X_wechat_user_id"}) {
		t.Fatalf("without wechat_auth_strip, want both spellings to reach the upstream outside the handle block, got %v", got)
	}
	e.loadRaw(config("wechat_auth_strip"))
	if got := forgedAt(t); len(got) != 0 {
		t.Fatalf("with wechat_auth_strip, forged headers reached the upstream: %v", got)
	}
}

// TestE2EStripWebCookies: with a web block, the directive's strip step
// also takes the block's session cookies off requests outside its matcher,
// so an upstream never sees a session's tokens there, while a request
// inside the matcher still authenticates by the cookie (the strip step
// hands the cookies to the guard) and reaches the upstream without them.
func TestE2EStripWebCookies(t *testing.T) {
	up := echoUpstream(t)
	e := newE2E(t, "")
	e.loadRaw(fmt.Sprintf(`{
	admin localhost:2999
	http_port 9080
	https_port 9443
	grace_period 1s
	skip_install_trust
}

http://127.0.0.1:9081 {
	wechat_emulator {
		app_id     %[1]s
		app_secret %[2]s
	}
	respond "not an emulator path" 404
}

http://127.0.0.1:9080 {
	wechat_auth /api/* {
		app_id      %[1]s
		app_secret  %[2]s
		api_base    http://127.0.0.1:9081
		db          %[3]s/a.db
		signing_key %[4]s
		login_path  /api/wx/login
		web {
			path   /api/web
			cookie wa
		}
	}
	reverse_proxy %[5]s
}
`, e2eAppID, e2eSecret, filepath.Dir(e.db), e2eKey, strings.TrimPrefix(up.URL, "http://")))

	// A real cookie session, entered through a web-view ticket.
	a := e.postJSON(siteURL+"/api/wx/login", map[string]string{"code": e.mint("o_cookie_user")}, nil)
	expect(t, a, 200, "")
	tk := e.postJSON(siteURL+"/api/web/ticket", map[string]string{"next": "/api/x"}, bearer(a.body["token"].(string)))
	expect(t, tk, 200, "")
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := noRedirect.Get(siteURL + tk.body["url"].(string))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	var session []string
	for _, c := range res.Cookies() {
		session = append(session, c.Name+"="+c.Value)
	}
	if res.StatusCode != http.StatusFound || len(session) != 2 {
		t.Fatalf("enter: status %d, cookies %v", res.StatusCode, session)
	}
	cookie := strings.Join(session, "; ") + "; wa_state=s; theirs=1"

	for _, c := range []struct{ path, uid string }{
		{"/other", ""}, // outside the matcher: the cookies are taken off all the same
		{"/api/x", fmt.Sprint(a.body["user_id"])}, // inside: authenticated by the cookie
	} {
		got := getEcho(t, e, c.path, map[string]string{"Cookie": cookie})
		if v := got["Cookie"]; len(v) != 1 || v[0] != "theirs=1" {
			t.Errorf("%s: Cookie at the upstream = %q, want only theirs=1", c.path, v)
		}
		if v := got["X-Wechat-User-Id"]; c.uid != "" && (len(v) != 1 || v[0] != c.uid) {
			t.Errorf("%s: X-WeChat-User-ID at the upstream = %v, want %s", c.path, v, c.uid)
		}
	}
}
