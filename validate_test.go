package wechatauth

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// TestValidateSecurityBounds: the bounds that keep tokens inside what the
// revocation list covers and keep the login limit meaningful, each at its
// exact edge.
func TestValidateSecurityBounds(t *testing.T) {
	tests := []struct {
		name string
		mod  func(m *WeChatAuth)
		ok   bool
	}{
		{"defaults", func(*WeChatAuth) {}, true},
		{"access_ttl 24h", func(m *WeChatAuth) { m.AccessTTL = dur(24 * time.Hour) }, true},
		{"access_ttl 24h+1ns", func(m *WeChatAuth) { m.AccessTTL = dur(24*time.Hour + 1) }, false},
		{"access_ttl negative", func(m *WeChatAuth) { m.AccessTTL = dur(-1) }, false},
		{"leeway 0", func(m *WeChatAuth) { l := dur(0); m.Leeway = &l }, true},
		{"leeway 5m", func(m *WeChatAuth) { l := dur(5 * time.Minute); m.Leeway = &l }, true},
		{"leeway 5m+1ns", func(m *WeChatAuth) { l := dur(5*time.Minute + 1); m.Leeway = &l }, false},
		{"leeway negative", func(m *WeChatAuth) { l := dur(-1); m.Leeway = &l }, false},
		{"timeout negative", func(m *WeChatAuth) { m.Timeout = dur(-1) }, false},
		{"refresh_ttl negative", func(m *WeChatAuth) { m.RefreshTTL = dur(-1) }, false},
		// refresh_ttl at least access_ttl + leeway, defaults counted.
		{"refresh_ttl = default access_ttl + leeway", func(m *WeChatAuth) { m.RefreshTTL = dur(15*time.Minute + 30*time.Second) }, true},
		{"refresh_ttl 1ns under default access_ttl + leeway", func(m *WeChatAuth) { m.RefreshTTL = dur(15*time.Minute + 30*time.Second - 1) }, false},
		{"refresh_ttl = access_ttl + leeway", func(m *WeChatAuth) {
			l := dur(time.Minute)
			m.AccessTTL, m.RefreshTTL, m.Leeway = dur(time.Hour), dur(time.Hour+time.Minute), &l
		}, true},
		{"refresh_ttl 1ns under access_ttl + leeway", func(m *WeChatAuth) {
			l := dur(time.Minute)
			m.AccessTTL, m.RefreshTTL, m.Leeway = dur(time.Hour), dur(time.Hour+time.Minute-1), &l
		}, false},
		{"refresh_ttl = access_ttl, leeway 0", func(m *WeChatAuth) {
			l := dur(0)
			m.AccessTTL, m.RefreshTTL, m.Leeway = dur(time.Hour), dur(time.Hour), &l
		}, true},
		{"refresh_ttl under access_ttl", func(m *WeChatAuth) { m.AccessTTL, m.RefreshTTL = dur(24*time.Hour), dur(time.Hour) }, false},
		{"refresh_ttl default with access_ttl 24h", func(m *WeChatAuth) { m.AccessTTL = dur(24 * time.Hour) }, true},
		{"login limit 1 per 1ns", func(m *WeChatAuth) { m.LoginRateLimit = &LoginRateLimit{Requests: 1, Window: dur(1)} }, true},
		{"login limit 0 requests", func(m *WeChatAuth) { m.LoginRateLimit = &LoginRateLimit{Requests: 0, Window: dur(time.Minute)} }, false},
		{"login limit zero window", func(m *WeChatAuth) { m.LoginRateLimit = &LoginRateLimit{Requests: 5, Window: 0} }, false},
		{"signing key of 32 bytes", func(m *WeChatAuth) { m.SigningKey = strings.Repeat("k", 32) }, true},
		{"signing key of 31 bytes", func(m *WeChatAuth) { m.SigningKey = strings.Repeat("k", 31) }, false},
		{"signing key and file", func(m *WeChatAuth) {
			m.SigningKey = strings.Repeat("k", 32)
			m.SigningKeyFiles = []KeyFile{{Path: "k.pem"}}
		}, false},
		{"errors caddy", func(m *WeChatAuth) { m.Errors = "caddy" }, true},
		{"errors other", func(m *WeChatAuth) { m.Errors = "html" }, false},
		{"relative path", func(m *WeChatAuth) { m.LoginPath = "wx/login" }, false},
		{"header prefix with a colon", func(m *WeChatAuth) { m.HeaderPrefix = "X-A:" }, false},
		{"no app secret", func(m *WeChatAuth) { m.AppSecret = "" }, false},
		{"no app id", func(m *WeChatAuth) { m.AppID = "" }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := WeChatAuth{AppID: "wx1", AppSecret: "s"}
			tt.mod(&m)
			m.applyDefaults()
			if err := m.Validate(); (err == nil) != tt.ok {
				t.Fatalf("Validate() = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

// TestClientIP: the login limit counts against the client address Caddy
// determined (honouring trusted_proxies), else the connection's peer
// without its port.
func TestClientIP(t *testing.T) {
	tests := []struct {
		name   string
		vars   map[string]any // nil: no Caddy vars on the request
		remote string
		want   string
	}{
		{"caddy's client ip", map[string]any{caddyhttp.ClientIPVarKey: "203.0.113.9"}, "10.0.0.1:5000", "203.0.113.9"},
		{"empty client ip", map[string]any{caddyhttp.ClientIPVarKey: ""}, "10.0.0.1:5000", "10.0.0.1"},
		{"not a string", map[string]any{caddyhttp.ClientIPVarKey: 7}, "10.0.0.1:5000", "10.0.0.1"},
		{"no vars", nil, "[2001:db8::1]:443", "2001:db8::1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/wx/login", nil)
			r.RemoteAddr = tt.remote
			if tt.vars != nil {
				r = r.WithContext(context.WithValue(r.Context(), caddyhttp.VarsCtxKey, tt.vars))
			}
			if got := clientIP(r); got != tt.want {
				t.Fatalf("clientIP = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestServeHTTPPassesOnlyDecidedRequests: next runs for a valid token or a
// preflight, never for a missing or bad token; with `errors caddy` a guard
// failure is returned as a 401 caddyhttp.Error, with the challenge set.
func TestServeHTTPPassesOnlyDecidedRequests(t *testing.T) {
	for _, errorsMode := range []string{"json", "caddy"} {
		t.Run(errorsMode, func(t *testing.T) {
			ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
			t.Cleanup(cancel)
			m := &WeChatAuth{
				AppID: "wxserve", AppSecret: "serve-secret", DB: t.TempDir() + "/serve.db",
				APIBase:    "http://127.0.0.1:1",
				SigningKey: "serve-test-signing-key-0123456789abcdef",
				Errors:     errorsMode,
			}
			if err := m.Provision(ctx); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = m.Cleanup() })

			serve := func(r *http.Request) (called bool, w *httptest.ResponseRecorder, err error) {
				w = httptest.NewRecorder()
				next := caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { called = true; return nil })
				err = m.ServeHTTP(w, r, next)
				return called, w, err
			}
			for _, bad := range []string{"", "Bearer a.b.c"} {
				r := httptest.NewRequest("GET", "/api", nil)
				if bad != "" {
					r.Header.Set("Authorization", bad)
				}
				called, w, err := serve(r)
				if called {
					t.Fatalf("%q: next ran", bad)
				}
				if errorsMode == "caddy" {
					var he caddyhttp.HandlerError
					if !errors.As(err, &he) || he.StatusCode != 401 || w.Header().Get("WWW-Authenticate") == "" {
						t.Fatalf("%q: err %v, challenge %q", bad, err, w.Header().Get("WWW-Authenticate"))
					}
				} else if err != nil || w.Code != 401 {
					t.Fatalf("%q: err %v, status %d", bad, err, w.Code)
				}
			}
			r := httptest.NewRequest("OPTIONS", "/api", nil)
			r.Header.Set("Access-Control-Request-Method", "GET")
			if called, _, err := serve(r); !called || err != nil {
				t.Fatalf("preflight: next ran %v, err %v", called, err)
			}
		})
	}
}

// TestCleanupReleasesSharedState: Cleanup lets go of the shared database
// and the shared login limiter, so the last config using them closes them;
// a second Cleanup is harmless.
func TestCleanupReleasesSharedState(t *testing.T) {
	m := provisionLimited(t, t.TempDir()+"/cleanup.db", 2)
	dbKey, limitKey := m.dbKey, m.limitKey
	if refs, ok := storePool.References(dbKey); !ok || refs != 1 {
		t.Fatalf("store references = %d, %v; want 1", refs, ok)
	}
	if err := m.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if refs, ok := storePool.References(dbKey); ok || refs != 0 {
		t.Fatalf("store still pooled with %d references", refs)
	}
	if refs, ok := limiterPool.References(limitKey); ok || refs != 0 {
		t.Fatalf("limiter still pooled with %d references", refs)
	}
	if err := m.Cleanup(); err != nil {
		t.Fatalf("second Cleanup: %v", err)
	}
}
