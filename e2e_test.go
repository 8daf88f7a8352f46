package wechatauth_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"
	"github.com/golang-jwt/jwt/v5"

	_ "github.com/wxauth/caddy-wechat-auth"
	_ "github.com/wxauth/caddy-wechat-auth/emulator"
	"github.com/wxauth/caddy-wechat-auth/internal/token"
)

const (
	e2eAppID   = "wxe2e0000000000001"
	e2eSecret  = "e2e-app-secret"
	e2eKey     = "e2e-hs256-signing-key-0123456789abcdef"
	siteURL    = "http://127.0.0.1:9080"
	wechatURL  = "http://127.0.0.1:9081"
	emuCodeURL = wechatURL + "/emulator/code"
)

// appBlock is a site route of the end-to-end tests: wechat_auth for app
// under prefix (every endpoint path moved under it) on db, answering
// respond.
func appBlock(app, prefix, db, respond string) string {
	return fmt.Sprintf(`
	handle %[2]s/* {
		wechat_auth {
			app_id       %[1]s
			app_secret   secret-of-%[1]s
			api_base     http://127.0.0.1:9081
			db           %[3]s
			login_path   %[2]s/wx/login
			refresh_path %[2]s/wx/refresh
			logout_path  %[2]s/wx/logout
			profile_path %[2]s/wx/profile
			phone_path   %[2]s/wx/phone
			decrypt_path %[2]s/wx/decrypt
			jwks_path    %[2]s/jwks.json
		}
		respond %[4]q
	}`, app, prefix, db, respond)
}

// e2eConfig is the Caddyfile of the end-to-end tests: the emulator on one
// loopback port, a protected respond route on another. extra goes into
// the wechat_auth block.
func e2eConfig(db, extra string) string {
	return e2eConfigKeys(db, "signing_key "+e2eKey, extra)
}

// e2eConfigKeys is e2eConfig with other key lines.
func e2eConfigKeys(db, keys, extra string) string {
	return fmt.Sprintf(`{
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
	wechat_auth {
		app_id      %[1]s
		app_secret  %[2]s
		api_base    http://127.0.0.1:9081
		db          %[3]s
		%[4]s
		timeout     1s
		%[5]s
	}
	respond "user={http.auth.user.id} openid={http.auth.user.openid} sid={http.auth.user.sid} hdr={http.request.header.X-WeChat-User-ID} spoof={http.request.header.X-WeChat-Role}"
}
`, e2eAppID, e2eSecret, db, keys, extra)
}

// emptyConfig stops the wechat_auth handlers (and closes their store),
// standing in for a Caddy restart.
const emptyConfig = `{
	admin localhost:2999
	http_port 9080
	https_port 9443
	skip_install_trust
}
http://127.0.0.1:9080 {
	respond "down" 503
}
`

type e2e struct {
	t      *testing.T
	tester *caddytest.Tester
	client *http.Client
	db     string
}

func newE2E(t *testing.T, extra string) *e2e {
	t.Helper()
	e := &e2e{
		t:      t,
		tester: caddytest.NewTester(t),
		client: &http.Client{Timeout: 10 * time.Second},
		db:     filepath.Join(t.TempDir(), "wechat_auth.db"),
	}
	e.load(extra)
	t.Cleanup(e.stop)
	return e
}

// stop loads a config without wechat_auth: every handler goes and the
// store is closed, as when Caddy stops.
func (e *e2e) stop() {
	e.tester.InitServer(emptyConfig, "caddyfile")
	e.client.CloseIdleConnections()
}

func (e *e2e) load(extra string) {
	e.t.Helper()
	e.loadRaw(e2eConfig(e.db, extra))
}

func (e *e2e) loadRaw(config string) {
	e.t.Helper()
	e.tester.InitServer(config, "caddyfile")
	// The old config's server closes its connections: do not reuse one.
	e.client.CloseIdleConnections()
	if e.t.Failed() {
		e.t.FailNow()
	}
}

type answer struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func (e *e2e) do(method, url, contentType, body string, hdr map[string]string) answer {
	e.t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	res, err := e.client.Do(req)
	if err != nil && (method == http.MethodGet || method == http.MethodHead) && errors.Is(err, io.EOF) {
		// Right after a config load the old server, shutting down, may
		// still accept a connection on the shared listener and close it
		// unanswered. A GET is idempotent: send it once more.
		e.client.CloseIdleConnections()
		res, err = e.client.Do(req)
	}
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, url, err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	a := answer{status: res.StatusCode, header: res.Header, raw: string(raw)}
	_ = json.Unmarshal(raw, &a.body)
	return a
}

