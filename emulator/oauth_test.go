package emulator

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

const (
	testOAAppID   = "wxoa0123456789abcd"
	testOASecret  = "oa-secret-0123456789abcdef012345"
	testSiteAppID = "wxsite0123456789ab"
	testSiteSec   = "site-secret-0123456789abcdef0123"
	testCallback  = "http://127.0.0.1:8080/wx/web/callback"
)

// oauthConfigured returns an emulator that serves the two test web apps
// only and checks their secrets.
func oauthConfigured(t *testing.T) (*Emulator, *fakeClock) {
	t.Helper()
	return newEmulator(t, &Emulator{OAuthApps: map[string]string{testOAAppID: testOASecret, testSiteAppID: testSiteSec}})
}

// mintOAuth mints a web OAuth code through the helper and fails the test
// unless it is accepted.
func mintOAuth(t *testing.T, e *Emulator, body string) (code, openid string) {
	t.Helper()
	status, m := call(t, e, http.MethodPost, pathOAuthCode, body)
	if status != http.StatusOK {
		t.Fatalf("minting web OAuth code %s: %d %v", body, status, m)
	}
	code, _ = m["code"].(string)
	openid, _ = m["openid"].(string)
	if code == "" || openid == "" {
		t.Fatalf("mint answer %v lacks code or openid", m)
	}
	return code, openid
}

// oauthExchangeURL is the access_token call of appid and secret for code.
func oauthExchangeURL(appid, secret, code string) string {
	q := url.Values{"appid": {appid}, "secret": {secret}, "code": {code}, "grant_type": {"authorization_code"}}
	return pathOAuthAccessToken + "?" + q.Encode()
}

// oauthExchange exchanges code for the OA test app and fails unless it
// succeeds.
func oauthExchange(t *testing.T, e *Emulator, code string) map[string]any {
	t.Helper()
	status, m := call(t, e, http.MethodGet, oauthExchangeURL(testOAAppID, testOASecret, code), "")
	wantErrcode(t, status, m, 0)
	return m
}

// userInfoURL is the userinfo call of token for openid.
func userInfoURL(token, openid string) string {
	q := url.Values{"access_token": {token}, "openid": {openid}, "lang": {"zh_CN"}}
	return pathUserInfo + "?" + q.Encode()
}

// authorizeQuery is a valid authorize query of the OA test app.
func authorizeQuery(scope, state string) url.Values {
	return url.Values{
		"appid": {testOAAppID}, "redirect_uri": {testCallback + "?from=test"},
		"response_type": {"code"}, "scope": {scope}, "state": {state},
	}
}

// submit posts the page's form to page and returns the recorder.
func submit(t *testing.T, e *Emulator, page string, form url.Values) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, page, strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return rawCall(t, e, r)
}

func TestOAuthCaddyfile(t *testing.T) {
	tests := []struct {
		name    string
		input   string
		want    map[string]string
		wantErr string
	}{
		{name: "two apps", input: "wechat_emulator {\n oauth_app wxoa1 s1\n oauth_app wxsite1 {env.SITE_SECRET}\n}",
			want: map[string]string{"wxoa1": "s1", "wxsite1": "{env.SITE_SECRET}"}},
		{name: "with the mini-program app", input: "wechat_emulator {\n app_id wx1\n oauth_app wxoa1 s1\n}",
			want: map[string]string{"wxoa1": "s1"}},
		{name: "no secret", input: "wechat_emulator {\n oauth_app wxoa1\n}", wantErr: "wrong argument count"},
		{name: "three values", input: "wechat_emulator {\n oauth_app wxoa1 s1 s2\n}", wantErr: "wrong argument count"},
		{name: "bad appid", input: "wechat_emulator {\n oauth_app wx/oa s1\n}", wantErr: "oauth_app: appid must be"},
		{name: "empty secret", input: "wechat_emulator {\n oauth_app wxoa1 \"\"\n}", wantErr: "secret must not be empty"},
		{name: "appid twice", input: "wechat_emulator {\n oauth_app wxoa1 s1\n oauth_app wxoa1 s2\n}", wantErr: "oauth_app wxoa1 given twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got Emulator
			err := got.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tt.input))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "Testfile:") {
					t.Fatalf("err = %v, want one naming the line and containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if len(got.OAuthApps) != len(tt.want) {
				t.Fatalf("OAuthApps = %v, want %v", got.OAuthApps, tt.want)
			}
			for k, v := range tt.want {
				if got.OAuthApps[k] != v {
					t.Fatalf("OAuthApps = %v, want %v", got.OAuthApps, tt.want)
				}
			}
		})
	}
}

