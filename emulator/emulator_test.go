package emulator

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/wxauth/caddy-wechat-auth/internal/testclock"
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