func (e *e2e) postJSON(url string, v any, hdr map[string]string) answer {
	e.t.Helper()
	b, _ := json.Marshal(v)
	return e.do(http.MethodPost, url, "application/json", string(b), hdr)
}

func bearer(tok string) map[string]string { return map[string]string{"Authorization": "Bearer " + tok} }

// mint asks the emulator for a wx.login code for openid.
func (e *e2e) mint(openid string) string {
	e.t.Helper()
	a := e.postJSON(emuCodeURL, map[string]string{"openid": openid}, nil)
	code, _ := a.body["code"].(string)
	if a.status != 200 || code == "" {
		e.t.Fatalf("minting code: %d %s", a.status, a.raw)
	}
	return code
}

// login logs openid in and returns the answer body.
func (e *e2e) login(openid string) map[string]any {
	e.t.Helper()
	a := e.postJSON(siteURL+"/wx/login", map[string]string{"code": e.mint(openid)}, nil)
	if a.status != 200 {
		e.t.Fatalf("login: %d %s", a.status, a.raw)
	}
	return a.body
}

func (e *e2e) fault(f map[string]any) {
	e.t.Helper()
	if a := e.postJSON(wechatURL+"/emulator/fault", f, nil); a.status >= 300 {
		e.t.Fatalf("setting fault: %d %s", a.status, a.raw)
	}
}

func expect(t *testing.T, a answer, status int, code string) {
	t.Helper()
	if a.status != status {
		t.Fatalf("want status %d, got %d: %s", status, a.status, a.raw)
	}
	if code != "" {
		if a.body["status"] != "error" || a.body["error"] != code {
			t.Fatalf("want error %q, got %s", code, a.raw)
		}
		if msg, _ := a.body["message"].(string); msg == "" {
			t.Fatalf("error without message: %s", a.raw)
		}
	}
}

// noSecrets fails if an answer carries something that must never leave.
func noSecrets(t *testing.T, a answer, secrets ...string) {
	t.Helper()
	for _, s := range append(secrets, e2eSecret, "session_key") {
		if s != "" && strings.Contains(a.raw, s) {
			t.Fatalf("answer leaks %q: %s", s, a.raw)
		}
	}
}

