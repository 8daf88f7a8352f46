package emulator

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
)

// mintCode mints a login code through the helper endpoint.
func mintCode(t *testing.T, e *Emulator, body string) (code, openid string) {
	t.Helper()
	status, m := call(t, e, http.MethodPost, pathCode, body)
	if status != http.StatusOK {
		t.Fatalf("minting code: %d %v", status, m)
	}
	code, _ = m["code"].(string)
	openid, _ = m["openid"].(string)
	if code == "" || openid == "" {
		t.Fatalf("minting code: %v", m)
	}
	if m["platform"] != e.platformName() {
		t.Errorf("minting code: platform %v, want %s", m["platform"], e.platformName())
	}
	return code, openid
}

// exchangeURL is the jscode2session URL for code with the test credentials.
func exchangeURL(code string) string {
	q := url.Values{
		"appid":      {testAppID},
		"secret":     {testSecret},
		"js_code":    {code},
		"grant_type": {"authorization_code"},
	}
	return pathJSCode2Session + "?" + q.Encode()
}

// exchange redeems code and returns the successful answer.
func exchange(t *testing.T, e *Emulator, code string) map[string]any {
	t.Helper()
	status, m := call(t, e, http.MethodGet, exchangeURL(code), "")
	wantErrcode(t, status, m, 0)
	return m
}

func TestCodeLifecycle(t *testing.T) {
	e, clock := configured(t)

	code, openid := mintCode(t, e, `{"openid":"oUser_1-abc","unionid":"uUnion1"}`)
	if openid != "oUser_1-abc" {
		t.Fatalf("openid = %q, want the one asked for", openid)
	}
	m := exchange(t, e, code)
	if m["openid"] != "oUser_1-abc" || m["unionid"] != "uUnion1" {
		t.Fatalf("exchange answer = %v", m)
	}
	key, err := base64.StdEncoding.DecodeString(m["session_key"].(string))
	if err != nil || len(key) != 16 {
		t.Fatalf("session_key %q is not 16 bytes of std base64", m["session_key"])
	}
	if _, ok := m["errcode"]; ok {
		t.Errorf("successful exchange carries an errcode, WeChat's does not: %v", m)
	}

	status, m := call(t, e, http.MethodGet, exchangeURL(code), "")
	wantErrcode(t, status, m, codeCodeUsed)
	if !strings.HasPrefix(m["errmsg"].(string), "code been used") {
		t.Errorf("errmsg = %q", m["errmsg"])
	}

	status, m = call(t, e, http.MethodGet, exchangeURL("never-minted"), "")
	wantErrcode(t, status, m, codeInvalidCode)
	if !strings.HasPrefix(m["errmsg"].(string), "invalid code, rid: ") {
		t.Errorf("errmsg = %q", m["errmsg"])
	}

	// A code is valid for CodeTTL and not an instant more.
	late, _ := mintCode(t, e, `{"openid":"oUser_1-abc"}`)
	clock.Advance(DefaultCodeTTL - time.Second)
	inTime, _ := mintCode(t, e, "")
	clock.Advance(time.Second)
	status, m = call(t, e, http.MethodGet, exchangeURL(late), "")
	wantErrcode(t, status, m, codeInvalidCode)
	exchange(t, e, inTime)

	// A used code that has expired is unknown, as on WeChat.
	clock.Advance(DefaultCodeTTL)
	mintCode(t, e, "") // triggers a sweep
	status, m = call(t, e, http.MethodGet, exchangeURL(code), "")
	wantErrcode(t, status, m, codeInvalidCode)
}