func TestOAuthAdaptKeepsSecretPlaceholder(t *testing.T) {
	out, err := adaptCaddyfile(t, ":8081 {\n\twechat_emulator {\n\t\toauth_app wxoa1 {env.OA_SECRET}\n\t}\n}\n")
	if err != nil {
		t.Fatalf("adapting: %v", err)
	}
	if !strings.Contains(out, `"oauth_apps":{"wxoa1":"{env.OA_SECRET}"}`) {
		t.Fatalf("adapted config lacks the oauth_apps placeholder:\n%s", out)
	}
}

func TestOAuthProvisionResolvesSecrets(t *testing.T) {
	t.Setenv("WXEMU_TEST_OA_SECRET", "oa-from-env")
	e, _ := newEmulator(t, &Emulator{OAuthApps: map[string]string{testOAAppID: "{env.WXEMU_TEST_OA_SECRET}"}})
	code, _ := mintOAuth(t, e, `{"appid":"`+testOAAppID+`"}`)
	status, m := call(t, e, http.MethodGet, oauthExchangeURL(testOAAppID, "oa-from-env", code), "")
	wantErrcode(t, status, m, 0)
	out, _ := json.Marshal(e)
	if strings.Contains(string(out), "oa-from-env") {
		t.Fatalf("config JSON holds the resolved secret: %s", out)
	}

	for name, apps := range map[string]map[string]string{
		"unset env": {testOAAppID: "{env.WXEMU_TEST_SURELY_UNSET}"},
		"bad appid": {"wx oa": "s"},
	} {
		t.Run(name, func(t *testing.T) {
			e := &Emulator{OAuthApps: apps}
			if err := e.provisionOAuth(caddy.NewReplacer()); err == nil || !strings.Contains(err.Error(), "oauth_app") {
				t.Fatalf("err = %v, want one naming oauth_app", err)
			}
		})
	}
}

func TestOAuthAccessTokenErrors(t *testing.T) {
	e, clock := oauthConfigured(t)
	fresh := func() string { c, _ := mintOAuth(t, e, `{"appid":"`+testOAAppID+`"}`); return c }
	expired := fresh()
	clock.Advance(DefaultCodeTTL)
	used := fresh()
	oauthExchange(t, e, used)
	siteCode, _ := mintOAuth(t, e, `{"appid":"`+testSiteAppID+`","scope":"snsapi_login"}`)
	loginCode, _ := mintCode(t, e, "")
	tests := []struct {
		name   string
		method string
		target string
		want   int
	}{
		{"POST", http.MethodPost, oauthExchangeURL(testOAAppID, testOASecret, fresh()), codeRequireGET},
		{"no appid", http.MethodGet, oauthExchangeURL("", testOASecret, fresh()), codeMissingAppID},
		{"unknown appid", http.MethodGet, oauthExchangeURL("wxother", testOASecret, fresh()), codeInvalidAppID},
		{"no secret", http.MethodGet, oauthExchangeURL(testOAAppID, "", fresh()), codeMissingAppSecret},
		{"wrong secret", http.MethodGet, oauthExchangeURL(testOAAppID, testSiteSec, fresh()), codeInvalidAppSecret},
		{"grant_type", http.MethodGet, strings.Replace(oauthExchangeURL(testOAAppID, testOASecret, fresh()), "authorization_code", "client_credential", 1), codeInvalidGrantType},
		{"no code", http.MethodGet, oauthExchangeURL(testOAAppID, testOASecret, ""), codeMissingCode},
		{"unknown code", http.MethodGet, oauthExchangeURL(testOAAppID, testOASecret, "nosuchcode"), codeInvalidCode},
		{"expired code", http.MethodGet, oauthExchangeURL(testOAAppID, testOASecret, expired), codeInvalidCode},
		{"used code", http.MethodGet, oauthExchangeURL(testOAAppID, testOASecret, used), codeCodeUsed},
		{"another app's code", http.MethodGet, oauthExchangeURL(testOAAppID, testOASecret, siteCode), codeInvalidCode},
		{"a wx.login code", http.MethodGet, oauthExchangeURL(testOAAppID, testOASecret, loginCode), codeInvalidCode},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, m := call(t, e, tt.method, tt.target, "")
			wantErrcode(t, status, m, tt.want)
		})
	}
	// A refused exchange did not spend the site app's code.
	status, m := call(t, e, http.MethodGet, oauthExchangeURL(testSiteAppID, testSiteSec, siteCode), "")
	wantErrcode(t, status, m, 0)
}

