package emulator_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
)

// startOAuthEmulator runs a Caddy whose site is the emulator configured by
// the Caddyfile block sub, on a free loopback port, and returns its URL.
func startOAuthEmulator(t *testing.T, sub string) string {
	t.Helper()
	dir := t.TempDir()
	admin, port := freePort(t), freePort(t)
	cfg := fmt.Sprintf(`{
	admin 127.0.0.1:%d
	persist_config off
	grace_period 1s
	storage file_system %s
}
http://127.0.0.1:%d {
	bind 127.0.0.1
	wechat_emulator {
%s
	}
	respond "not a WeChat API path" 404
}
`, admin, dir, port, sub)
	adapted, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(cfg), nil)
	if err != nil {
		t.Fatalf("adapting: %v\n%s", err, cfg)
	}
	if err := caddy.Load(adapted, true); err != nil {
		t.Fatalf("loading: %v", err)
	}
	t.Cleanup(func() {
		if err := caddy.Stop(); err != nil {
			t.Errorf("stopping caddy: %v", err)
		}
	})
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get(base + "/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusNotFound {
				return base
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the emulator did not answer within 15s (last error: %v)", err)
		}
		time.Sleep(50 * time.Millisecond) // waiting for a listener, not for logic
	}
}

// getJSON GETs u and decodes a JSON object answer.
func getJSON(t *testing.T, u string) map[string]any {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		t.Fatalf("GET %s: not JSON: %v", u, err)
	}
	return m
}

// errcodeOf is m's errcode, 0 when absent.
func errcodeOf(m map[string]any) int {
	f, _ := m["errcode"].(float64)
	return int(f)
}

// TestOAuthThroughCaddy drives the web OAuth twin through a real Caddy set
// up from a Caddyfile with oauth_app: the authorize page, Allow, the code
// exchange (once), userinfo, a fault, and the helper.
func TestOAuthThroughCaddy(t *testing.T) {
	t.Setenv("WXEMU_E2E_OA_SECRET", "oa-secret-from-env")
	base := startOAuthEmulator(t, "\t\toauth_app wxoae2e000000001 {env.WXEMU_E2E_OA_SECRET}\n\t\toauth_app wxsitee2e0000001 site-secret")
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	callback := "http://127.0.0.1:9/wx/web/callback"

	q := url.Values{"appid": {"wxoae2e000000001"}, "redirect_uri": {callback}, "response_type": {"code"},
		"scope": {"snsapi_userinfo"}, "state": {"abc123"}}
	resp, err := http.Get(base + "/connect/oauth2/authorize?" + q.Encode() + "#wechat_redirect")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(page), "wxoae2e000000001") || !strings.Contains(string(page), `value="allow"`) {
		t.Fatalf("authorize page: %d\n%s", resp.StatusCode, page)
	}
	// An app the emulator does not serve gets the error page.
	bad := url.Values{"appid": {"wxunknown"}, "redirect_uri": {callback}, "response_type": {"code"}, "scope": {"snsapi_base"}}
	if resp, err := http.Get(base + "/connect/oauth2/authorize?" + bad.Encode()); err != nil || resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("unknown appid: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}

	form := url.Values{}
	for k, v := range q {
		form[k] = v
	}
	form.Set("openid", "oE2EUser")
	form.Set("unionid", "uE2EUser")
	form.Set("nickname", "E2E")
	form.Set("action", "allow")
	resp, err = noFollow.PostForm(base+"/connect/oauth2/authorize", form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusFound || loc == nil || !strings.HasPrefix(loc.String(), callback+"?code=") || loc.Query().Get("state") != "abc123" {
		t.Fatalf("Allow: %d Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	code := loc.Query().Get("code")

	exchange := func(secret, code string) map[string]any {
		v := url.Values{"appid": {"wxoae2e000000001"}, "secret": {secret}, "code": {code}, "grant_type": {"authorization_code"}}
		return getJSON(t, base+"/sns/oauth2/access_token?"+v.Encode())
	}
	if m := exchange("wrong", code); errcodeOf(m) != 40125 {
		t.Fatalf("wrong secret: %v", m)
	}
	// A fault answers once; the code survives it.
	resp, err = http.Post(base+"/emulator/fault", "application/json", strings.NewReader(`{"path":"/sns/oauth2/access_token","errcode":-1}`))
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("queueing a fault: %v %v", resp, err)
	}
	resp.Body.Close()
	if m := exchange("oa-secret-from-env", code); errcodeOf(m) != -1 {
		t.Fatalf("faulted exchange: %v", m)
	}
	tok := exchange("oa-secret-from-env", code)
	if errcodeOf(tok) != 0 || tok["openid"] != "oE2EUser" || tok["unionid"] != "uE2EUser" || tok["scope"] != "snsapi_userinfo" {
		t.Fatalf("exchange: %v", tok)
	}
	if m := exchange("oa-secret-from-env", code); errcodeOf(m) != 40163 {
		t.Fatalf("second exchange: %v", m)
	}
	info := getJSON(t, base+"/sns/userinfo?"+url.Values{"access_token": {tok["access_token"].(string)}, "openid": {"oE2EUser"}}.Encode())
	if errcodeOf(info) != 0 || info["nickname"] != "E2E" || info["unionid"] != "uE2EUser" {
		t.Fatalf("userinfo: %v", info)
	}

	// The helper mints what Allow gives, for the site app's QR login.
	resp, err = http.Post(base+"/emulator/oauth/code", "application/json",
		strings.NewReader(`{"appid":"wxsitee2e0000001","openid":"oSiteUser","unionid":"uE2EUser","scope":"snsapi_login"}`))
	if err != nil {
		t.Fatal(err)
	}
	var minted map[string]string
	_ = json.NewDecoder(resp.Body).Decode(&minted)
	resp.Body.Close()
	v := url.Values{"appid": {"wxsitee2e0000001"}, "secret": {"site-secret"}, "code": {minted["code"]}, "grant_type": {"authorization_code"}}
	if m := getJSON(t, base+"/sns/oauth2/access_token?"+v.Encode()); m["openid"] != "oSiteUser" || m["unionid"] != "uE2EUser" || m["scope"] != "snsapi_login" {
		t.Fatalf("site exchange: %v", m)
	}

	// Nothing of the page leaks the state unescaped, and the page forbids framing.
	resp, err = http.Get(base + "/connect/qrconnect?" + url.Values{"appid": {"wxsitee2e0000001"}, "redirect_uri": {callback},
		"response_type": {"code"}, "scope": {"snsapi_login"}, "state": {"<x>"}}.Encode())
	if err != nil {
		t.Fatal(err)
	}
	page, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if regexp.MustCompile(`<x>`).Match(page) || !strings.Contains(resp.Header.Get("Content-Security-Policy"), "frame-ancestors 'none'") {
		t.Fatalf("qrconnect page: CSP %q\n%s", resp.Header.Get("Content-Security-Policy"), page)
	}
}
