package wechatauth_test

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddytest"
)

// platformPorts are the emulator ports of the platforms in the end-to-end
// test (9081 is WeChat's, as in the other end-to-end tests).
var platformPorts = map[string]int{"wechat": 9081, "qq": 9082, "douyin": 9083, "alipay": 9084, "baidu": 9085}

// platformOrder runs the platforms in a fixed order.
var platformOrder = []string{"wechat", "qq", "douyin", "alipay", "baidu"}

// e2ePlatformApp is the one app id of every platform's block: the blocks
// share app id and signing key, so only the platform claim tells their
// tokens apart.
const e2ePlatformApp = "e2e-multi-platform-app"

// writeRSAKey writes a new RSA key pair as PEM files and returns their paths.
func writeRSAKey(t *testing.T, dir, name string) (priv, pub string) {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	priv = filepath.Join(dir, name+"_private.pem")
	if err := os.WriteFile(priv, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	der, err = x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pub = filepath.Join(dir, name+"_public.pem")
	if err := os.WriteFile(pub, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return priv, pub
}

// platformConfig is a Caddyfile with one emulator per platform and, on the
// site, one wechat_auth block per platform under /<platform>/, plus an
// Alipay block holding the wrong Alipay public key under /alipay-wrongkey/.
func platformConfig(t *testing.T, dir string) string {
	t.Helper()
	appPriv, appPub := writeRSAKey(t, dir, "app")
	aliPriv, aliPub := writeRSAKey(t, dir, "alipay")
	_, otherPub := writeRSAKey(t, dir, "other")
	var b strings.Builder
	b.WriteString(`{
	admin localhost:2999
	http_port 9080
	https_port 9443
	grace_period 1s
	skip_install_trust
}
`)
	for _, p := range platformOrder {
		extra := ""
		if p == "alipay" {
			extra = fmt.Sprintf("alipay_app_public_key_file %s\n\t\talipay_key_file %s", appPub, aliPriv)
		}
		fmt.Fprintf(&b, `
http://127.0.0.1:%d {
	wechat_emulator {
		platform   %s
		app_id     %s
		app_secret %s
		%s
	}
	respond "not an emulator path" 404
}
`, platformPorts[p], p, e2ePlatformApp, e2eSecret, extra)
	}
	b.WriteString("\nhttp://127.0.0.1:9080 {")
	block := func(prefix, p, keys string) {
		fmt.Fprintf(&b, `
	handle /%[1]s/* {
		wechat_auth {
			platform     %[2]s
			app_id       %[3]s
			app_secret   %[4]s
			api_base     http://127.0.0.1:%[5]d
			db           %[6]s
			signing_key  %[7]s
			timeout      2s
			login_path   /%[1]s/wx/login
			refresh_path /%[1]s/wx/refresh
			logout_path  /%[1]s/wx/logout
			profile_path /%[1]s/wx/profile
			phone_path   /%[1]s/wx/phone
			decrypt_path /%[1]s/wx/decrypt
			%[8]s
		}
		respond "platform={http.auth.user.platform} hdr={http.request.header.X-WeChat-Platform} openid={http.auth.user.openid} user={http.auth.user.id}"
	}`, prefix, p, e2ePlatformApp, e2eSecret, platformPorts[p], filepath.Join(dir, prefix+".db"), e2eKey, keys)
	}
	for _, p := range platformOrder {
		keys := ""
		if p == "alipay" {
			keys = fmt.Sprintf("alipay_private_key_file %s\n\t\t\talipay_public_key_file %s", appPriv, aliPub)
		}
		block(p, p, keys)
	}
	block("alipay-wrongkey", "alipay", fmt.Sprintf("alipay_private_key_file %s\n\t\t\talipay_public_key_file %s", appPriv, otherPub))
	b.WriteString("\n}\n")
	return b.String()
}

// TestE2EPlatforms runs login, the guard, refresh and logout once per
// platform with a real Caddy and each platform's emulator, then checks that
// no block accepts another platform's token.
func TestE2EPlatforms(t *testing.T) {
	e := newE2E(t, "")
	e.loadRaw(platformConfig(t, t.TempDir()))
	emu := func(p string) string { return fmt.Sprintf("http://127.0.0.1:%d", platformPorts[p]) }
	site := func(p, path string) string { return siteURL + "/" + p + path }
	mint := func(p, openid string) string {
		t.Helper()
		a := e.postJSON(emu(p)+"/emulator/code", map[string]string{"openid": openid}, nil)
		code, _ := a.body["code"].(string)
		if a.status != 200 || code == "" {
			t.Fatalf("%s: minting code: %d %s", p, a.status, a.raw)
		}
		return code
	}
	tokens := map[string]string{}
	for _, p := range platformOrder {
		t.Run(p, func(t *testing.T) {
			openid := "e2e-" + p + "-user"
			body := map[string]string{"code": mint(p, openid)}
			if p == "douyin" {
				body["anonymous_code"] = "e2e-anonymous-code"
			}
			a := e.postJSON(site(p, "/wx/login"), body, nil)
			expect(t, a, 200, "")
			noSecrets(t, a, body["code"])
			access, refresh := a.body["token"].(string), a.body["refresh_token"].(string)
			payload := tokenPayload(t, access)
			if hasClaim := strings.Contains(payload, `"platform":"`+p+`"`); hasClaim == (p == "wechat") || (p == "wechat" && strings.Contains(payload, `"platform"`)) {
				t.Errorf("token claims %s", payload)
			}

			// The guard hands the platform to the upstream, and a client
			// cannot spoof it.
			g := e.do("GET", site(p, "/api"), "", "", map[string]string{"Authorization": "Bearer " + access, "X-WeChat-Platform": "spoofed"})
			want := fmt.Sprintf("platform=%s hdr=%s openid=%s", p, p, openid)
			if g.status != 200 || !strings.HasPrefix(g.raw, want) {
				t.Fatalf("guard: %d %q, want %q", g.status, g.raw, want)
			}

			// A used code is refused; a busy platform is asked once more.
			expect(t, e.postJSON(site(p, "/wx/login"), body, nil), 400, "invalid_code")
			if a := e.postJSON(emu(p)+"/emulator/fault", map[string]any{"errcode": -1}, nil); a.status != 200 {
				t.Fatalf("fault: %s", a.raw)
			}
			expect(t, e.postJSON(site(p, "/wx/login"), map[string]string{"code": mint(p, openid)}, nil), 200, "")

			// Refresh, then logout ends the session at the guard at once.
			r := e.postJSON(site(p, "/wx/refresh"), map[string]string{"refresh_token": refresh}, nil)
			expect(t, r, 200, "")
			access2 := r.body["token"].(string)
			expect(t, e.do("GET", site(p, "/api"), "", "", bearer(access2)), 200, "")
			expect(t, e.postJSON(site(p, "/wx/logout"), map[string]any{}, bearer(access2)), 200, "")
			expect(t, e.do("GET", site(p, "/api"), "", "", bearer(access2)), 401, "invalid_token")

			// Endpoints the platform lacks are not served.
			phone := e.postJSON(site(p, "/wx/phone"), map[string]string{"code": "x"}, nil)
			decrypt := e.postJSON(site(p, "/wx/decrypt"), map[string]string{"encrypted_data": "x", "iv": "y"}, nil)
			if (phone.status == 404) != (p != "wechat") || (decrypt.status == 404) != (p == "alipay") {
				t.Errorf("phone %d, decrypt %d", phone.status, decrypt.status)
			}

			a = e.postJSON(site(p, "/wx/login"), map[string]string{"code": mint(p, openid)}, nil)
			expect(t, a, 200, "")
			tokens[p] = a.body["token"].(string)
		})
	}

	t.Run("douyin without code", func(t *testing.T) {
		a := e.postJSON(site("douyin", "/wx/login"), map[string]string{"anonymous_code": "anon"}, nil)
		expect(t, a, 400, "invalid_request")
		if !strings.Contains(a.body["message"].(string), "not logged in to the Douyin app") {
			t.Errorf("message %q", a.body["message"])
		}
	})

	t.Run("alipay answer that does not verify", func(t *testing.T) {
		a := e.postJSON(site("alipay-wrongkey", "/wx/login"), map[string]string{"code": mint("alipay", "e2e-wrongkey")}, nil)
		expect(t, a, 502, "wechat_error")
		if !strings.Contains(a.body["message"].(string), "Alipay") {
			t.Errorf("message %q does not name Alipay", a.body["message"])
		}
	})

	t.Run("baidu open data", func(t *testing.T) {
		a := e.postJSON(site("baidu", "/wx/login"), map[string]string{"code": mint("baidu", "e2e-bd-open")}, nil)
		expect(t, a, 200, "")
		enc := e.postJSON(emu("baidu")+"/emulator/encrypt", map[string]any{"openid": "e2e-bd-open", "data": map[string]string{"nickName": "bd"}}, nil)
		d := e.postJSON(site("baidu", "/wx/decrypt"), map[string]string{
			"encrypted_data": enc.body["encrypted_data"].(string), "iv": enc.body["iv"].(string),
			"raw_data": enc.body["raw_data"].(string), "signature": enc.body["signature"].(string),
		}, bearer(a.body["token"].(string)))
		expect(t, d, 200, "")
		if data, _ := d.body["data"].(map[string]any); data["nickName"] != "bd" {
			t.Fatalf("decrypted %s", d.raw)
		}
	})

	t.Run("cross-platform tokens refused", func(t *testing.T) {
		if len(tokens) != len(platformOrder) {
			t.Skip("a platform's login failed above")
		}
		for _, from := range platformOrder {
			for _, to := range platformOrder {
				a := e.do("GET", site(to, "/api"), "", "", bearer(tokens[from]))
				if from == to {
					expect(t, a, 200, "")
				} else if a.status != 401 {
					t.Errorf("a %s token at the %s block: %d %s", from, to, a.status, a.raw)
				}
			}
		}
	})
}

// TestE2EPlatformBadConfig: Alipay key files that cannot be read or are not
// RSA keys fail the start with a message naming the field.
func TestE2EPlatformBadConfig(t *testing.T) {
	dir := t.TempDir()
	priv, pub := writeRSAKey(t, dir, "app")
	garbage := filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	smallFile := filepath.Join(dir, "small.pem")
	if err := os.WriteFile(smallFile, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(small)}), 0o600); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(dir, "x.db")
	alipay := func(privFile, pubFile string) string {
		return "platform alipay\n\t\talipay_private_key_file " + privFile + "\n\t\talipay_public_key_file " + pubFile
	}
	caddytest.AssertLoadError(t, e2eConfig(db, alipay("/nonexistent/app.pem", pub)), "caddyfile", "alipay_private_key_file /nonexistent/app.pem: reading")
	caddytest.AssertLoadError(t, e2eConfig(db, alipay(priv, garbage)), "caddyfile", "alipay_public_key_file "+garbage)
	caddytest.AssertLoadError(t, e2eConfig(db, alipay(pub, pub)), "caddyfile", "alipay_private_key_file "+pub)
	caddytest.AssertLoadError(t, e2eConfig(db, alipay(smallFile, pub)), "caddyfile", "at least 2048 bits")
	caddytest.AssertLoadError(t, e2eConfig(db, "platform alipay"), "caddyfile", "needs alipay_private_key_file")
	caddytest.AssertLoadError(t, e2eConfig(db, "platform kuaishou"), "caddyfile", "platform: want one of")
}