func TestOAuthAccessTokenShapes(t *testing.T) {
	e, _ := newEmulator(t, &Emulator{}) // no oauth_app: any appid and secret
	tests := []struct {
		name         string
		mint         string
		wantScope    string
		wantUnionID  any // nil: absent
		wantSnapshot any // nil: absent
	}{
		{"base hides the unionid", `{"appid":"wxany","openid":"o1","unionid":"u1"}`, scopeBase, nil, nil},
		{"userinfo gives the unionid", `{"appid":"wxany","openid":"o1","unionid":"u1","scope":"snsapi_userinfo"}`, scopeUserInfo, "u1", nil},
		{"login gives the unionid", `{"appid":"wxany","openid":"o1","unionid":"u1","scope":"snsapi_login"}`, scopeLogin, "u1", nil},
		{"no unionid bound", `{"appid":"wxany","openid":"o1","scope":"snsapi_userinfo"}`, scopeUserInfo, nil, nil},
		{"snapshot user", `{"appid":"wxany","openid":"o1","unionid":"u1","snapshot":true}`, scopeUserInfo, "u1", float64(1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _ := mintOAuth(t, e, tt.mint)
			status, m := call(t, e, http.MethodGet, oauthExchangeURL("wxany", "anysecret", code), "")
			wantErrcode(t, status, m, 0)
			if m["scope"] != tt.wantScope || m["openid"] != "o1" || m["unionid"] != tt.wantUnionID || m["is_snapshotuser"] != tt.wantSnapshot {
				t.Fatalf("answer = %v", m)
			}
		})
	}
}

func TestUserInfoErrors(t *testing.T) {
	e, clock := oauthConfigured(t)
	token := func(scope string) string {
		code, _ := mintOAuth(t, e, `{"appid":"`+testOAAppID+`","openid":"oInfo","scope":"`+scope+`"}`)
		return oauthExchange(t, e, code)["access_token"].(string)
	}
	userinfo, base := token(scopeUserInfo), token(scopeBase)
	expiring := token(scopeUserInfo)
	tests := []struct {
		name   string
		target string
		want   int
	}{
		{"no token", userInfoURL("", "oInfo"), codeMissingAccessToken},
		{"unknown token", userInfoURL("nosuchtoken", "oInfo"), codeInvalidCredential},
		{"no openid", userInfoURL(userinfo, ""), codeMissingOpenID},
		{"another openid", userInfoURL(userinfo, "oOther"), codeInvalidOpenID},
		{"snsapi_base token", userInfoURL(base, "oInfo"), codeAPIUnauthorized},
		{"ok", userInfoURL(userinfo, "oInfo"), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, m := call(t, e, http.MethodGet, tt.target, "")
			wantErrcode(t, status, m, tt.want)
		})
	}
	status, m := call(t, e, http.MethodPost, userInfoURL(userinfo, "oInfo"), "")
	wantErrcode(t, status, m, codeRequireGET)

	clock.Advance(oauthTokenTTL)
	status, m = call(t, e, http.MethodGet, userInfoURL(expiring, "oInfo"), "")
	wantErrcode(t, status, m, codeTokenExpired)
	// Expired tokens are forgotten a lifetime later (then: unknown).
	clock.Advance(oauthTokenTTL + DefaultCodeTTL)
	mintOAuth(t, e, `{"appid":"`+testOAAppID+`"}`) // runs the sweep
	status, m = call(t, e, http.MethodGet, userInfoURL(expiring, "oInfo"), "")
	wantErrcode(t, status, m, codeInvalidCredential)
}

