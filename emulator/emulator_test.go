package emulator

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"github.com/wxauth/caddy-wechat-auth/internal/testclock"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

const (
	testAppID  = "wx0123456789abcdef"
	testSecret = "0123456789abcdef0123456789abcdef"
)

// fakeClock is the emulator tests' injected clock.
type fakeClock = testclock.Clock

func newFakeClock() *fakeClock {
	return testclock.New(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC))
}

// newEmulator provisions and validates an emulator configured by e, with a
// fake clock.
func newEmulator(t *testing.T, e *Emulator) (*Emulator, *fakeClock) {
	t.Helper()
	clock := newFakeClock()
	e.now = clock.Now
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	if err := e.Provision(ctx); err != nil {
		t.Fatalf("Provision: %v", err)
	}
	if err := e.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	return e, clock
}

// configured returns an emulator that checks testAppID and testSecret.
func configured(t *testing.T) (*Emulator, *fakeClock) {
	t.Helper()
	return newEmulator(t, &Emulator{AppID: testAppID, AppSecret: testSecret})
}

// serve sends one request through the emulator and reports whether next was
// called.
func serve(t *testing.T, e *Emulator, r *http.Request) (*httptest.ResponseRecorder, bool, error) {
	t.Helper()
	w := httptest.NewRecorder()
	called := false
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		called = true
		w.WriteHeader(http.StatusTeapot)
		return nil
	})
	err := e.ServeHTTP(w, r, next)
	return w, called, err
}

// call sends method target body and decodes the JSON answer, failing the
// test on a handler error, a call to next or a non-JSON answer.
func call(t *testing.T, e *Emulator, method, target, body string) (int, map[string]any) {
	t.Helper()
	var r *http.Request
	if body == "" {
		r = httptest.NewRequest(method, target, nil)
	} else {
		r = httptest.NewRequest(method, target, strings.NewReader(body))
	}
	w, called, err := serve(t, e, r)
	if err != nil {
		t.Fatalf("%s %s: ServeHTTP error: %v", method, target, err)
	}
	if called {
		t.Fatalf("%s %s: next was called", method, target)
	}
	var m map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &m); err != nil {
		t.Fatalf("%s %s: answer is not JSON: %q", method, target, w.Body.String())
	}
	return w.Code, m
}

// errcode returns the answer's errcode, 0 when absent.
func errcode(t *testing.T, m map[string]any) int {
	t.Helper()
	v, ok := m["errcode"]
	if !ok {
		return 0
	}
	f, ok := v.(float64)
	if !ok {
		t.Fatalf("errcode is %T, want a number", v)
	}
	return int(f)
}

// wantErrcode checks an API answer: HTTP 200 and the given errcode, with
// WeChat's ", rid: " suffix on errors.
func wantErrcode(t *testing.T, status int, m map[string]any, want int) {
	t.Helper()
	if status != http.StatusOK {
		t.Errorf("HTTP status = %d, want 200 (WeChat answers errors with 200)", status)
	}
	if got := errcode(t, m); got != want {
		t.Fatalf("errcode = %d (%v), want %d", got, m["errmsg"], want)
	}
	if want != 0 {
		msg, _ := m["errmsg"].(string)
		if !ridPattern.MatchString(msg) {
			t.Errorf("errmsg %q lacks a WeChat-style rid", msg)
		}
	}
}

var ridPattern = regexp.MustCompile(`, rid: [0-9a-f]{8}-[0-9a-f]{8}-[0-9a-f]{8}$`)

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

