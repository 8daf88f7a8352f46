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

// TestStripValidate: Validate alone refuses a prefix or cookie name that
// can never work, and leaves those with placeholders to Provision.
func TestStripValidate(t *testing.T) {
	for _, tt := range []struct {
		s       Strip
		wantErr string
	}{
		{s: Strip{}},
		{s: Strip{HeaderPrefix: "X-Auth-"}},
		{s: Strip{HeaderPrefix: "X_Auth_", Cookie: "wa"}},
		{s: Strip{HeaderPrefix: "{env.PREFIX}", Cookie: "{env.COOKIE}"}},
		{s: Strip{HeaderPrefix: "X Bad"}, wantErr: "header_prefix"},
		{s: Strip{HeaderPrefix: "X-Bad:"}, wantErr: "header_prefix"},
		{s: Strip{Cookie: "wa;x"}, wantErr: "not a cookie name"},
		{s: Strip{Cookie: "w a"}, wantErr: "not a cookie name"},
	} {
		err := tt.s.Validate()
		if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
			t.Errorf("Validate(%+v) = %v, want error %q", tt.s, err, tt.wantErr)
		}
	}
	t.Setenv("WECHAT_AUTH_TEST_COOKIE", "w;a")
	s := &Strip{Cookie: "{env.WECHAT_AUTH_TEST_COOKIE}"}
	if err := s.Provision(caddy.Context{}); err == nil || !strings.Contains(err.Error(), "not a cookie name") {
		t.Errorf("Provision with a cookie placeholder resolving to %q: %v", "w;a", err)
	}
}

// serveStrip provisions s and runs r through it, returning the Cookie
// header values next saw.
func serveStrip(t *testing.T, s *Strip, r *http.Request) []string {
	t.Helper()
	if s.prefix == "" {
		if err := s.Provision(caddy.Context{}); err != nil {
			t.Fatal(err)
		}
	}
	var seen []string
	next := caddyhttp.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) error {
		seen = slices.Clone(r.Header["Cookie"])
		return nil
	})
	if err := s.ServeHTTP(httptest.NewRecorder(), r, next); err != nil {
		t.Fatal(err)
	}
	return seen
}

// TestStripCookies: with a cookie name the strip step takes that web
// block's three cookies off every request before the upstream, keeps every
// other cookie, and hands the taken ones to the wechat_auth handler of that
// name (once); without one it leaves every cookie alone.
func TestStripCookies(t *testing.T) {
	const key = cookieStashPrefix + "wa"
	cookies := []string{"a=1; wa=tok; wa_refresh=ref", "wa_state=st; b=2", "wax=3"}
	withCookies := func() *http.Request {
		r := stripRequest(nil)
		r.Header["Cookie"] = slices.Clone(cookies)
		return r
	}

	r := withCookies()
	seen := serveStrip(t, &Strip{Cookie: "wa"}, r)
	if want := []string{"a=1", "b=2", "wax=3"}; !slices.Equal(seen, want) {
		t.Fatalf("next saw cookies %q, want %q", seen, want)
	}
	if got, _ := caddyhttp.GetVar(r.Context(), key).(string); got != "wa=tok; wa_refresh=ref; wa_state=st" {
		t.Fatalf("stashed %q", got)
	}
	// The handler gets them back once, beside the others.
	unstashCookies(r, key)
	if want := []string{"a=1", "b=2", "wax=3", "wa=tok; wa_refresh=ref; wa_state=st"}; !slices.Equal(r.Header["Cookie"], want) {
		t.Fatalf("after unstash: %q, want %q", r.Header["Cookie"], want)
	}
	unstashCookies(r, key)
	if len(r.Header["Cookie"]) != 4 {
		t.Fatalf("a second unstash added cookies again: %q", r.Header["Cookie"])
	}

	// A second strip step of the same name, after something put a web
	// cookie back, keeps both in the order they were taken.
	r = withCookies()
	s := &Strip{Cookie: "wa"}
	serveStrip(t, s, r)
	r.Header.Add("Cookie", "wa=second")
	if seen := serveStrip(t, s, r); !slices.Equal(seen, []string{"a=1", "b=2", "wax=3"}) {
		t.Fatalf("second step: next saw %q", seen)
	}
	if got, _ := caddyhttp.GetVar(r.Context(), key).(string); got != "wa=tok; wa_refresh=ref; wa_state=st; wa=second" {
		t.Fatalf("stashed after two steps: %q", got)
	}

	// Without web cookies nothing is stashed and unstash adds nothing.
	r = stripRequest(nil)
	r.Header["Cookie"] = []string{"a=1"}
	serveStrip(t, &Strip{Cookie: "wa"}, r)
	unstashCookies(r, key)
	if !slices.Equal(r.Header["Cookie"], []string{"a=1"}) {
		t.Fatalf("no web cookies: %q", r.Header["Cookie"])
	}

	// Without a cookie name every cookie stays, even ones whose names are
	// the suffixes of the web block's cookies.
	r = stripRequest(nil)
	r.Header["Cookie"] = []string{"=x; _refresh=r; _state=s; wa=tok"}
	if seen := serveStrip(t, &Strip{}, r); !slices.Equal(seen, []string{"=x; _refresh=r; _state=s; wa=tok"}) {
		t.Fatalf("strip without a cookie name changed the cookies to %q", seen)
	}
}