func TestOAuthRefreshToken(t *testing.T) {
	e, clock := oauthConfigured(t)
	code, _ := mintOAuth(t, e, `{"appid":"`+testOAAppID+`","openid":"oRef","unionid":"uRef","scope":"snsapi_userinfo"}`)
	first := oauthExchange(t, e, code)
	refresh := first["refresh_token"].(string)
	refreshURL := func(appid, grant, token string) string {
		q := url.Values{"appid": {appid}, "grant_type": {grant}, "refresh_token": {token}}
		return pathOAuthRefresh + "?" + q.Encode()
	}

	clock.Advance(oauthTokenTTL) // the first access token has expired
	status, m := call(t, e, http.MethodGet, refreshURL(testOAAppID, "refresh_token", refresh), "")
	wantErrcode(t, status, m, 0)
	if m["refresh_token"] != refresh || m["access_token"] == first["access_token"] || m["openid"] != "oRef" ||
		m["scope"] != scopeUserInfo || m["expires_in"] != float64(7200) {
		t.Fatalf("refresh answer = %v", m)
	}
	status, info := call(t, e, http.MethodGet, userInfoURL(m["access_token"].(string), "oRef"), "")
	wantErrcode(t, status, info, 0)

	tests := []struct {
		name, target string
		want         int
	}{
		{"no appid", refreshURL("", "refresh_token", refresh), codeMissingAppID},
		{"unknown appid", refreshURL("wxother", "refresh_token", refresh), codeInvalidAppID},
		{"grant_type", refreshURL(testOAAppID, "authorization_code", refresh), codeInvalidGrantType},
		{"no refresh_token", refreshURL(testOAAppID, "refresh_token", ""), codeMissingRefreshToken},
		{"unknown refresh_token", refreshURL(testOAAppID, "refresh_token", "nosuch"), codeInvalidRefreshToken},
		{"another app's refresh_token", refreshURL(testSiteAppID, "refresh_token", refresh), codeInvalidRefreshToken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, m := call(t, e, http.MethodGet, tt.target, "")
			wantErrcode(t, status, m, tt.want)
		})
	}
	clock.Advance(oauthRefreshTTL)
	status, m = call(t, e, http.MethodGet, refreshURL(testOAAppID, "refresh_token", refresh), "")
	wantErrcode(t, status, m, codeRefreshTokenExpired)
}

func TestOAuthCodeHelper(t *testing.T) {
	e, _ := oauthConfigured(t)
	tests := []struct {
		name, body string
		status     int
		want       string
	}{
		{"no body", ``, 400, "request body is empty"},
		{"no appid", `{"openid":"o1"}`, 400, "appid is required"},
		{"unknown appid", `{"appid":"wxother"}`, 400, "not one of the emulator's oauth_app apps"},
		{"bad openid", `{"appid":"` + testOAAppID + `","openid":"o 1"}`, 400, "openid must be"},
		{"bad unionid", `{"appid":"` + testOAAppID + `","unionid":"u/1"}`, 400, "unionid must be"},
		{"bad scope", `{"appid":"` + testOAAppID + `","scope":"snsapi_all"}`, 400, "scope must be"},
		{"snapshot with base", `{"appid":"` + testOAAppID + `","scope":"snsapi_base","snapshot":true}`, 400, "snapshot-page user"},
		{"bad headimgurl", `{"appid":"` + testOAAppID + `","headimgurl":"javascript:x"}`, 400, "headimgurl must be"},
		{"unknown field", `{"appid":"` + testOAAppID + `","secret":"x"}`, 400, "not the expected JSON object"},
		{"trailing data", `{"appid":"` + testOAAppID + `"} {}`, 400, "not the expected JSON object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, m := call(t, e, http.MethodPost, pathOAuthCode, tt.body)
			if status != tt.status || !strings.Contains(m["error"].(string), tt.want) {
				t.Fatalf("status %d %v, want %d saying %q", status, m, tt.status, tt.want)
			}
		})
	}
	w := rawCall(t, e, httptest.NewRequest(http.MethodGet, pathOAuthCode, nil))
	if w.Code != http.StatusMethodNotAllowed || w.Header().Get("Allow") != "POST" {
		t.Fatalf("GET: status %d Allow %q", w.Code, w.Header().Get("Allow"))
	}

	// Defaults: a fresh openid, snsapi_base; a snapshot user gets snsapi_userinfo.
	code, openid := mintOAuth(t, e, `{"appid":"`+testOAAppID+`"}`)
	if len(openid) != openIDLength || openid[0] != 'o' {
		t.Fatalf("generated openid %q", openid)
	}
	if m := oauthExchange(t, e, code); m["openid"] != openid || m["scope"] != scopeBase {
		t.Fatalf("exchange = %v", m)
	}
	code, _ = mintOAuth(t, e, `{"appid":"`+testOAAppID+`","openid":"oSnap","snapshot":true,"headimgurl":"https://example.com/a.png"}`)
	m := oauthExchange(t, e, code)
	if m["scope"] != scopeUserInfo || m["is_snapshotuser"] != float64(1) {
		t.Fatalf("snapshot exchange = %v", m)
	}
	status, info := call(t, e, http.MethodGet, userInfoURL(m["access_token"].(string), "oSnap"), "")
	wantErrcode(t, status, info, 0)
	if info["headimgurl"] != "https://example.com/a.png" || info["nickname"] != defaultOAuthNickname {
		t.Fatalf("userinfo = %v", info)
	}
}