// stableToken fetches an access token with the test credentials.
func stableToken(t *testing.T, e *Emulator, force bool) (string, int) {
	t.Helper()
	body, _ := json.Marshal(stableTokenRequest{
		GrantType: "client_credential", AppID: testAppID, Secret: testSecret, ForceRefresh: force,
	})
	status, m := call(t, e, http.MethodPost, pathStableToken, string(body))
	wantErrcode(t, status, m, 0)
	tok, _ := m["access_token"].(string)
	exp, _ := m["expires_in"].(float64)
	if tok == "" {
		t.Fatalf("stable_token: no access_token in %v", m)
	}
	return tok, int(exp)
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

func TestWrongMethodOnAPI(t *testing.T) {
	e, _ := configured(t)
	tests := []struct {
		method, path string
		want         int
	}{
		{http.MethodPost, pathJSCode2Session, codeRequireGET},
		{http.MethodGet, pathStableToken, codeRequirePOST},
		{http.MethodGet, pathPhoneNumber, codeRequirePOST},
		{http.MethodPost, pathCheckSession, codeRequireGET},
	}
	for _, tt := range tests {
		t.Run(tt.method+tt.path, func(t *testing.T) {
			status, m := call(t, e, tt.method, tt.path, "")
			wantErrcode(t, status, m, tt.want)
		})
	}
}

func TestStableToken(t *testing.T) {
	e, clock := configured(t)

	tok1, exp := stableToken(t, e, false)
	if exp != int(DefaultTokenTTL/time.Second) {
		t.Fatalf("expires_in = %d, want %d", exp, int(DefaultTokenTTL/time.Second))
	}
	clock.Advance(10 * time.Minute)
	tok2, exp := stableToken(t, e, false)
	if tok2 != tok1 {
		t.Fatal("stable_token issued a new token before the old one expired")
	}
	if want := int((DefaultTokenTTL - 10*time.Minute) / time.Second); exp != want {
		t.Fatalf("expires_in = %d, want the remaining %d", exp, want)
	}

	tok3, exp := stableToken(t, e, true)
	if tok3 == tok1 || exp != int(DefaultTokenTTL/time.Second) {
		t.Fatalf("force_refresh gave %q (same=%v), expires_in %d", tok3, tok3 == tok1, exp)
	}
	if _, err := e.state.checkToken(clock.Now(), tok1); !errors.Is(err, errTokenInvalid) {
		t.Fatalf("old token after force_refresh: %v, want errTokenInvalid", err)
	}
	if _, err := e.state.checkToken(clock.Now(), tok3); err != nil {
		t.Fatalf("new token: %v", err)
	}

	// Expiry: the latest token gets 42001, and the next call issues a new one.
	clock.Advance(DefaultTokenTTL)
	if _, err := e.state.checkToken(clock.Now(), tok3); !errors.Is(err, errTokenExpired) {
		t.Fatalf("expired token: %v, want errTokenExpired", err)
	}
	tok4, _ := stableToken(t, e, false)
	if tok4 == tok3 {
		t.Fatal("stable_token returned an expired token")
	}
}

func TestStableTokenBadRequests(t *testing.T) {
	e, _ := configured(t)
	big := `{"grant_type":"client_credential","appid":"` + strings.Repeat("x", maxBodyBytes) + `"}`
	tests := []struct {
		name, body string
		want       int
	}{
		{"not json", "grant_type=client_credential", codeDataFormatError},
		{"empty", "", codeDataFormatError},
		{"trailing data", `{"grant_type":"client_credential"} {}`, codeDataFormatError},
		{"wrong type", `{"grant_type":"client_credential","appid":"` + testAppID + `","secret":"` + testSecret + `","force_refresh":"yes"}`, codeDataFormatError},
		{"too large", big, codeDataFormatError},
		{"wrong grant", `{"grant_type":"authorization_code","appid":"` + testAppID + `","secret":"` + testSecret + `"}`, codeInvalidGrantType},
		{"unknown fields ignored", `{"grant_type":"client_credential","appid":"` + testAppID + `","secret":"` + testSecret + `","extra":1}`, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, m := call(t, e, http.MethodPost, pathStableToken, tt.body)
			wantErrcode(t, status, m, tt.want)
		})
	}
}

// mintPhoneCode mints a phone code through the helper endpoint.
func mintPhoneCode(t *testing.T, e *Emulator, body string) string {
	t.Helper()
	status, m := call(t, e, http.MethodPost, pathPhoneCode, body)
	if status != http.StatusOK {
		t.Fatalf("minting phone code: %d %v", status, m)
	}
	code, _ := m["code"].(string)
	if code == "" {
		t.Fatalf("minting phone code: %v", m)
	}
	return code
}

// phoneCall redeems code with token.
func phoneCall(t *testing.T, e *Emulator, token, code string) (int, map[string]any) {
	t.Helper()
	target := pathPhoneNumber
	if token != "" {
		target += "?access_token=" + url.QueryEscape(token)
	}
	body, _ := json.Marshal(phoneNumberRequest{Code: code})
	return call(t, e, http.MethodPost, target, string(body))
}