func TestGeneratedOpenID(t *testing.T) {
	e, _ := newEmulator(t, &Emulator{})
	urlSafe := regexp.MustCompile(`^o[A-Za-z0-9_-]{27}$`)
	seen := make(map[string]bool)
	for range 20 {
		code, openid := mintCode(t, e, "")
		if !urlSafe.MatchString(openid) {
			t.Fatalf("generated openid %q is not 'o' + 27 url-safe characters", openid)
		}
		if seen[openid] {
			t.Fatalf("openid %q generated twice", openid)
		}
		seen[openid] = true
		m := exchange(t, e, code)
		if m["openid"] != openid {
			t.Fatalf("exchange openid = %v, want %s", m["openid"], openid)
		}
		if _, ok := m["unionid"]; ok {
			t.Fatalf("unionid present without one being given: %v", m)
		}
	}
}

func TestUnionIDRemembered(t *testing.T) {
	e, _ := configured(t)
	mintCode(t, e, `{"openid":"oA","unionid":"uA"}`)
	code, _ := mintCode(t, e, `{"openid":"oA"}`)
	if m := exchange(t, e, code); m["unionid"] != "uA" {
		t.Fatalf("unionid = %v, want the remembered uA", m["unionid"])
	}
}

func TestUnionIDConfigured(t *testing.T) {
	e, _ := newEmulator(t, &Emulator{UnionIDs: map[string]string{"oConf": "uConf"}})
	code, _ := mintCode(t, e, `{"openid":"oConf"}`)
	if m := exchange(t, e, code); m["unionid"] != "uConf" {
		t.Fatalf("unionid = %v, want the configured uConf", m["unionid"])
	}
	code, _ = mintCode(t, e, `{"openid":"oOther"}`)
	if m := exchange(t, e, code); m["unionid"] != nil {
		t.Fatalf("unconfigured openid got unionid %v", m["unionid"])
	}
	bad := &Emulator{UnionIDs: map[string]string{"o A": "u"}}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	if err := bad.Provision(ctx); err == nil || !strings.Contains(err.Error(), "unionids") {
		t.Fatalf("Provision with a bad openid: %v", err)
	}
}

func TestEachExchangeIssuesNewSessionKey(t *testing.T) {
	e, _ := configured(t)
	c1, _ := mintCode(t, e, `{"openid":"oSame"}`)
	c2, _ := mintCode(t, e, `{"openid":"oSame"}`)
	k1 := exchange(t, e, c1)["session_key"]
	k2 := exchange(t, e, c2)["session_key"]
	if k1 == k2 {
		t.Fatal("two exchanges gave the same session_key")
	}
	key, _, err := e.state.latestSession("oSame")
	if err != nil {
		t.Fatal(err)
	}
	if base64.StdEncoding.EncodeToString(key) != k2 {
		t.Fatal("latest session_key is not the one from the latest exchange")
	}
}

func TestAppCredentialChecks(t *testing.T) {
	tests := []struct {
		name             string
		appID, secret    string // configured
		qAppID, qSecret  string // sent
		grantType, jsTok string
		want             int
	}{
		{"configured ok", testAppID, testSecret, testAppID, testSecret, "authorization_code", "mint", 0},
		{"wrong appid", testAppID, testSecret, "wxother", testSecret, "authorization_code", "mint", codeInvalidAppID},
		{"wrong secret", testAppID, testSecret, testAppID, "nope", "authorization_code", "mint", codeInvalidAppSecret},
		{"missing appid", testAppID, testSecret, "", testSecret, "authorization_code", "mint", codeMissingAppID},
		{"missing secret", testAppID, testSecret, testAppID, "", "authorization_code", "mint", codeMissingAppSecret},
		{"wrong grant_type", testAppID, testSecret, testAppID, testSecret, "client_credential", "mint", codeInvalidGrantType},
		{"missing js_code", testAppID, testSecret, testAppID, testSecret, "authorization_code", "", codeMissingCode},
		{"unconfigured accepts any", "", "", "wxanything", "whatever", "authorization_code", "mint", 0},
		{"only appid configured", testAppID, "", testAppID, "whatever", "authorization_code", "mint", 0},
		{"only secret configured", "", testSecret, "wxany", "bad", "authorization_code", "mint", codeInvalidAppSecret},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, _ := newEmulator(t, &Emulator{AppID: tt.appID, AppSecret: tt.secret})
			code := ""
			if tt.jsTok == "mint" {
				code, _ = mintCode(t, e, "")
			}
			q := url.Values{"appid": {tt.qAppID}, "secret": {tt.qSecret}, "js_code": {code}, "grant_type": {tt.grantType}}
			status, m := call(t, e, http.MethodGet, pathJSCode2Session+"?"+q.Encode(), "")
			wantErrcode(t, status, m, tt.want)

			// stable_token checks the same credentials.
			if tt.want == codeMissingCode || tt.want == codeInvalidGrantType {
				return
			}
			body, _ := json.Marshal(stableTokenRequest{GrantType: "client_credential", AppID: tt.qAppID, Secret: tt.qSecret})
			status, m = call(t, e, http.MethodPost, pathStableToken, string(body))
			wantErrcode(t, status, m, tt.want)
		})
	}
}

