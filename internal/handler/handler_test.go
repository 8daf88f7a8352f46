package handler

import (
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"github.com/wxauth/caddy-wechat-auth/internal/testclock"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wxauth/caddy-wechat-auth/internal/token"
	"github.com/wxauth/caddy-wechat-auth/internal/wechat"
	"github.com/wxauth/caddy-wechat-auth/store"
	"github.com/wxauth/caddy-wechat-auth/store/bolt"
)

const testApp = "wxtest00000000001"

// testClock is the tests' injected clock.
type testClock = testclock.Clock

// fakeWeChat hands out sessions for codes it was told about, single-use.
type fakeWeChat struct {
	mu     sync.Mutex
	codes  map[string]wechat.Session
	phones map[string]wechat.PhoneInfo
	err    error
}

func (f *fakeWeChat) addCode(code, openid, unionid string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.codes[code] = wechat.Session{OpenID: openid, UnionID: unionid, SessionKey: []byte("0123456789abcdef")}
}

func (f *fakeWeChat) Code2Session(_ context.Context, code string) (*wechat.Session, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	s, ok := f.codes[code]
	if !ok {
		return nil, &wechat.APIError{API: "jscode2session", Code: 40029, Message: "invalid code"}
	}
	delete(f.codes, code)
	return &s, nil
}

func (f *fakeWeChat) PhoneNumber(_ context.Context, code string) (*wechat.PhoneInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p, ok := f.phones[code]
	if !ok {
		return nil, &wechat.APIError{API: "getuserphonenumber", Code: 40029, Message: "invalid code"}
	}
	return &p, nil
}

type harness struct {
	t     testing.TB
	h     *Handler
	clock *testClock
	wx    *fakeWeChat
	st    store.Store
	revs  *Revocations
	n     int
}

func newHarness(t testing.TB) *harness {
	t.Helper()
	st, err := bolt.Open(filepath.Join(t.TempDir(), "h.db"), bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return newHarnessWith(t, st, testclock.New(time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)), NewRevocations())
}