func TestPhoneFlow(t *testing.T) {
	e, clock := configured(t)
	tok, _ := stableToken(t, e, false)

	code := mintPhoneCode(t, e, `{"phone_number":"13800138000"}`)
	status, m := phoneCall(t, e, tok, code)
	wantErrcode(t, status, m, 0)
	if m["errmsg"] != "ok" {
		t.Errorf("errmsg = %v, want ok", m["errmsg"])
	}
	info, _ := m["phone_info"].(map[string]any)
	wm, _ := info["watermark"].(map[string]any)
	if info["phoneNumber"] != "13800138000" || info["purePhoneNumber"] != "13800138000" || info["countryCode"] != "86" {
		t.Fatalf("phone_info = %v", info)
	}
	if wm["appid"] != testAppID || wm["timestamp"] != float64(clock.Now().Unix()) {
		t.Fatalf("watermark = %v", wm)
	}

	status, m = phoneCall(t, e, tok, code)
	wantErrcode(t, status, m, codeCodeUsed)

	tests := []struct {
		name, token, code string
		want              int
	}{
		{"unknown code", tok, "deadbeef", codeInvalidCode},
		{"missing code", tok, "", codeMissingCode},
		{"missing token", "", mintPhoneCode(t, e, `{"phone_number":"13800138001"}`), codeMissingAccessToken},
		{"bad token", "not-a-token", mintPhoneCode(t, e, `{"phone_number":"13800138002"}`), codeInvalidCredential},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, m := phoneCall(t, e, tt.token, tt.code)
			wantErrcode(t, status, m, tt.want)
		})
	}

	t.Run("bad json", func(t *testing.T) {
		status, m := call(t, e, http.MethodPost, pathPhoneNumber+"?access_token="+tok, "{")
		wantErrcode(t, status, m, codeDataFormatError)
	})

	t.Run("foreign number and forged watermark", func(t *testing.T) {
		code := mintPhoneCode(t, e, `{"phone_number":"6505550100","country_code":"1","watermark_appid":"wxforged"}`)
		status, m := phoneCall(t, e, tok, code)
		wantErrcode(t, status, m, 0)
		info := m["phone_info"].(map[string]any)
		if info["phoneNumber"] != "+16505550100" || info["purePhoneNumber"] != "6505550100" || info["countryCode"] != "1" {
			t.Fatalf("phone_info = %v", info)
		}
		if wm := info["watermark"].(map[string]any); wm["appid"] != "wxforged" {
			t.Fatalf("watermark appid = %v, want the forged one", wm["appid"])
		}
	})

	t.Run("code expires", func(t *testing.T) {
		code := mintPhoneCode(t, e, `{"phone_number":"13800138003"}`)
		clock.Advance(DefaultCodeTTL)
		tok, _ := stableToken(t, e, false)
		status, m := phoneCall(t, e, tok, code)
		wantErrcode(t, status, m, codeInvalidCode)
	})

	t.Run("expired token", func(t *testing.T) {
		code := mintPhoneCode(t, e, `{"phone_number":"13800138004"}`)
		tok, _ := stableToken(t, e, true)
		clock.Advance(DefaultTokenTTL)
		status, m := phoneCall(t, e, tok, code)
		wantErrcode(t, status, m, codeTokenExpired)
	})
}

func TestPhoneWatermarkFollowsTokenWhenUnconfigured(t *testing.T) {
	e, _ := newEmulator(t, &Emulator{})
	body := `{"grant_type":"client_credential","appid":"wxdynamic","secret":"s"}`
	_, m := call(t, e, http.MethodPost, pathStableToken, body)
	tok := m["access_token"].(string)
	code := mintPhoneCode(t, e, `{"phone_number":"13800138000"}`)
	status, m := phoneCall(t, e, tok, code)
	wantErrcode(t, status, m, 0)
	if wm := m["phone_info"].(map[string]any)["watermark"].(map[string]any); wm["appid"] != "wxdynamic" {
		t.Fatalf("watermark appid = %v, want the token's appid", wm["appid"])
	}
}