func TestCheckSession(t *testing.T) {
	e, _ := configured(t)
	tok, _ := stableToken(t, e, false)
	code, openid := mintCode(t, e, "")
	key, _ := base64.StdEncoding.DecodeString(exchange(t, e, code)["session_key"].(string))
	good := checkSessionSignature(key)
	if len(good) != 64 {
		t.Fatalf("signature %q is not hex SHA-256", good)
	}

	target := func(token, sig, openid, method string) string {
		q := url.Values{}
		for k, v := range map[string]string{"access_token": token, "signature": sig, "openid": openid, "sig_method": method} {
			if v != "" {
				q.Set(k, v)
			}
		}
		return pathCheckSession + "?" + q.Encode()
	}
	tests := []struct {
		name, token, sig, openid, method string
		want                             int
	}{
		{"right signature", tok, good, openid, "hmac_sha256", 0},
		{"upper-case hex", tok, strings.ToUpper(good), openid, "hmac_sha256", 0},
		{"wrong signature", tok, checkSessionSignature([]byte("0123456789abcdef")), openid, "hmac_sha256", codeInvalidSignature},
		{"missing signature", tok, "", openid, "hmac_sha256", codeInvalidSignature},
		{"unknown openid", tok, good, "oNobody", "hmac_sha256", codeInvalidSignature},
		{"missing openid", tok, good, "", "hmac_sha256", codeInvalidOpenID},
		{"wrong sig_method", tok, good, openid, "md5", codeInvalidArgs},
		{"missing token", "", good, openid, "hmac_sha256", codeMissingAccessToken},
		{"bad token", "nope", good, openid, "hmac_sha256", codeInvalidCredential},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, m := call(t, e, http.MethodGet, target(tt.token, tt.sig, tt.openid, tt.method), "")
			wantErrcode(t, status, m, tt.want)
			if tt.want == 0 && m["errmsg"] != "ok" {
				t.Errorf("errmsg = %v, want ok", m["errmsg"])
			}
		})
	}

	// After a new exchange the old session_key no longer checks out.
	code2, _ := mintCode(t, e, `{"openid":"`+openid+`"}`)
	exchange(t, e, code2)
	status, m := call(t, e, http.MethodGet, target(tok, good, openid, "hmac_sha256"), "")
	wantErrcode(t, status, m, codeInvalidSignature)
}