func newHarnessWith(t testing.TB, st store.Store, clk *testClock, revs *Revocations) *harness {
	t.Helper()
	key, err := token.NewHMACKey([]byte("handler-test-signing-key-0123456789abcdef"), "")
	if err != nil {
		t.Fatal(err)
	}
	tokens, err := token.New(token.Config{
		Keys: []*token.Key{key}, Issuer: "caddy-wechat-auth", Audience: testApp,
		AccessTTL: 15 * time.Minute, Leeway: 30 * time.Second, Now: clk.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	sealer, err := NewSealer("app-secret")
	if err != nil {
		t.Fatal(err)
	}
	wx := &fakeWeChat{codes: map[string]wechat.Session{}, phones: map[string]wechat.PhoneInfo{}}
	h, err := New(Config{
		AppID: testApp, Store: st, Tokens: tokens, WeChat: wx, Sealer: sealer,
		Revocations: revs, RefreshSecret: []byte("refresh-derivation-secret-0123456789abcdef"),
		Paths: Paths{Login: "/wx/login", Refresh: "/wx/refresh", Logout: "/wx/logout",
			Profile: "/wx/profile", Phone: "/wx/phone", Decrypt: "/wx/decrypt", JWKS: "/jwks"},
		Now: clk.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	return &harness{t: t, h: h, clock: clk, wx: wx, st: st, revs: revs}
}

type result struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func (hs *harness) call(method, path, body string, hdr ...string) result {
	hs.t.Helper()
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	if body != "" {
		r.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	if res, c, _ := hs.h.Serve(w, r); res == ResultOK {
		// Stands in for the next handler.
		fmt.Fprintf(w, "ok %s %s", c.Subject, r.Header.Get("X-WeChat-User-ID"))
	}
	res := result{status: w.Code, header: w.Header(), raw: w.Body.String()}
	_ = json.Unmarshal(w.Body.Bytes(), &res.body)
	return res
}

func (hs *harness) login(openid string) (access, refresh string) {
	hs.t.Helper()
	hs.n++
	code := fmt.Sprintf("code-%d", hs.n)
	hs.wx.addCode(code, openid, "")
	r := hs.call("POST", "/wx/login", `{"code":"`+code+`"}`)
	if r.status != 200 {
		hs.t.Fatalf("login: %d %s", r.status, r.raw)
	}
	return r.body["token"].(string), r.body["refresh_token"].(string)
}

func (hs *harness) refresh(rt string) result {
	hs.t.Helper()
	return hs.call("POST", "/wx/refresh", `{"refresh_token":"`+rt+`"}`)
}

func (hs *harness) guard(access string) result {
	hs.t.Helper()
	return hs.call("GET", "/api/thing", "", "Authorization", "Bearer "+access)
}

func want(t *testing.T, r result, status int, code string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("want %d, got %d: %s", status, r.status, r.raw)
	}
	if code != "" && r.body["error"] != code {
		t.Fatalf("want error %q, got %s", code, r.raw)
	}
}

func TestRefreshRotation(t *testing.T) {
	hs := newHarness(t)
	access, rt1 := hs.login("o1")
	want(t, hs.guard(access), 200, "")

	hs.clock.Advance(time.Minute)
	r := hs.refresh(rt1)
	want(t, r, 200, "")
	rt2 := r.body["refresh_token"].(string)
	access2 := r.body["token"].(string)
	if rt2 == rt1 || access2 == access {
		t.Fatal("refresh did not rotate")
	}
	if _, ok := r.body["new_user"]; ok {
		t.Fatalf("refresh answer has new_user: %s", r.raw)
	}
	if r.body["expires_in"].(float64) != 900 || r.body["token_type"] != "Bearer" {
		t.Fatalf("refresh answer: %s", r.raw)
	}
	want(t, hs.guard(access2), 200, "")
	// The old access token stays valid until it expires: rotation is not
	// a logout.
	want(t, hs.guard(access), 200, "")

	hs.clock.Advance(time.Minute)
	r = hs.refresh(rt2)
	want(t, r, 200, "")
	if r.body["refresh_token"] == rt2 {
		t.Fatal("second refresh did not rotate")
	}
}

func TestRefreshRetryWindowAndReuse(t *testing.T) {
	hs := newHarness(t)
	_, rt1 := hs.login("o1")
	first := hs.refresh(rt1)
	want(t, first, 200, "")

	// A client that retried within the grace period gets the same pair.
	hs.clock.Advance(RefreshGrace - time.Second)
	again := hs.refresh(rt1)
	want(t, again, 200, "")
	if again.body["token"] != first.body["token"] || again.body["refresh_token"] != first.body["refresh_token"] {
		t.Fatalf("retry got a different pair:\n%s\n%s", first.raw, again.raw)
	}

	// Later, a replay of the spent token is theft: the session ends for
	// the thief and the owner alike.
	hs.clock.Advance(2 * time.Second)
	want(t, hs.refresh(rt1), 401, CodeInvalidGrant)
	want(t, hs.refresh(first.body["refresh_token"].(string)), 401, CodeInvalidGrant)
	want(t, hs.guard(first.body["token"].(string)), 401, CodeInvalidToken)
}

func TestRefreshReuseAfterChildRotated(t *testing.T) {
	hs := newHarness(t)
	_, rt1 := hs.login("o1")
	r := hs.refresh(rt1)
	want(t, r, 200, "")
	r2 := hs.refresh(r.body["refresh_token"].(string))
	want(t, r2, 200, "")
	// rt1's child is spent too: presenting rt1 now, even inside the grace
	// period, cannot be a plain retry.
	want(t, hs.refresh(rt1), 401, CodeInvalidGrant)
	want(t, hs.guard(r2.body["token"].(string)), 401, CodeInvalidToken)
}

func TestRefreshBadTokens(t *testing.T) {
	hs := newHarness(t)
	_, rt := hs.login("o1")
	want(t, hs.refresh("unknown-token"), 401, CodeInvalidGrant)
	want(t, hs.refresh(strings.Repeat("x", 600)), 401, CodeInvalidGrant)
	want(t, hs.call("POST", "/wx/refresh", `{}`), 400, CodeInvalidRequest)
	want(t, hs.call("GET", "/wx/refresh", ""), 405, CodeMethodNotAllowed)
	hs.clock.Advance(721 * time.Hour)
	want(t, hs.refresh(rt), 401, CodeInvalidGrant)
}

func TestConcurrentRefreshOnePair(t *testing.T) {
	hs := newHarness(t)
	_, rt := hs.login("o1")
	const n = 16
	var wg sync.WaitGroup
	results := make([]result, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := httptest.NewRequest("POST", "/wx/refresh", strings.NewReader(`{"refresh_token":"`+rt+`"}`))
			r.Header.Set("Content-Type", "application/json")
			w := httptest.NewRecorder()
			hs.h.Serve(w, r)
			results[i] = result{status: w.Code, raw: w.Body.String()}
			_ = json.Unmarshal(w.Body.Bytes(), &results[i].body)
		}()
	}
	wg.Wait()
	for _, r := range results {
		if r.status != 200 {
			t.Fatalf("concurrent refresh: %d %s", r.status, r.raw)
		}
		if r.body["refresh_token"] != results[0].body["refresh_token"] || r.body["token"] != results[0].body["token"] {
			t.Fatal("concurrent refreshes produced more than one pair")
		}
	}
}

func TestLogoutRevokesAtOnce(t *testing.T) {
	hs := newHarness(t)
	access, rt := hs.login("o1")
	want(t, hs.guard(access), 200, "")
	want(t, hs.call("POST", "/wx/logout", "", "Authorization", "Bearer "+access), 200, "")
	want(t, hs.guard(access), 401, CodeInvalidToken)
	want(t, hs.refresh(rt), 401, CodeInvalidGrant)
	want(t, hs.call("GET", "/wx/profile", "", "token", access), 401, CodeInvalidToken)
	// Idempotent.
	want(t, hs.call("POST", "/wx/logout", "", "Authorization", "Bearer "+access), 200, "")
	// Without credentials.
	r := hs.call("POST", "/wx/logout", "")
	want(t, r, 401, CodeInvalidToken)
	if r.header.Get("WWW-Authenticate") != `Bearer realm="wechat_auth"` {
		t.Fatalf("challenge: %q", r.header.Get("WWW-Authenticate"))
	}
	// A forged token cannot log anyone out.
	want(t, hs.call("POST", "/wx/logout", "", "Authorization", "Bearer a.b.c"), 401, CodeInvalidToken)
}

func TestLogoutWithRefreshToken(t *testing.T) {
	hs := newHarness(t)
	access, rt := hs.login("o1")
	want(t, hs.call("POST", "/wx/logout", `{"refresh_token":"`+rt+`"}`), 200, "")
	want(t, hs.guard(access), 401, CodeInvalidToken)
	want(t, hs.refresh(rt), 401, CodeInvalidGrant)
	want(t, hs.call("POST", "/wx/logout", `{"refresh_token":"nope"}`), 401, CodeInvalidGrant)
}

func TestLogoutAll(t *testing.T) {
	hs := newHarness(t)
	a1, rt1 := hs.login("o1")
	a2, rt2 := hs.login("o1")
	other, _ := hs.login("o2")
	want(t, hs.call("POST", "/wx/logout", `{"all":true}`, "Authorization", "Bearer "+a1), 200, "")
	want(t, hs.guard(a1), 401, CodeInvalidToken)
	want(t, hs.guard(a2), 401, CodeInvalidToken)
	want(t, hs.refresh(rt1), 401, CodeInvalidGrant)
	want(t, hs.refresh(rt2), 401, CodeInvalidGrant)
	want(t, hs.guard(other), 200, "")
}

func TestRevocationSurvivesRestart(t *testing.T) {
	hs := newHarness(t)
	access, _ := hs.login("o1")
	live, _ := hs.login("o2")
	want(t, hs.call("POST", "/wx/logout", "", "Authorization", "Bearer "+access), 200, "")

	// A new process: an empty list, filled from the store.
	revs := NewRevocations()
	if err := LoadRevocations(context.Background(), hs.st, testApp, revs, 15*time.Minute, 30*time.Second, hs.clock.Now()); err != nil {
		t.Fatal(err)
	}
	hs2 := newHarnessWith(t, hs.st, hs.clock, revs)
	want(t, hs2.guard(access), 401, CodeInvalidToken)
	want(t, hs2.guard(live), 200, "")

	// Once every token of the session has expired the entry goes.
	hs.clock.Advance(16*time.Minute + 31*time.Second)
	if n := revs.Sweep(hs.clock.Now()); n != 1 || revs.Len() != 0 {
		t.Fatalf("sweep dropped %d, %d left", n, revs.Len())
	}
}

func TestLoginErrors(t *testing.T) {
	hs := newHarness(t)
	want(t, hs.call("POST", "/wx/login", `{"code":"unknown"}`), 400, CodeInvalidCode)
	want(t, hs.call("POST", "/wx/login", `{}`), 400, CodeInvalidRequest)
	want(t, hs.call("POST", "/wx/login", `{"code":"`+strings.Repeat("c", 300)+`"}`), 400, CodeInvalidRequest)
	want(t, hs.call("POST", "/wx/login", `{"code":"a","jscode":"b"}`), 400, CodeInvalidRequest)
	hs.wx.addCode("c1", "o1", "")
	want(t, hs.call("POST", "/wx/login", `{"code":"c1","gender":7}`), 400, CodeInvalidRequest)
	want(t, hs.call("PUT", "/wx/login", `{"code":"c1"}`), 405, CodeMethodNotAllowed)
	for _, tc := range []struct {
		err    error
		status int
		code   string
	}{
		{&wechat.APIError{API: "jscode2session", Code: 40163}, 400, CodeInvalidCode},
		{&wechat.APIError{API: "jscode2session", Code: 40226}, 403, CodeUserBlocked},
		{&wechat.APIError{API: "jscode2session", Code: 45011}, 429, CodeRateLimited},
		{&wechat.APIError{API: "jscode2session", Code: -1}, 503, CodeWeChatUnavailable},
		{&wechat.APIError{API: "jscode2session", Code: 40013}, 502, CodeWeChatError},
		{fmt.Errorf("x: %w", wechat.ErrBadResponse), 502, CodeWeChatError},
		{fmt.Errorf("x: %w", wechat.ErrUnavailable), 503, CodeWeChatUnavailable},
	} {
		hs.wx.err = tc.err
		r := hs.call("POST", "/wx/login", `{"code":"c1"}`)
		want(t, r, tc.status, tc.code)
		if (tc.status == 429 || tc.status == 503) && r.header.Get("Retry-After") == "" {
			t.Fatalf("%d without Retry-After", tc.status)
		}
	}
}

func TestPhone(t *testing.T) {
	hs := newHarness(t)
	access, _ := hs.login("o1")
	hs.wx.phones["p1"] = wechat.PhoneInfo{PhoneNumber: "+86 13800138000", PurePhoneNumber: "13800138000", CountryCode: "86", WatermarkAppID: testApp}
	hs.wx.phones["p2"] = wechat.PhoneInfo{PhoneNumber: "13900139000", WatermarkAppID: "wxother"}
	r := hs.call("POST", "/wx/phone", `{"code":"p1"}`, "token", access)
	want(t, r, 200, "")
	if p := r.body["phone"].(map[string]any); p["pure_phone_number"] != "13800138000" || p["country_code"] != "86" {
		t.Fatalf("phone: %s", r.raw)
	}
	want(t, hs.call("POST", "/wx/phone", `{"code":"p2"}`, "token", access), 502, CodeWeChatError)
	want(t, hs.call("POST", "/wx/phone", `{"code":"p1"}`), 401, CodeInvalidToken)
	want(t, hs.call("POST", "/wx/phone", `{}`, "token", access), 400, CodeInvalidRequest)
	r = hs.call("GET", "/wx/profile", "", "token", access)
	if r.body["user"].(map[string]any)["phone"] != "+86 13800138000" {
		t.Fatalf("phone not stored (or overwritten by the mismatch): %s", r.raw)
	}
}

func TestDecrypt(t *testing.T) {
	hs := newHarness(t)
	access, _ := hs.login("o1") // session_key "0123456789abcdef"
	key := []byte("0123456789abcdef")
	ed, iv, err := wechat.EncryptOpenData(key, []byte(`{"openId":"o1","watermark":{"appid":"`+testApp+`","timestamp":1}}`))
	if err != nil {
		t.Fatal(err)
	}
	r := hs.call("POST", "/wx/decrypt", `{"encrypted_data":"`+ed+`","iv":"`+iv+`"}`, "token", access)
	want(t, r, 200, "")
	if d := r.body["data"].(map[string]any); d["openId"] != "o1" {
		t.Fatalf("decrypt: %s", r.raw)
	}
	// rawData signature: sha1(rawData + session_key as WeChat's base64).
	raw := `{"nickName":"x"}`
	sum := sha1.Sum([]byte(raw + base64.StdEncoding.EncodeToString(key)))
	withSig := func(sig string) string {
		b, _ := json.Marshal(map[string]string{"encrypted_data": ed, "iv": iv, "raw_data": raw, "signature": sig})
		return string(b)
	}
	want(t, hs.call("POST", "/wx/decrypt", withSig(hex.EncodeToString(sum[:])), "token", access), 200, "")
	want(t, hs.call("POST", "/wx/decrypt", withSig(strings.Repeat("0", 40)), "token", access), 400, CodeInvalidRequest)
	other, _, _ := wechat.EncryptOpenData(key, []byte(`{"watermark":{"appid":"wxother","timestamp":1}}`))
	for _, body := range []string{
		`{"encrypted_data":"` + other + `","iv":"` + iv + `"}`,
		`{"encrypted_data":"!!!","iv":"` + iv + `"}`,
		`{"encrypted_data":"` + ed + `","iv":"c2hvcnQ="}`,
		`{"encrypted_data":"` + ed[:len(ed)-8] + `","iv":"` + iv + `"}`,
		`{"iv":"` + iv + `"}`,
	} {
		want(t, hs.call("POST", "/wx/decrypt", body, "token", access), 400, CodeInvalidRequest)
	}
}

func TestStripHeaders(t *testing.T) {
	hs := newHarness(t)
	hdr := http.Header{
		"X-Wechat-User-Id":  {"1"},
		"X_wechat_openid":   {"o"},
		"x-WECHAT-anything": {"a"},
		"X-Wechatty":        {"keep"},
		"X-Other":           {"keep"},
		"X-We":              {"keep"},
	}
	hs.h.stripHeaders(hdr)
	if len(hdr) != 3 || hdr.Get("X-Wechatty") != "keep" || hdr.Get("X-Other") != "keep" || hdr.Get("X-We") != "keep" {
		t.Fatalf("after strip: %v", hdr)
	}
}

func TestFindToken(t *testing.T) {
	hs := newHarness(t)
	cases := []struct {
		name    string
		sources []TokenSource
		setup   func(r *http.Request)
		want    string
	}{
		{"bearer", nil, func(r *http.Request) { r.Header.Set("Authorization", "Bearer abc") }, "abc"},
		{"bearer lower-case scheme", nil, func(r *http.Request) { r.Header.Set("Authorization", "bearer abc") }, "abc"},
		{"basic is not a token", nil, func(r *http.Request) { r.Header.Set("Authorization", "Basic abc") }, ""},
		{"token header", nil, func(r *http.Request) { r.Header.Set("token", "abc") }, "abc"},
		{"token header with scheme", nil, func(r *http.Request) { r.Header.Set("token", "Bearer abc") }, "abc"},
		{"bearer wins", nil, func(r *http.Request) { r.Header.Set("token", "t"); r.Header.Set("Authorization", "Bearer b") }, "b"},
		{"cookie", []TokenSource{{From: SourceCookie, Name: "tk"}}, func(r *http.Request) { r.AddCookie(&http.Cookie{Name: "tk", Value: "c"}) }, "c"},
		{"query", []TokenSource{{From: SourceQuery, Name: "access_token"}}, func(r *http.Request) { r.URL.RawQuery = "access_token=q" }, "q"},
		{"custom header", []TokenSource{{From: SourceHeader, Name: "X-Token"}}, func(r *http.Request) { r.Header.Set("X-Token", "h") }, "h"},
		{"nothing", nil, func(*http.Request) {}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := hs.h
			if c.sources != nil {
				cfg := hs.h.cfg
				cfg.Sources = c.sources
				var err error
				if h, err = New(cfg); err != nil {
					t.Fatal(err)
				}
			}
			r := httptest.NewRequest("GET", "/", nil)
			c.setup(r)
			if got := h.findToken(r); got != c.want {
				t.Fatalf("got %q, want %q", got, c.want)
			}
		})
	}
}

func TestDecodeBody(t *testing.T) {
	type body struct {
		Code   string   `json:"code"`
		Gender *flexInt `json:"gender"`
		All    flexBool `json:"all"`
	}
	cases := []struct {
		name, ct, in string
		strict       bool
		status       int
		wantCode     string
	}{
		{"json", "application/json", `{"code":"c","gender":1,"all":true}`, true, 0, "c"},
		{"json charset", "application/json; charset=utf-8", `{"code":"c"}`, true, 0, "c"},
		{"form", "application/x-www-form-urlencoded", `code=c&gender=2&all=1`, true, 0, "c"},
		{"no type but json", "", `{"code":"c"}`, true, 0, "c"},
		{"string gender", "application/json", `{"code":"c","gender":"1"}`, true, 0, "c"},
		{"bad gender", "application/json", `{"gender":"x"}`, true, 400, ""},
		{"unknown strict", "application/json", `{"zzz":1}`, true, 400, ""},
		{"unknown lax", "application/json", `{"zzz":1,"code":"c"}`, false, 0, "c"},
		{"trailing data", "application/json", `{"code":"c"}{"code":"d"}`, true, 400, ""},
		{"array", "application/json", `[]`, true, 400, ""},
		{"wrong type", "application/json", `{"code":5}`, true, 400, ""},
		{"xml", "application/xml", `<a/>`, true, 415, ""},
		{"bad content type", "a/b/c;;", `{}`, true, 415, ""},
		{"repeated form field", "application/x-www-form-urlencoded", `code=a&code=b`, true, 400, ""},
		{"empty", "application/json", ``, true, 400, ""},
		{"too large", "application/json", `{"code":"` + strings.Repeat("x", MaxBodySize) + `"}`, true, 413, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/", strings.NewReader(c.in))
			if c.ct != "" {
				r.Header.Set("Content-Type", c.ct)
			}
			var b body
			e := decodeBody(httptest.NewRecorder(), r, &b, c.strict, false)
			if c.status == 0 {
				if e != nil {
					t.Fatalf("unexpected error %v", e)
				}
				if b.Code != c.wantCode {
					t.Fatalf("code %q", b.Code)
				}
				return
			}
			if e == nil || e.Status != c.status {
				t.Fatalf("want status %d, got %v", c.status, e)
			}
			if strings.Contains(e.Message, "xxxx") {
				t.Fatalf("message echoes the input: %q", e.Message)
			}
		})
	}
}

func TestSealer(t *testing.T) {
	s, err := NewSealer("secret")
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := s.Seal("app", "sid", []byte("session-key-1234"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(sealed), "session-key-1234") {
		t.Fatal("not encrypted")
	}
	if pt, err := s.Open("app", "sid", sealed); err != nil || string(pt) != "session-key-1234" {
		t.Fatalf("open: %q %v", pt, err)
	}
	if _, err := s.Open("app", "other-sid", sealed); err == nil {
		t.Fatal("opened under another session")
	}
	other, _ := NewSealer("other-secret")
	if _, err := other.Open("app", "sid", sealed); err == nil {
		t.Fatal("opened under another secret")
	}
	if _, err := s.Open("app", "sid", []byte("short")); err == nil {
		t.Fatal("opened garbage")
	}
}

func TestLinkUnionID(t *testing.T) {
	for _, link := range []bool{false, true} {
		t.Run(fmt.Sprintf("link=%v", link), func(t *testing.T) {
			hs := newHarness(t)
			cfg := hs.h.cfg
			cfg.LinkUnionID = link
			h, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			hs.h = h
			loginAs := func(code, openid string) result {
				hs.wx.addCode(code, openid, "u_same_person")
				r := hs.call("POST", "/wx/login", `{"code":"`+code+`"}`)
				want(t, r, 200, "")
				return r
			}
			first := loginAs("c1", "o_first")
			second := loginAs("c2", "o_second")
			sameUser := second.body["user_id"] == first.body["user_id"]
			if sameUser != link || second.body["new_user"] == link {
				t.Fatalf("link_unionid=%v: first %s, second %s", link, first.raw, second.raw)
			}
			// The token carries the unionid either way.
			r := hs.guard(second.body["token"].(string))
			want(t, r, 200, "")
		})
	}
}

func TestRevocationsAllocationFree(t *testing.T) {
	revs := NewRevocations()
	revs.Add("revoked", time.Now().Add(time.Hour))
	live := "live-session"
	if n := testing.AllocsPerRun(100, func() {
		if revs.Revoked(live) || !revs.Revoked("revoked") {
			t.Fatal("wrong answer")
		}
	}); n != 0 {
		t.Fatalf("Revoked allocates %v times", n)
	}
}

func TestLoginRateLimit(t *testing.T) {
	hs := newHarness(t)
	cfg := hs.h.cfg
	cfg.LoginLimit = NewRateLimiter(2, time.Minute)
	h, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	hs.h = h
	hs.login("o1")
	hs.login("o1")
	hs.wx.addCode("c-limited", "o1", "")
	r := hs.call("POST", "/wx/login", `{"code":"c-limited"}`)
	want(t, r, 429, CodeRateLimited)
	if r.header.Get("Retry-After") != "30" {
		t.Fatalf("Retry-After %q", r.header.Get("Retry-After"))
	}
	// The refused attempt did not spend the code at WeChat.
	hs.clock.Advance(30 * time.Second)
	want(t, hs.call("POST", "/wx/login", `{"code":"c-limited"}`), 200, "")
	// Other clients are not limited.
	hs.wx.addCode("c-other", "o2", "")
	hs.clock.Advance(time.Second)
	want(t, hs.call("POST", "/wx/login", `{"code":"c-other"}`), 429, CodeRateLimited) // same RemoteAddr in httptest
	req := httptest.NewRequest("POST", "/wx/login", strings.NewReader(`{"code":"c-other"}`))
	req.RemoteAddr = "203.0.113.9:4567"
	req.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	hs.h.Serve(w, req)
	if w.Code != 200 {
		t.Fatalf("another client: %d %s", w.Code, w.Body)
	}
}