func TestPhoneCodeHelperValidation(t *testing.T) {
	e, _ := configured(t)
	tests := []struct {
		name, body string
		want       int
	}{
		{"ok", `{"phone_number":"13800138000"}`, http.StatusOK},
		{"missing number", `{}`, http.StatusBadRequest},
		{"letters", `{"phone_number":"1380013800a"}`, http.StatusBadRequest},
		{"plus sign", `{"phone_number":"+8613800138000"}`, http.StatusBadRequest},
		{"bad country", `{"phone_number":"13800138000","country_code":"+86"}`, http.StatusBadRequest},
		{"bad watermark appid", `{"phone_number":"13800138000","watermark_appid":"wx bad"}`, http.StatusBadRequest},
		{"unknown field", `{"phone_number":"13800138000","phone":"1"}`, http.StatusBadRequest},
		{"empty body", ``, http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, m := call(t, e, http.MethodPost, pathPhoneCode, tt.body)
			if status != tt.want {
				t.Fatalf("status = %d (%v), want %d", status, m, tt.want)
			}
			if tt.want != http.StatusOK && m["error"] == "" {
				t.Fatalf("helper error without an error member: %v", m)
			}
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

func TestHelperWrongMethodSetsAllow(t *testing.T) {
	e, _ := configured(t)
	for path, allow := range map[string]string{
		pathCode: "POST", pathPhoneCode: "POST", pathEncrypt: "POST", pathFault: "POST, DELETE",
	} {
		w, _, err := serve(t, e, httptest.NewRequest(http.MethodPut, path, nil))
		if err != nil {
			t.Fatal(err)
		}
		if w.Code != http.StatusMethodNotAllowed || w.Header().Get("Allow") != allow {
			t.Errorf("%s: status %d Allow %q, want 405 %q", path, w.Code, w.Header().Get("Allow"), allow)
		}
	}
}

func TestUnknownPathCallsNext(t *testing.T) {
	e, _ := configured(t)
	for _, p := range []string{"/", "/sns/jscode2session/", "/emulator/", "/emulator/codes", "/cgi-bin/token", "/wx/login"} {
		w, called, err := serve(t, e, httptest.NewRequest(http.MethodGet, p, nil))
		if err != nil || !called || w.Code != http.StatusTeapot {
			t.Errorf("%s: next called=%v status=%d err=%v, want next to answer", p, called, w.Code, err)
		}
	}
}

func TestServeBeforeProvision(t *testing.T) {
	var e Emulator
	_, called, err := serve(t, &e, httptest.NewRequest(http.MethodGet, pathJSCode2Session, nil))
	if called || err == nil {
		t.Fatalf("unprovisioned emulator: next=%v err=%v, want an error", called, err)
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

func TestProvisionResolvesPlaceholders(t *testing.T) {
	t.Setenv("WXEMU_TEST_APPID", "wxfromenv")
	t.Setenv("WXEMU_TEST_SECRET", "secretfromenv")
	e, _ := newEmulator(t, &Emulator{AppID: "{env.WXEMU_TEST_APPID}", AppSecret: "{env.WXEMU_TEST_SECRET}"})
	if e.appID != "wxfromenv" || e.appSecret != "secretfromenv" {
		t.Fatalf("resolved app_id=%q, secret resolved=%v", e.appID, e.appSecret == "secretfromenv")
	}
	// The config keeps the placeholder, never the secret.
	out, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "secretfromenv") || !strings.Contains(string(out), "{env.WXEMU_TEST_SECRET}") {
		t.Fatalf("config JSON = %s", out)
	}
	if time.Duration(e.CodeTTL) != DefaultCodeTTL || time.Duration(e.TokenTTL) != DefaultTokenTTL {
		t.Fatalf("defaults not applied: %v %v", e.CodeTTL, e.TokenTTL)
	}

	q := url.Values{"appid": {"wxfromenv"}, "secret": {"secretfromenv"}, "grant_type": {"authorization_code"}}
	code, _ := mintCode(t, e, "")
	q.Set("js_code", code)
	status, m := call(t, e, http.MethodGet, pathJSCode2Session+"?"+q.Encode(), "")
	wantErrcode(t, status, m, 0)
}

func TestProvisionAndValidateErrors(t *testing.T) {
	tests := []struct {
		name string
		e    Emulator
	}{
		{"unset env app_id", Emulator{AppID: "{env.WXEMU_TEST_SURELY_UNSET}"}},
		{"unset env app_secret", Emulator{AppSecret: "{env.WXEMU_TEST_SURELY_UNSET}"}},
		{"negative code_ttl", Emulator{CodeTTL: caddy.Duration(-time.Second)}},
		{"sub-second token_ttl", Emulator{TokenTTL: caddy.Duration(500 * time.Millisecond)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
			t.Cleanup(cancel)
			e := tt.e
			err := e.Provision(ctx)
			if err == nil {
				err = e.Validate()
			}
			if err == nil {
				t.Fatal("want an error")
			}
			if strings.Contains(err.Error(), "SURELY_UNSET") && !strings.Contains(err.Error(), "resolving") {
				t.Errorf("error %q does not say what was being done", err)
			}
		})
	}
}

func TestModuleLoadsThroughCaddy(t *testing.T) {
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	tests := []struct {
		name, config string
		wantErr      bool
	}{
		{"defaults", `{}`, false},
		{"full", `{"app_id":"wx1","app_secret":"s","code_ttl":"1m","token_ttl":"1h"}`, false},
		{"bad token_ttl", `{"token_ttl":"10ms"}`, true},
		{"unknown field", `{"appid":"wx1"}`, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mod, err := ctx.LoadModuleByID("http.handlers.wechat_emulator", json.RawMessage(tt.config))
			if tt.wantErr {
				if err == nil {
					t.Fatal("want an error")
				}
				return
			}
			if err != nil {
				t.Fatalf("loading: %v", err)
			}
			if _, ok := mod.(caddyhttp.MiddlewareHandler); !ok {
				t.Fatalf("module %T is not a middleware handler", mod)
			}
		})
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