func TestOAuthFaults(t *testing.T) {
	e, _ := oauthConfigured(t)
	code, _ := mintOAuth(t, e, `{"appid":"`+testOAAppID+`","scope":"snsapi_userinfo","openid":"oF"}`)
	queueFault(t, e, `{"path":"/sns/oauth2/access_token","errcode":-1}`)
	status, m := call(t, e, http.MethodGet, oauthExchangeURL(testOAAppID, testOASecret, code), "")
	wantErrcode(t, status, m, codeSystemError)
	// The faulted call did not spend the code.
	token := oauthExchange(t, e, code)["access_token"].(string)

	// A fault without a path reaches userinfo too; a garbage answer is not JSON.
	queueFault(t, e, `{"garbage":true,"status":502}`)
	w := rawCall(t, e, httptest.NewRequest(http.MethodGet, userInfoURL(token, "oF"), nil))
	if w.Code != http.StatusBadGateway || w.Header().Get("Content-Type") != "text/html" {
		t.Fatalf("garbage fault: %d %q", w.Code, w.Header().Get("Content-Type"))
	}
	queueFault(t, e, `{"path":"/sns/userinfo","errcode":48001}`)
	status, m = call(t, e, http.MethodGet, userInfoURL(token, "oF"), "")
	wantErrcode(t, status, m, codeAPIUnauthorized)
	if !strings.HasPrefix(m["errmsg"].(string), "api unauthorized") {
		t.Errorf("errmsg = %v", m["errmsg"])
	}
	status, m = call(t, e, http.MethodGet, userInfoURL(token, "oF"), "")
	wantErrcode(t, status, m, 0)

	queueFault(t, e, `{"path":"/sns/oauth2/refresh_token","status":503}`)
	// The pages and the helper are not fault targets.
	for _, p := range []string{pathAuthorize, pathQRConnect, pathOAuthCode} {
		status, m := call(t, e, http.MethodPost, pathFault, `{"path":"`+p+`","errcode":-1}`)
		if status != http.StatusBadRequest {
			t.Errorf("fault on %s: %d %v, want 400", p, status, m)
		}
	}
}

func TestOAuthNearbyPathsCallNext(t *testing.T) {
	e, _ := oauthConfigured(t)
	for _, p := range []string{"/connect/oauth2/authorize/", "/connect/qrconnect2", "/sns/oauth2", "/sns/userinfo/x", "/emulator/oauth"} {
		w, called, err := serve(t, e, httptest.NewRequest(http.MethodGet, p, nil))
		if err != nil || !called || w.Code != http.StatusTeapot {
			t.Errorf("%s: next called=%v status=%d err=%v, want next to answer", p, called, w.Code, err)
		}
	}
}

func TestOAuthCodesAreSwept(t *testing.T) {
	e, clock := oauthConfigured(t)
	for range 3 {
		mintOAuth(t, e, `{"appid":"`+testOAAppID+`"}`)
	}
	clock.Advance(DefaultCodeTTL + time.Second)
	mintOAuth(t, e, `{"appid":"`+testOAAppID+`"}`)
	if n := len(e.state.oauth.codes); n != 1 {
		t.Fatalf("%d codes kept after expiry, want 1", n)
	}
}

// TestOAuthCodeRedeemedOnceUnderConcurrency: of many simultaneous exchanges
// of one code, exactly one succeeds and the rest get 40163.
func TestOAuthCodeRedeemedOnceUnderConcurrency(t *testing.T) {
	e, _ := oauthConfigured(t)
	code, _ := mintOAuth(t, e, `{"appid":"`+testOAAppID+`"}`)
	const n = 16
	results := make(chan int, n)
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := httptest.NewRequest(http.MethodGet, oauthExchangeURL(testOAAppID, testOASecret, code), nil)
			w := httptest.NewRecorder()
			_ = e.ServeHTTP(w, r, nil)
			var m map[string]any
			_ = json.Unmarshal(w.Body.Bytes(), &m)
			f, _ := m["errcode"].(float64)
			results <- int(f)
		}()
	}
	wg.Wait()
	close(results)
	counts := make(map[int]int)
	for c := range results {
		counts[c]++
	}
	if counts[0] != 1 || counts[codeCodeUsed] != n-1 {
		t.Fatalf("errcodes %v, want one success and %d × 40163", counts, n-1)
	}
}