func TestE2ELoginAndGuard(t *testing.T) {
	e := newE2E(t, "")

	// Protected route without a token.
	a := e.do("GET", siteURL+"/hello", "", "", nil)
	expect(t, a, 401, "invalid_token")
	if got := a.header.Get("WWW-Authenticate"); got != `Bearer realm="wechat_auth"` {
		t.Fatalf("WWW-Authenticate without token: %q", got)
	}

	// Login with a form body and the jscode alias.
	code := e.mint("o_e2e_user_1")
	form := url.Values{"jscode": {code}, "nickname": {"Ann"}, "gender": {"2"}}
	a = e.do("POST", siteURL+"/wx/login", "application/x-www-form-urlencoded", form.Encode(), nil)
	expect(t, a, 200, "")
	noSecrets(t, a, code)
	if a.body["status"] != "success" || a.body["token_type"] != "Bearer" || a.body["new_user"] != true {
		t.Fatalf("login answer: %s", a.raw)
	}
	if a.body["expires_in"].(float64) != 900 || a.body["refresh_expires_in"].(float64) != 2592000 {
		t.Fatalf("lifetimes: %s", a.raw)
	}
	user := a.body["user"].(map[string]any)
	if user["nickname"] != "Ann" || user["gender"].(float64) != 2 {
		t.Fatalf("profile from login body not stored: %s", a.raw)
	}
	if _, err := time.Parse(time.RFC3339, user["created_at"].(string)); err != nil {
		t.Fatalf("created_at: %v", err)
	}
	tok := a.body["token"].(string)
	uid := a.body["user_id"].(float64)
	if rt, _ := a.body["refresh_token"].(string); len(rt) < 43 {
		t.Fatalf("refresh token too short: %q", rt)
	}

	// The same code again: WeChat says 40163.
	a = e.postJSON(siteURL+"/wx/login", map[string]string{"code": code}, nil)
	expect(t, a, 400, "invalid_code")
	noSecrets(t, a, code)
	// An unknown code: 40029.
	expect(t, e.postJSON(siteURL+"/wx/login", map[string]string{"code": "nonsense"}, nil), 400, "invalid_code")

	// Returning user: same id, not new, profile not overwritten.
	code = e.mint("o_e2e_user_1")
	a = e.postJSON(siteURL+"/wx/login", map[string]any{"code": code, "nickname": "Mallory"}, nil)
	expect(t, a, 200, "")
	if a.body["new_user"] != false || a.body["user_id"].(float64) != uid || a.body["user"].(map[string]any)["nickname"] != "Ann" {
		t.Fatalf("returning user: %s", a.raw)
	}

	// The protected route with the token, in both header forms, with a
	// spoofed identity that must not get through.
	for _, hdr := range []map[string]string{
		{"Authorization": "Bearer " + tok, "X-WeChat-User-ID": "1", "X_WeChat_Role": "admin", "x-wechat-role": "admin"},
		{"token": tok, "X-Wechat-User-Id": "999"},
	} {
		a = e.do("GET", siteURL+"/hello", "", "", hdr)
		expect(t, a, 200, "")
		want := fmt.Sprintf("user=%d openid=o_e2e_user_1 ", int(uid))
		if !strings.HasPrefix(a.raw, want) || !strings.Contains(a.raw, fmt.Sprintf(" hdr=%d ", int(uid))) || !strings.HasSuffix(a.raw, " spoof=") {
			t.Fatalf("upstream saw %q", a.raw)
		}
	}

	// Profile read and update.
	a = e.do("GET", siteURL+"/wx/profile", "", "", bearer(tok))
	expect(t, a, 200, "")
	if a.body["user"].(map[string]any)["nickname"] != "Ann" {
		t.Fatalf("profile: %s", a.raw)
	}
	a = e.do("PATCH", siteURL+"/wx/profile", "application/json", `{"nickname":"安娜","avatar_url":"https://example.com/a.png"}`, bearer(tok))
	expect(t, a, 200, "")
	if u := a.body["user"].(map[string]any); u["nickname"] != "安娜" || u["avatar_url"] != "https://example.com/a.png" || u["gender"].(float64) != 2 {
		t.Fatalf("profile update: %s", a.raw)
	}
	for _, bad := range []string{
		`{"nickname":""}`,
		`{"nickname":"` + strings.Repeat("x", 65) + `"}`,
		`{"nickname":"a\u0007b"}`,
		`{"avatar_url":"javascript:alert(1)"}`,
		`{"avatar_url":"/relative.png"}`,
		`{"gender":3}`,
		`{"role":"admin"}`,
		`{"nickname":`,
		`[1,2]`,
	} {
		a = e.do("PATCH", siteURL+"/wx/profile", "application/json", bad, bearer(tok))
		expect(t, a, 400, "invalid_request")
	}
	expect(t, e.do("PATCH", siteURL+"/wx/profile", "text/plain", `nickname=x`, bearer(tok)), 415, "unsupported_media_type")
	expect(t, e.do("PATCH", siteURL+"/wx/profile", "application/json", `{"nickname":"`+strings.Repeat("x", 70<<10)+`"}`, bearer(tok)), 413, "payload_too_large")
	a = e.do("DELETE", siteURL+"/wx/profile", "", "", bearer(tok))
	expect(t, a, 405, "method_not_allowed")
	if a.header.Get("Allow") == "" {
		t.Fatal("405 without Allow")
	}
	// Nothing was lost by the bad requests.
	a = e.do("GET", siteURL+"/wx/profile", "", "", bearer(tok))
	if u := a.body["user"].(map[string]any); u["nickname"] != "安娜" {
		t.Fatalf("profile after bad updates: %s", a.raw)
	}
	expect(t, e.do("GET", siteURL+"/wx/login", "", "", nil), 405, "method_not_allowed")
	expect(t, e.postJSON(siteURL+"/wx/login", map[string]string{}, nil), 400, "invalid_request")

	// CORS preflight passes untouched.
	a = e.do("OPTIONS", siteURL+"/hello", "", "", map[string]string{"Access-Control-Request-Method": "GET", "Origin": "https://x"})
	expect(t, a, 200, "")
}

