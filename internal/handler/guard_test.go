package handler

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/wxauth/caddy-wechat-auth/internal/token"
)

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

func TestRevocationsAllocationFree(t *testing.T) {
	revs := NewRevocations()
	revs.Widen(time.Hour)
	revs.Add("revoked", time.Now(), time.Now())
	live := "live-session"
	if n := testing.AllocsPerRun(100, func() {
		if revs.Revoked(live) || !revs.Revoked("revoked") {
			t.Fatal("wrong answer")
		}
	}); n != 0 {
		t.Fatalf("Revoked allocates %v times", n)
	}
}

// issueWith signs a token with the harness's key through another token
// service, so that its claims can differ from what the handler issues.
func (hs *harness) issueWith(accessTTL time.Duration, sub token.Subject) string {
	hs.t.Helper()
	key, err := token.NewHMACKey([]byte(testSigningKey), "")
	if err != nil {
		hs.t.Fatal(err)
	}
	svc, err := token.New(token.Config{
		Keys: []*token.Key{key}, Issuer: DefaultIssuer, Audience: testApp,
		AccessTTL: accessTTL, Leeway: 30 * time.Second, Now: hs.clock.Now,
	})
	if err != nil {
		hs.t.Fatal(err)
	}
	tok, _, err := svc.Issue(sub, "jti-"+sub.SessionID, hs.clock.Now())
	if err != nil {
		hs.t.Fatal(err)
	}
	return tok
}

// TestGuardClaimChecks: tokens whose signature, issuer and audience are
// right are still refused when they are for another app or live longer
// than access_ttl; the same token with the right claims passes, so each
// case fails only for the claim it names.
func TestGuardClaimChecks(t *testing.T) {
	hs := newHarness(t)
	sub := token.Subject{UserID: 1, SessionID: "sid-claims", OpenID: "o1", AppID: testApp}
	other := sub
	other.AppID = "wxanother00000001"
	tests := []struct {
		name string
		tok  string
		want int
	}{
		{"this app, access_ttl", hs.issueWith(15*time.Minute, sub), 200},
		{"another app", hs.issueWith(15*time.Minute, other), 401},
		{"lifetime one second over access_ttl", hs.issueWith(15*time.Minute+time.Second, sub), 401},
		{"lifetime of a day", hs.issueWith(24*time.Hour, sub), 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := hs.guard(tt.tok)
			if tt.want == 200 {
				want(t, r, 200, "")
				return
			}
			want(t, r, 401, CodeInvalidToken)
			if r.header.Get("WWW-Authenticate") != `Bearer error="invalid_token"` {
				t.Fatalf("challenge %q", r.header.Get("WWW-Authenticate"))
			}
		})
	}
}

// TestGuardResults: Serve's result for each kind of request, and which
// ones reach the next handler.
func TestGuardResults(t *testing.T) {
	hs := newHarness(t)
	expired := hs.issueWith(15*time.Minute, token.Subject{UserID: 1, SessionID: "sid-old", OpenID: "o1", AppID: testApp})
	hs.clock.Advance(16 * time.Minute)
	fresh, _ := hs.login("o1")
	revoked, _ := hs.login("o2")
	want(t, hs.call("POST", "/wx/logout", "", "Authorization", "Bearer "+revoked), 200, "")

	optional := *hs
	cfg := hs.h.cfg
	cfg.Optional = true
	h, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	optional.h = h

	tests := []struct {
		name   string
		hs     *harness
		method string
		path   string
		hdr    []string
		want   Result
	}{
		{"valid", hs, "GET", "/x", []string{"Authorization", "Bearer " + fresh}, ResultOK},
		{"missing", hs, "GET", "/x", nil, ResultMissing},
		{"invalid", hs, "GET", "/x", []string{"Authorization", "Bearer a.b.c"}, ResultInvalid},
		{"expired", hs, "GET", "/x", []string{"Authorization", "Bearer " + expired}, ResultExpired},
		{"revoked", hs, "GET", "/x", []string{"Authorization", "Bearer " + revoked}, ResultRevoked},
		{"endpoint", hs, "GET", "/wx/profile", nil, ResultEndpoint},
		{"preflight", hs, "OPTIONS", "/x", []string{"Access-Control-Request-Method", "POST"}, ResultPreflight},
		{"options without preflight header", hs, "OPTIONS", "/x", nil, ResultMissing},
		{"anonymous", &optional, "GET", "/x", nil, ResultAnonymous},
		{"optional still refuses a bad token", &optional, "GET", "/x", []string{"Authorization", "Bearer a.b.c"}, ResultInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(tt.method, tt.path, nil)
			for i := 0; i+1 < len(tt.hdr); i += 2 {
				r.Header.Set(tt.hdr[i], tt.hdr[i+1])
			}
			r.Header.Set("X-WeChat-User-ID", "999")
			w := httptest.NewRecorder()
			got, c, err := tt.hs.h.Serve(w, r)
			if err != nil {
				t.Fatalf("error without CaddyErrors: %v", err)
			}
			if got != tt.want {
				t.Fatalf("result %v, want %v", got, tt.want)
			}
			if (c != nil) != (got == ResultOK) {
				t.Fatalf("claims %v with result %v", c, got)
			}
			if uid := r.Header.Get("X-WeChat-User-ID"); (got == ResultOK) != (uid != "") || uid == "999" {
				t.Fatalf("identity header %q with result %v", uid, got)
			}
			wrote := w.Body.Len() > 0
			if got.Next() == wrote {
				t.Fatalf("result %v: next=%v but wrote %q", got, got.Next(), w.Body.String())
			}
		})
	}
}

