package wechatauth

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// stripRequest is a request with the raw header names in hdr (kept as
// written, underscores included) and a Caddy vars map holding marks.
func stripRequest(hdr map[string]string, marks ...string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "/other", nil)
	for k, v := range hdr {
		r.Header[k] = []string{v}
	}
	vars := map[string]any{}
	for _, m := range marks {
		vars[guardMark(m)] = true
	}
	return r.WithContext(context.WithValue(r.Context(), caddyhttp.VarsCtxKey, vars))
}

func TestStripServeHTTP(t *testing.T) {
	hdr := map[string]string{
		"X-Wechat-User-Id": "1",
		"X_WeChat_User_ID": "1",
		"X.WeChat.OpenID":  "o",
		"x-wechat-role":    "admin",
		"X-WECHAT-":        "bare prefix",
		"X-Auth-User-Id":   "2",
		"X_Auth_OpenID":    "o",
		"X-Wechat":         "no dash: not the prefix",
		"X-Other":          "kept",
	}
	tests := []struct {
		name   string
		prefix string
		marks  []string // folded prefixes of wechat_auth handlers that served the request
		want   []string // header names left
	}{
		{
			name: "default prefix, both spellings",
			want: []string{"X-Auth-User-Id", "X_Auth_OpenID", "X-Wechat", "X-Other"},
		},
		{
			name:   "custom prefix",
			prefix: "X-Auth-",
			want:   []string{"X-Wechat-User-Id", "X_WeChat_User_ID", "X.WeChat.OpenID", "x-wechat-role", "X-WECHAT-", "X-Wechat", "X-Other"},
		},
		{
			name:   "prefix given with an underscore",
			prefix: "x_auth_",
			want:   []string{"X-Wechat-User-Id", "X_WeChat_User_ID", "X.WeChat.OpenID", "x-wechat-role", "X-WECHAT-", "X-Wechat", "X-Other"},
		},
		{
			// A wechat_auth handler with prefix X-Auth- served the request:
			// what carries X-Auth- now is its own.
			name:   "headers of a handler that ran stay",
			prefix: "X-",
			marks:  []string{"x-auth-"},
			want:   []string{"X-Auth-User-Id", "X_Auth_OpenID"},
		},
		{
			name:  "a mark of another prefix changes nothing",
			marks: []string{"x-auth-"},
			want:  []string{"X-Auth-User-Id", "X_Auth_OpenID", "X-Wechat", "X-Other"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &Strip{HeaderPrefix: tt.prefix}
			if err := s.Provision(caddy.Context{}); err != nil {
				t.Fatal(err)
			}
			r := stripRequest(hdr, tt.marks...)
			called := false
			next := caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error {
				called = true
				return nil
			})
			if err := s.ServeHTTP(httptest.NewRecorder(), r, next); err != nil || !called {
				t.Fatalf("ServeHTTP: err %v, next called %v", err, called)
			}
			var got []string
			for k := range r.Header {
				got = append(got, k)
			}
			slices.Sort(got)
			want := slices.Clone(tt.want)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Fatalf("headers left: want %v, got %v", want, got)
			}
		})
	}
}

func TestStripConfig(t *testing.T) {
	t.Setenv("WECHAT_AUTH_TEST_PREFIX", "X-Env-")
	for _, tt := range []struct {
		prefix, wantErr, wantFolded string
	}{
		{prefix: "", wantFolded: "x-wechat-"},
		{prefix: "{env.WECHAT_AUTH_TEST_PREFIX}", wantFolded: "x-env-"},
		{prefix: "X Bad", wantErr: "not a header name prefix"},
		{prefix: "X-Bad:", wantErr: "not a header name prefix"},
		{prefix: "{env.WECHAT_AUTH_TEST_UNSET}", wantErr: "not a header name prefix"},
	} {
		s := &Strip{HeaderPrefix: tt.prefix}
		err := s.Validate()
		if err == nil {
			err = s.Provision(caddy.Context{})
		}
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("%q: %v", tt.prefix, err)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("%q: want error %q, got %v", tt.prefix, tt.wantErr, err)
		case tt.wantErr == "" && s.prefix != tt.wantFolded:
			t.Errorf("%q: folded to %q, want %q", tt.prefix, s.prefix, tt.wantFolded)
		}
	}
}

// BenchmarkStrip is the cost the strip step adds to a request without
// identity headers (the common case) and with one forged header.
func BenchmarkStrip(b *testing.B) {
	s := &Strip{}
	if err := s.Provision(caddy.Context{}); err != nil {
		b.Fatal(err)
	}
	clean := map[string]string{"Accept": "*/*", "User-Agent": "bench", "Authorization": "Bearer x", "Accept-Encoding": "gzip"}
	b.Run("clean", func(b *testing.B) {
		r := stripRequest(clean)
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			stripIdentityHeaders(r, s.prefix)
		}
	})
	b.Run("forged", func(b *testing.B) {
		r := stripRequest(clean)
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			r.Header["X-Wechat-User-Id"] = nil
			stripIdentityHeaders(r, s.prefix)
		}
	})
}

// TestGuardMarkAllocations: the request variable a wechat_auth handler
// sets for the strip step costs no allocation on a request as Caddy's
// server makes it (a vars map that already holds two entries).
func TestGuardMarkAllocations(t *testing.T) {
	mark := guardMark("x-wechat-")
	var sink map[string]any
	newVars := func() map[string]any {
		return map[string]any{caddyhttp.TrustedProxyVarKey: false, caddyhttp.ClientIPVarKey: "127.0.0.1"}
	}
	base := testing.AllocsPerRun(200, func() { sink = newVars() })
	with := testing.AllocsPerRun(200, func() {
		sink = newVars()
		ctx := context.WithValue(context.Background(), caddyhttp.VarsCtxKey, sink)
		caddyhttp.SetVar(ctx, mark, true)
	})
	t.Logf("allocations: vars map %.0f, with the context and the mark %.0f", base, with)
	// context.WithValue itself allocates once.
	if extra := with - base - 1; extra > 0 {
		t.Fatalf("setting the mark allocates %.0f times per request", extra)
	}
	if sink[mark] != true {
		t.Fatal("the mark was not set")
	}
}