func TestE2EBadTokens(t *testing.T) {
	e := newE2E(t, "")
	body := e.login("o_e2e_tokens")
	tok := body["token"].(string)

	key, err := token.NewHMACKey([]byte(e2eKey), "")
	if err != nil {
		t.Fatal(err)
	}
	sign := func(mut func(h map[string]any, c jwt.MapClaims), method jwt.SigningMethod, secret any) string {
		now := time.Now()
		c := jwt.MapClaims{
			"iss": "caddy-wechat-auth", "aud": e2eAppID, "sub": "1", "sid": "s1",
			"openid": "o_forged", "appid": e2eAppID, "jti": "j1",
			"iat": now.Unix(), "exp": now.Add(10 * time.Minute).Unix(),
		}
		tk := jwt.NewWithClaims(method, c)
		tk.Header["typ"] = "at+jwt"
		tk.Header["kid"] = key.ID()
		mut(tk.Header, c)
		s, err := tk.SignedString(secret)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	same := func(map[string]any, jwt.MapClaims) {}
	// Our own forge with the right key is accepted: the cases below differ
	// from it by one thing each.
	good := sign(same, jwt.SigningMethodHS256, []byte(e2eKey))
	expect(t, e.do("GET", siteURL+"/x", "", "", bearer(good)), 200, "")

	parts := strings.Split(tok, ".")
	tampered := parts[0] + "." + strings.TrimRight(parts[1], "A") + "B." + parts[2]
	none := sign(same, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType)
	cases := map[string]string{
		"tampered": tampered,
		"alg none": none,
		"expired": sign(func(_ map[string]any, c jwt.MapClaims) {
			c["exp"] = time.Now().Add(-time.Hour).Unix()
			c["iat"] = time.Now().Add(-2 * time.Hour).Unix()
		}, jwt.SigningMethodHS256, []byte(e2eKey)),
		"wrong audience": sign(func(_ map[string]any, c jwt.MapClaims) { c["aud"] = "someone-else" }, jwt.SigningMethodHS256, []byte(e2eKey)),
		"wrong issuer":   sign(func(_ map[string]any, c jwt.MapClaims) { c["iss"] = "evil" }, jwt.SigningMethodHS256, []byte(e2eKey)),
		"wrong type":     sign(func(h map[string]any, _ jwt.MapClaims) { h["typ"] = "JWT" }, jwt.SigningMethodHS256, []byte(e2eKey)),
		"wrong key":      sign(same, jwt.SigningMethodHS256, []byte("another-key-0123456789abcdef0123456789")),
		"HS512":          sign(same, jwt.SigningMethodHS512, []byte(e2eKey)),
		"no exp":         sign(func(_ map[string]any, c jwt.MapClaims) { delete(c, "exp") }, jwt.SigningMethodHS256, []byte(e2eKey)),
		"garbage":        "not.a.jwt",
		"oversize":       tok + strings.Repeat("A", 5000),
	}
	for name, bad := range cases {
		t.Run(name, func(t *testing.T) {
			a := e.do("GET", siteURL+"/x", "", "", bearer(bad))
			expect(t, a, 401, "invalid_token")
			if got := a.header.Get("WWW-Authenticate"); got != `Bearer error="invalid_token"` {
				t.Fatalf("WWW-Authenticate: %q", got)
			}
		})
	}
}

func TestE2EWeChatFaults(t *testing.T) {
	e := newE2E(t, "")

	// errcode -1 once: retried once, the login succeeds.
	e.fault(map[string]any{"path": "/sns/jscode2session", "errcode": -1, "times": 1})
	e.login("o_e2e_faults")

	// errcode -1 twice: 503 with Retry-After.
	e.fault(map[string]any{"path": "/sns/jscode2session", "errcode": -1, "times": 2})
	a := e.postJSON(siteURL+"/wx/login", map[string]string{"code": e.mint("o_e2e_faults")}, nil)
	expect(t, a, 503, "wechat_unavailable")
	if a.header.Get("Retry-After") == "" {
		t.Fatal("503 without Retry-After")
	}

	cases := []struct {
		name   string
		fault  map[string]any
		status int
		code   string
	}{
		{"garbage", map[string]any{"garbage": true}, 502, "wechat_error"},
		{"http 500", map[string]any{"status": 500}, 503, "wechat_unavailable"},
		{"timeout", map[string]any{"delay": "3s"}, 503, "wechat_unavailable"},
		{"rate limited", map[string]any{"errcode": 45011}, 429, "rate_limited"},
		{"blocked", map[string]any{"errcode": 40226}, 403, "user_blocked"},
		{"other errcode", map[string]any{"errcode": 40013}, 502, "wechat_error"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code := e.mint("o_e2e_faults")
			c.fault["path"] = "/sns/jscode2session"
			e.fault(c.fault)
			a := e.postJSON(siteURL+"/wx/login", map[string]string{"code": code}, nil)
			expect(t, a, c.status, c.code)
			noSecrets(t, a, code)
		})
	}
}