// TestGuardCaddyErrors: with CaddyErrors a guard failure is returned with
// the challenge header set and nothing written.
func TestGuardCaddyErrors(t *testing.T) {
	hs := newHarness(t)
	cfg := hs.h.cfg
	cfg.CaddyErrors = true
	h, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		auth, challenge string
		want            Result
	}{
		{"", `Bearer realm="wechat_auth"`, ResultMissing},
		{"Bearer a.b.c", `Bearer error="invalid_token"`, ResultInvalid},
	} {
		r := httptest.NewRequest("GET", "/x", nil)
		if tc.auth != "" {
			r.Header.Set("Authorization", tc.auth)
		}
		w := httptest.NewRecorder()
		res, _, err := h.Serve(w, r)
		var e *Error
		if res != tc.want || !errors.As(err, &e) || e.Status != 401 || e.Code != CodeInvalidToken {
			t.Fatalf("%q: result %v, error %v", tc.auth, res, err)
		}
		if w.Body.Len() != 0 || w.Header().Get("WWW-Authenticate") != tc.challenge {
			t.Fatalf("%q: wrote %q, challenge %q", tc.auth, w.Body.String(), w.Header().Get("WWW-Authenticate"))
		}
	}
}

// TestGuardIdentity: a token's identity, unionid included, reaches the
// upstream's headers exactly as issued.
func TestGuardIdentity(t *testing.T) {
	hs := newHarness(t)
	hs.wx.addCode("c-union", "o_union", "u_union")
	lr := hs.call("POST", "/wx/login", `{"code":"c-union"}`)
	want(t, lr, 200, "")
	r := httptest.NewRequest("GET", "/x", nil)
	r.Header.Set("Authorization", "Bearer "+lr.body["token"].(string))
	res, c, _ := hs.h.Serve(httptest.NewRecorder(), r)
	if res != ResultOK {
		t.Fatalf("result %v", res)
	}
	if c.UnionID != "u_union" || c.OpenID != "o_union" || c.AppID != testApp || c.Subject != "1" {
		t.Fatalf("claims %+v", c)
	}
	for h, v := range map[string]string{"X-Wechat-User-Id": "1", "X-Wechat-Openid": "o_union", "X-Wechat-Unionid": "u_union", "X-Wechat-Appid": testApp} {
		if got := r.Header.Values(h); len(got) != 1 || got[0] != v {
			t.Errorf("%s = %q, want %q", h, got, v)
		}
	}
	// Without a unionid no UnionID header is set.
	access, _ := hs.login("o_plain")
	r = httptest.NewRequest("GET", "/x", nil)
	r.Header.Set("Authorization", "Bearer "+access)
	r.Header.Set("X-WeChat-UnionID", "spoofed")
	if res, _, _ := hs.h.Serve(httptest.NewRecorder(), r); res != ResultOK || r.Header.Get("X-WeChat-UnionID") != "" {
		t.Fatalf("result %v, unionid header %q", res, r.Header.Get("X-WeChat-UnionID"))
	}
}
