package wechatauth_test

import (
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"
)

func TestE2ELogoutSurvivesRestart(t *testing.T) {
	e := newE2E(t, "")
	body := e.login("o_e2e_logout")
	tok, rt := body["token"].(string), body["refresh_token"].(string)
	other := e.login("o_e2e_logout")["token"].(string)

	// Refresh rotates; the retried refresh within 10 s gets the same pair.
	a := e.postJSON(siteURL+"/wx/refresh", map[string]string{"refresh_token": rt}, nil)
	expect(t, a, 200, "")
	again := e.postJSON(siteURL+"/wx/refresh", map[string]string{"refresh_token": rt}, nil)
	expect(t, again, 200, "")
	if a.body["refresh_token"] != again.body["refresh_token"] || a.body["token"] != again.body["token"] {
		t.Fatalf("retried refresh got another pair")
	}
	rt2 := a.body["refresh_token"].(string)

	expect(t, e.do("POST", siteURL+"/wx/logout", "", "", bearer(tok)), 200, "")
	expect(t, e.do("GET", siteURL+"/x", "", "", bearer(tok)), 401, "invalid_token")
	expect(t, e.postJSON(siteURL+"/wx/refresh", map[string]string{"refresh_token": rt2}, nil), 401, "invalid_grant")
	expect(t, e.do("GET", siteURL+"/x", "", "", bearer(other)), 200, "")

	// Restart: the revocation is rebuilt from the database.
	e.stop()
	e.load("")
	expect(t, e.do("GET", siteURL+"/x", "", "", bearer(tok)), 401, "invalid_token")
	expect(t, e.do("GET", siteURL+"/x", "", "", bearer(other)), 200, "")
	// Logging out again is fine.
	expect(t, e.do("POST", siteURL+"/wx/logout", "", "", bearer(tok)), 200, "")

	// Logout everywhere, then a reload: still refused.
	expect(t, e.postJSON(siteURL+"/wx/logout", map[string]bool{"all": true}, bearer(other)), 200, "")
	e.load("leeway 10s")
	expect(t, e.do("GET", siteURL+"/x", "", "", bearer(other)), 401, "invalid_token")
}

func TestE2EOptionalAndUnionID(t *testing.T) {
	e := newE2E(t, "optional")
	// Anonymous: passes with no identity.
	a := e.do("GET", siteURL+"/x", "", "", map[string]string{"X-WeChat-User-ID": "7"})
	expect(t, a, 200, "")
	if !strings.HasPrefix(a.raw, "user= openid= sid= hdr= ") {
		t.Fatalf("anonymous request carried an identity: %q", a.raw)
	}
	// A bad token is still refused.
	expect(t, e.do("GET", siteURL+"/x", "", "", bearer("a.b.c")), 401, "invalid_token")

	// unionid flows from WeChat into the token and the headers.
	a = e.postJSON(emuCodeURL, map[string]string{"openid": "o_e2e_union", "unionid": "u_e2e_union"}, nil)
	a = e.postJSON(siteURL+"/wx/login", map[string]string{"code": a.body["code"].(string)}, nil)
	expect(t, a, 200, "")
	tok := a.body["token"].(string)
	if !strings.Contains(tokenPayload(t, tok), `"unionid":"u_e2e_union"`) {
		t.Fatalf("unionid not in the token: %s", tokenPayload(t, tok))
	}
}

func TestE2ECaddyErrors(t *testing.T) {
	e := newE2E(t, "errors caddy")
	e.loadRaw(strings.Replace(e2eConfig(e.db, "errors caddy"), "\trespond \"user=", "\thandle_errors {\n\t\trespond \"shaped by handle_errors: {err.status_code}\"\n\t}\n\trespond \"user=", 1))
	a := e.do("GET", siteURL+"/x", "", "", nil)
	if a.status != 401 || a.raw != "shaped by handle_errors: 401" {
		t.Fatalf("errors caddy: %d %q", a.status, a.raw)
	}
	if a.header.Get("WWW-Authenticate") != `Bearer realm="wechat_auth"` {
		t.Fatalf("challenge lost: %v", a.header)
	}
	a = e.do("GET", siteURL+"/x", "", "", bearer("a.b.c"))
	if a.status != 401 || a.header.Get("WWW-Authenticate") != `Bearer error="invalid_token"` {
		t.Fatalf("errors caddy, bad token: %d %v", a.status, a.header)
	}
	// Endpoints still answer JSON.
	expect(t, e.postJSON(siteURL+"/wx/login", map[string]string{}, nil), 400, "invalid_request")
}

func TestE2ELoginRateLimit(t *testing.T) {
	e := newE2E(t, "login_rate_limit 2 1m")
	e.login("o_e2e_limit")
	e.login("o_e2e_limit")
	code := e.mint("o_e2e_limit")
	a := e.postJSON(siteURL+"/wx/login", map[string]string{"code": code}, nil)
	expect(t, a, 429, "rate_limited")
	if a.header.Get("Retry-After") == "" {
		t.Fatal("429 without Retry-After")
	}
	noSecrets(t, a, code)
}

// TestE2EPathPlaceholders: endpoint paths and the header prefix take
// placeholders, resolved at start; a resolved value that is not valid
// fails the start naming the field.
func TestE2EPathPlaceholders(t *testing.T) {
	t.Setenv("WXAUTH_E2E_LOGIN", "/api/sign-in")
	t.Setenv("WXAUTH_E2E_PREFIX", "X-Auth-")
	e := &e2e{t: t, tester: caddytest.NewTester(t), client: &http.Client{Timeout: 10 * time.Second},
		db: filepath.Join(t.TempDir(), "wechat_auth.db")}
	t.Cleanup(e.stop)
	cfg := e2eConfig(e.db, "login_path {env.WXAUTH_E2E_LOGIN}\n\t\theader_prefix {env.WXAUTH_E2E_PREFIX}")
	cfg = strings.Replace(cfg, "hdr={http.request.header.X-WeChat-User-ID}", "hdr={http.request.header.X-Auth-User-ID}", 1)
	e.loadRaw(cfg)

	expect(t, e.postJSON(siteURL+"/wx/login", map[string]string{"code": "x"}, nil), 401, "invalid_token") // not an endpoint now
	a := e.postJSON(siteURL+"/api/sign-in", map[string]string{"code": e.mint("o_placeholder")}, nil)
	expect(t, a, 200, "")
	a = e.do("GET", siteURL+"/x", "", "", map[string]string{"Authorization": "Bearer " + a.body["token"].(string), "X-Auth-User-ID": "999"})
	expect(t, a, 200, "")
	if !strings.Contains(a.raw, "hdr=1 ") {
		t.Fatalf("identity header under the resolved prefix: %q", a.raw)
	}

	t.Setenv("WXAUTH_E2E_LOGIN", "no-slash")
	caddytest.AssertLoadError(t, e2eConfig(filepath.Join(t.TempDir(), "x.db"), "login_path {env.WXAUTH_E2E_LOGIN}"),
		"caddyfile", `login_path: must start with /, got \"no-slash\"`)
}