func TestE2EConcurrentFirstLogins(t *testing.T) {
	e := newE2E(t, "")
	const n = 12
	codes := make([]string, n)
	for i := range codes {
		codes[i] = e.mint("o_e2e_race")
	}
	var wg sync.WaitGroup
	results := make([]answer, n)
	for i := range codes {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			b, _ := json.Marshal(map[string]string{"code": codes[i]})
			res, err := e.client.Post(siteURL+"/wx/login", "application/json", bytes.NewReader(b))
			if err != nil {
				t.Error(err)
				return
			}
			defer res.Body.Close()
			raw, _ := io.ReadAll(res.Body)
			results[i] = answer{status: res.StatusCode, raw: string(raw)}
			_ = json.Unmarshal(raw, &results[i].body)
		}(i)
	}
	wg.Wait()
	created := 0
	ids := map[float64]bool{}
	for _, a := range results {
		if a.status != 200 {
			t.Fatalf("login: %d %s", a.status, a.raw)
		}
		if a.body["new_user"] == true {
			created++
		}
		ids[a.body["user_id"].(float64)] = true
	}
	if created != 1 || len(ids) != 1 {
		t.Fatalf("%d logins created %d users with ids %v; want exactly one", n, created, ids)
	}
}

func TestE2ERestartAndReload(t *testing.T) {
	e := newE2E(t, "")
	body := e.login("o_e2e_restart")
	tok := body["token"].(string)
	uid := body["user_id"].(float64)
	a := e.do("PATCH", siteURL+"/wx/profile", "application/json", `{"nickname":"Keep me"}`, bearer(tok))
	expect(t, a, 200, "")

	// Reload with a changed config: the store is shared across the reload,
	// nothing hangs, the token stays valid and the data is there.
	done := make(chan struct{})
	go func() {
		defer close(done)
		e.load("access_ttl 20m\n\t\tleeway 5s")
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("reload hung")
	}
	a = e.do("GET", siteURL+"/wx/profile", "", "", bearer(tok))
	expect(t, a, 200, "")
	if a.body["user"].(map[string]any)["nickname"] != "Keep me" {
		t.Fatalf("after reload: %s", a.raw)
	}
	if a = e.postJSON(siteURL+"/wx/login", map[string]string{"code": e.mint("o_e2e_restart")}, nil); a.body["expires_in"].(float64) != 1200 {
		t.Fatalf("changed config not in effect: %s", a.raw)
	}

	// Restart: every wechat_auth handler goes (the store is closed), then
	// the config comes back and reopens the file.
	e.stop()
	expect(t, e.do("GET", siteURL+"/wx/profile", "", "", bearer(tok)), 503, "")
	e.load("")
	a = e.do("GET", siteURL+"/wx/profile", "", "", bearer(tok))
	expect(t, a, 200, "")
	if u := a.body["user"].(map[string]any); u["nickname"] != "Keep me" || u["id"].(float64) != uid {
		t.Fatalf("after restart: %s", a.raw)
	}
	again := e.login("o_e2e_restart")
	if again["new_user"] != false || again["user_id"].(float64) != uid {
		t.Fatalf("user not found after restart: %v", again)
	}
}

func TestE2EBadConfig(t *testing.T) {
	caddytest.AssertLoadError(t, strings.Replace(e2eConfig(filepath.Join(t.TempDir(), "x.db"), ""), "signing_key "+e2eKey, "signing_key tooshort", 1),
		"caddyfile", "at least 32 bytes")
	caddytest.AssertLoadError(t, e2eConfig(filepath.Join(t.TempDir(), "x.db"), "signing_key_file /nonexistent/key.pem"),
		"caddyfile", "not both")
	caddytest.AssertLoadError(t, e2eConfigKeys(filepath.Join(t.TempDir(), "x.db"), "signing_key_file /nonexistent/key.pem", ""),
		"caddyfile", "signing_key_file /nonexistent/key.pem: reading")
	notPEM := filepath.Join(t.TempDir(), "garbage.pem")
	if err := os.WriteFile(notPEM, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	caddytest.AssertLoadError(t, e2eConfigKeys(filepath.Join(t.TempDir(), "x.db"), "signing_key_file "+notPEM, ""),
		"caddyfile", "signing_key_file "+notPEM)
	caddytest.AssertLoadError(t, e2eConfig(filepath.Join(t.TempDir(), "x.db"), "app_idd wx"),
		"caddyfile", `unknown subdirective \"app_idd\", at Caddyfile:25`)
	caddytest.AssertLoadError(t, e2eConfig(filepath.Join(t.TempDir(), "x.db"), "access_ttl forever"),
		"caddyfile", "access_ttl: bad duration")
	// A secret from an unset environment variable: refused at start.
	caddytest.AssertLoadError(t, strings.Replace(e2eConfig(filepath.Join(t.TempDir(), "x.db"), ""), "app_secret  "+e2eSecret, "app_secret  {env.CADDY_WECHAT_AUTH_TEST_UNSET}", 1),
		"caddyfile", "app_secret is required")
}
