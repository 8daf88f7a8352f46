package wechatauth

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// provisionLimited provisions a handler of app wxlimit with the given
// login rate limit on db, as a config load does, and cleans it up at the
// end of the test unless the test does first.
func provisionLimited(t *testing.T, db string, requests int) *WeChatAuth {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	m := &WeChatAuth{
		AppID: "wxlimit", AppSecret: "limit-secret", DB: db,
		APIBase:        "http://127.0.0.1:1",
		SigningKey:     "limit-test-signing-key-0123456789abcdef",
		LoginRateLimit: &LoginRateLimit{Requests: requests, Window: caddy.Duration(time.Minute)},
	}
	if err := m.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Cleanup() })
	return m
}

// loginAttempt sends a login with an empty body from client: it spends a
// token of the client's bucket and answers 400, or 429 when there is none.
func loginAttempt(t *testing.T, m *WeChatAuth, client string) int {
	t.Helper()
	r := httptest.NewRequest("POST", "/wx/login", strings.NewReader(`{}`))
	r.Header.Set("Content-Type", "application/json")
	r.RemoteAddr = client
	w := httptest.NewRecorder()
	next := caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { return nil })
	if err := m.ServeHTTP(w, r, next); err != nil {
		t.Fatal(err)
	}
	return w.Code
}

// TestLoginLimiterSurvivesReload provisions the same config twice, as a
// reload does (new config first, then the old one cleaned up): both share
// one limiter, whose state outlives the old config.
func TestLoginLimiterSurvivesReload(t *testing.T) {
	db := filepath.Join(t.TempDir(), "limit.db")
	old := provisionLimited(t, db, 2)
	if c := loginAttempt(t, old, "[2001:db8:7:7::1]:5000"); c != 400 {
		t.Fatalf("first attempt: %d", c)
	}
	if c := loginAttempt(t, old, "[2001:db8:7:7::2]:5000"); c != 400 { // same /64
		t.Fatalf("second attempt: %d", c)
	}

	reloaded := provisionLimited(t, db, 2)
	if reloaded.limitKey != old.limitKey {
		t.Fatal("the reloaded config has another limiter key")
	}
	if refs, ok := limiterPool.References(old.limitKey); !ok || refs != 2 {
		t.Fatalf("limiter references = %d, %v; want 2", refs, ok)
	}
	if err := old.Cleanup(); err != nil {
		t.Fatal(err)
	}
	// The /64 spent its two attempts before the reload: still limited.
	if c := loginAttempt(t, reloaded, "[2001:db8:7:7::3]:5000"); c != 429 {
		t.Fatalf("after the reload: %d, want 429", c)
	}
	if c := loginAttempt(t, reloaded, "192.0.2.10:5000"); c != 400 {
		t.Fatalf("another client after the reload: %d", c)
	}

	// Another limit is another limiter, with fresh state.
	other := provisionLimited(t, db, 3)
	if other.limitKey == reloaded.limitKey {
		t.Fatal("two limits share a limiter")
	}
	if c := loginAttempt(t, other, "[2001:db8:7:7::4]:5000"); c != 400 {
		t.Fatalf("another limit: %d", c)
	}

	// When the last user goes, the limiter (and its sweep) goes.
	key := reloaded.limitKey
	if err := reloaded.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if refs, ok := limiterPool.References(key); ok || refs != 0 {
		t.Fatalf("limiter still pooled with %d references", refs)
	}
}

func TestPooledLimiterDestructStopsSweep(t *testing.T) {
	l := &LoginRateLimit{Requests: 1, Window: caddy.Duration(time.Minute)}
	_, key, err := acquireLoginLimiter("wxdestruct", l, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	v, loaded := limiterPool.LoadOrStore(key, nil) // a second reference
	if !loaded {
		t.Fatal("limiter not pooled")
	}
	p := v.(*pooledLimiter)
	stopSweep, stops := p.stop, 0
	p.stop = func() { stops++; stopSweep() }
	if _, err := limiterPool.Delete(key); err != nil {
		t.Fatal(err)
	}
	if stops != 0 {
		t.Fatal("the sweep stopped while the limiter was still in use")
	}
	if _, err := limiterPool.Delete(key); err != nil { // the last reference
		t.Fatal(err)
	}
	if stops != 1 {
		t.Fatalf("the sweep was stopped %d times when the limiter went, want 1", stops)
	}
}
