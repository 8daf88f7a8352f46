package handler

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wxauth/caddy-wechat-auth/internal/testclock"
	"github.com/wxauth/caddy-wechat-auth/internal/token"
	"github.com/wxauth/caddy-wechat-auth/internal/wechat"
	"github.com/wxauth/caddy-wechat-auth/store"
	"github.com/wxauth/caddy-wechat-auth/store/bolt"
)

const (
	testApp        = "wxtest00000000001"
	testSigningKey = "handler-test-signing-key-0123456789abcdef"
)

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
	return newHarnessTTL(t, st, clk, revs, 15*time.Minute, 30*time.Second)
}

// newHarnessTTL is newHarnessWith with access tokens living accessTTL,
// accepted with leeway.
func newHarnessTTL(t testing.TB, st store.Store, clk *testClock, revs *Revocations, accessTTL, leeway time.Duration) *harness {
	t.Helper()
	key, err := token.NewHMACKey([]byte(testSigningKey), "")
	if err != nil {
		t.Fatal(err)
	}
	tokens, err := token.New(token.Config{
		Keys: []*token.Key{key}, Issuer: "caddy-wechat-auth", Audience: testApp,
		AccessTTL: accessTTL, Leeway: leeway, Now: clk.Now,
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