func TestCodeHelperValidation(t *testing.T) {
	e, _ := configured(t)
	tests := []struct {
		name, method, body string
		want               int
	}{
		{"empty body", http.MethodPost, "", http.StatusOK},
		{"empty object", http.MethodPost, "{}", http.StatusOK},
		{"bad openid", http.MethodPost, `{"openid":"o bad"}`, http.StatusBadRequest},
		{"long openid", http.MethodPost, `{"openid":"` + strings.Repeat("o", 129) + `"}`, http.StatusBadRequest},
		{"bad unionid", http.MethodPost, `{"unionid":"u/1"}`, http.StatusBadRequest},
		{"unknown field", http.MethodPost, `{"open_id":"o1"}`, http.StatusBadRequest},
		{"not json", http.MethodPost, `openid=o1`, http.StatusBadRequest},
		{"trailing data", http.MethodPost, `{} []`, http.StatusBadRequest},
		{"too large", http.MethodPost, `{"openid":"` + strings.Repeat("o", maxBodyBytes) + `"}`, http.StatusRequestEntityTooLarge},
		{"wrong method", http.MethodGet, "", http.StatusMethodNotAllowed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, m := call(t, e, tt.method, pathCode, tt.body)
			if status != tt.want {
				t.Fatalf("status = %d (%v), want %d", status, m, tt.want)
			}
			if status >= 400 {
				if s, _ := m["error"].(string); s == "" {
					t.Fatalf("helper error without an error member: %v", m)
				}
			}
		})
	}
}

func TestConcurrentMintAndExchange(t *testing.T) {
	e, _ := configured(t)
	const workers, perWorker = 16, 40
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		keys = make(map[string]bool)
		errs = make(chan error, workers)
	)
	for i := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range perWorker {
				// Half the workers share openids, the rest get new ones.
				body := ""
				if i%2 == 0 {
					body = `{"openid":"oShared` + string(rune('a'+i%4)) + `"}`
				}
				w := httptest.NewRecorder()
				r := httptest.NewRequest(http.MethodPost, pathCode, strings.NewReader(body))
				if err := e.ServeHTTP(w, r, nil); err != nil || w.Code != http.StatusOK {
					errs <- errors.New("mint failed: " + w.Body.String())
					return
				}
				var cr codeResponse
				if err := json.Unmarshal(w.Body.Bytes(), &cr); err != nil {
					errs <- err
					return
				}
				w = httptest.NewRecorder()
				if err := e.ServeHTTP(w, httptest.NewRequest(http.MethodGet, exchangeURL(cr.Code), nil), nil); err != nil {
					errs <- err
					return
				}
				var sr jscode2sessionResponse
				if err := json.Unmarshal(w.Body.Bytes(), &sr); err != nil || sr.OpenID != cr.OpenID || sr.SessionKey == "" {
					errs <- errors.New("exchange failed: " + w.Body.String())
					return
				}
				w = httptest.NewRecorder()
				tr := httptest.NewRequest(http.MethodPost, pathStableToken, strings.NewReader(
					`{"grant_type":"client_credential","appid":"`+testAppID+`","secret":"`+testSecret+`"}`))
				if err := e.ServeHTTP(w, tr, nil); err != nil || !strings.Contains(w.Body.String(), "access_token") {
					errs <- errors.New("stable_token failed: " + w.Body.String())
					return
				}
				mu.Lock()
				if keys[sr.SessionKey] {
					mu.Unlock()
					errs <- errors.New("session_key issued twice")
					return
				}
				keys[sr.SessionKey] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if len(keys) != workers*perWorker {
		t.Fatalf("%d distinct session keys, want %d", len(keys), workers*perWorker)
	}
}

// BenchmarkLogin measures one emulated wx.login: mint a code, exchange it.
func BenchmarkLogin(b *testing.B) {
	e := &Emulator{AppID: testAppID, AppSecret: testSecret}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	b.Cleanup(cancel)
	if err := e.Provision(ctx); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			w := httptest.NewRecorder()
			if err := e.ServeHTTP(w, httptest.NewRequest(http.MethodPost, pathCode, nil), nil); err != nil {
				b.Error(err)
				return
			}
			var cr codeResponse
			if err := json.Unmarshal(w.Body.Bytes(), &cr); err != nil {
				b.Error(err)
				return
			}
			w = httptest.NewRecorder()
			if err := e.ServeHTTP(w, httptest.NewRequest(http.MethodGet, exchangeURL(cr.Code), nil), nil); err != nil || !strings.Contains(w.Body.String(), "session_key") {
				b.Errorf("exchange: %v %s", err, w.Body.String())
				return
			}
		}
	})
}
