package wechatauth_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestE2ENoSecretsInLogs runs logins, refreshes, failures and the
// WeChat-backed endpoints with Caddy logging everything at DEBUG, plus an
// access log with the README's filter for the token header, then checks
// that no secret, login code, session_key or token reached a log line.
func TestE2ENoSecretsInLogs(t *testing.T) {
	e := newE2E(t, "")
	logFile := filepath.Join(t.TempDir(), "caddy.log")
	accessLog := filepath.Join(t.TempDir(), "access.log")
	// Secrets given as placeholders, as the README asks: then not even
	// Caddy's own debug dump of the config shows them.
	t.Setenv("E2E_WECHAT_SECRET", e2eSecret)
	t.Setenv("E2E_SIGNING_KEY", e2eKey)
	config := strings.NewReplacer(
		"app_secret "+e2eSecret, "app_secret {env.E2E_WECHAT_SECRET}",
		"app_secret  "+e2eSecret, "app_secret  {env.E2E_WECHAT_SECRET}",
		"signing_key "+e2eKey, "signing_key {env.E2E_SIGNING_KEY}",
	).Replace(e2eConfig(e.db, ""))
	if strings.Contains(config, e2eSecret) || strings.Contains(config, e2eKey) {
		t.Fatal("a secret is still literal in the config")
	}
	config = strings.Replace(config, "\tskip_install_trust\n", "\tskip_install_trust\n\tlog {\n\t\toutput file "+logFile+"\n\t\tlevel DEBUG\n\t}\n", 1)
	config = strings.Replace(config, "http://127.0.0.1:9080 {\n", "http://127.0.0.1:9080 {\n\tlog {\n\t\toutput file "+accessLog+"\n\t\tformat filter {\n\t\t\trequest>headers>Token delete\n\t\t}\n\t}\n", 1)
	e.loadRaw(config)

	var secrets []string
	keep := func(s ...string) { secrets = append(secrets, s...) }
	keep(e2eSecret, e2eKey)

	code := e.mint("o_e2e_logs")
	keep(code)
	a := e.postJSON(siteURL+"/wx/login", map[string]string{"code": code}, nil)
	expect(t, a, 200, "")
	tok, rt := a.body["token"].(string), a.body["refresh_token"].(string)
	keep(tok, rt)
	// Failures log too: a reused code, WeChat garbage, a bad refresh token.
	expect(t, e.postJSON(siteURL+"/wx/login", map[string]string{"code": code}, nil), 400, "invalid_code")
	bad := e.mint("o_e2e_logs")
	keep(bad)
	e.fault(map[string]any{"path": "/sns/jscode2session", "garbage": true})
	expect(t, e.postJSON(siteURL+"/wx/login", map[string]string{"code": bad}, nil), 502, "wechat_error")
	expect(t, e.postJSON(siteURL+"/wx/refresh", map[string]string{"refresh_token": rt + "x"}, nil), 401, "invalid_grant")

	a = e.postJSON(siteURL+"/wx/refresh", map[string]string{"refresh_token": rt}, nil)
	expect(t, a, 200, "")
	keep(a.body["token"].(string), a.body["refresh_token"].(string))
	expect(t, e.do("GET", siteURL+"/x", "", "", bearer(tok)), 200, "")
	expect(t, e.do("GET", siteURL+"/x", "", "", map[string]string{"token": tok}), 200, "")

	a = e.postJSON(wechatURL+"/emulator/phone_code", map[string]string{"phone_number": "13800138000"}, nil)
	phoneCode := a.body["code"].(string)
	keep(phoneCode)
	expect(t, e.postJSON(siteURL+"/wx/phone", map[string]string{"code": phoneCode}, bearer(tok)), 200, "")
	a = e.postJSON(wechatURL+"/emulator/encrypt", map[string]any{"openid": "o_e2e_logs", "data": map[string]any{"x": 1}}, nil)
	expect(t, e.postJSON(siteURL+"/wx/decrypt", map[string]any{"encrypted_data": a.body["encrypted_data"], "iv": a.body["iv"]}, bearer(tok)), 200, "")
	expect(t, e.do("POST", siteURL+"/wx/logout", "", "", bearer(tok)), 200, "")
	e.stop()

	for _, f := range []string{logFile, accessLog} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		logs := string(b)
		if len(logs) == 0 {
			t.Fatalf("%s is empty: the test would prove nothing", f)
		}
		for _, s := range secrets {
			if strings.Contains(logs, s) {
				t.Errorf("%s contains a secret, code or token (%d chars starting %.4q)", filepath.Base(f), len(s), s)
			}
		}
		if strings.Contains(logs, "session_key") {
			t.Errorf("%s mentions session_key", filepath.Base(f))
		}
	}
	if b, _ := os.ReadFile(accessLog); !strings.Contains(string(b), `"user_id":"1"`) {
		t.Errorf("access log lacks the user id: %.300s", b)
	}
}
