package wechat

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestNew(t *testing.T) {
	tests := []struct {
		name     string
		cfg      Config
		wantErr  string
		wantBase string
	}{
		{name: "defaults", cfg: Config{AppID: "wx1", AppSecret: "s"}, wantBase: DefaultBaseURL},
		{name: "trailing slash", cfg: Config{AppID: "wx1", AppSecret: "s", BaseURL: "http://127.0.0.1:9/"}, wantBase: "http://127.0.0.1:9"},
		{name: "path prefix", cfg: Config{AppID: "wx1", AppSecret: "s", BaseURL: "https://proxy.example/wx//"}, wantBase: "https://proxy.example/wx"},
		{name: "missing app id", cfg: Config{AppSecret: "s"}, wantErr: "app id is required"},
		{name: "blank app id", cfg: Config{AppID: "  ", AppSecret: "s"}, wantErr: "app id is required"},
		{name: "missing secret", cfg: Config{AppID: "wx1"}, wantErr: "app secret is required"},
		{name: "negative timeout", cfg: Config{AppID: "wx1", AppSecret: "s", Timeout: -time.Second}, wantErr: "negative"},
		{name: "bad scheme", cfg: Config{AppID: "wx1", AppSecret: "s", BaseURL: "ftp://x"}, wantErr: "must be an http(s) URL"},
		{name: "no host", cfg: Config{AppID: "wx1", AppSecret: "s", BaseURL: "http://"}, wantErr: "must be an http(s) URL"},
		{name: "query", cfg: Config{AppID: "wx1", AppSecret: "s", BaseURL: "http://h/?a=b"}, wantErr: "must be an http(s) URL"},
		{name: "unparsable", cfg: Config{AppID: "wx1", AppSecret: "s", BaseURL: "http://[::1"}, wantErr: "parsing base url"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := New(tt.cfg)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("New error = %v, want one containing %q", err, tt.wantErr)
				}
				if tt.cfg.AppSecret != "" && strings.Contains(err.Error(), tt.cfg.AppSecret+"\"") {
					t.Errorf("error %q quotes the secret", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			if c.base != tt.wantBase {
				t.Errorf("base = %q, want %q", c.base, tt.wantBase)
			}
			if c.timeout != DefaultTimeout {
				t.Errorf("timeout = %v, want %v", c.timeout, DefaultTimeout)
			}
			if c.hc == nil || c.hc == http.DefaultClient || c.hc.Transport == nil || c.hc.Transport == http.DefaultTransport {
				t.Errorf("default HTTP client is not a dedicated one")
			}
			if c.now == nil || c.log == nil {
				t.Errorf("clock or logger not defaulted")
			}
		})
	}
}

func TestAPIError(t *testing.T) {
	sentinels := []error{ErrInvalidCode, ErrUserBlocked, ErrRateLimited, ErrUnavailable, ErrBadResponse, ErrAPI, ErrWatermark, ErrBadData, ErrSessionKeyInvalid}
	tests := []struct {
		code int
		want error
	}{
		{40029, ErrInvalidCode},
		{40163, ErrInvalidCode},
		{41008, ErrInvalidCode},
		{40226, ErrUserBlocked},
		{45011, ErrRateLimited},
		{-1, ErrUnavailable},
		{87009, ErrSessionKeyInvalid},
		{40001, ErrAPI},
		{40013, ErrAPI},
		{40125, ErrAPI},
		{45009, ErrAPI},
		{1, ErrAPI},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.code), func(t *testing.T) {
			err := fmt.Errorf("wrapped: %w", &APIError{API: "jscode2session", Code: tt.code, Message: "m"})
			for _, s := range sentinels {
				if got := errors.Is(err, s); got != (s == tt.want) {
					t.Errorf("errors.Is(%v) = %v, want %v", s, got, s == tt.want)
				}
			}
		})
	}

	if got, want := (&APIError{API: "jscode2session", Code: 40029, Message: "invalid code"}).Error(), "wechat jscode2session: errcode 40029: invalid code"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if got, want := (&APIError{API: "stable_token", Code: 40013}).Error(), "wechat stable_token: errcode 40013"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func TestRetryAfter(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want time.Duration
	}{
		{"nil", nil, 0},
		{"other", errors.New("x"), 0},
		{"invalid code", &APIError{Code: 40029}, 0},
		{"rate limited", &APIError{Code: 45011}, 60 * time.Second},
		{"busy", fmt.Errorf("w: %w", &APIError{Code: -1}), 5 * time.Second},
		{"unavailable sentinel", ErrUnavailable, 5 * time.Second},
		{"upstream header", fmt.Errorf("w: %w", &httpError{api: "x", kind: ErrUnavailable, retryAfter: 7 * time.Second}), 7 * time.Second},
		{"429 without header", &httpError{api: "x", kind: ErrRateLimited}, 60 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := RetryAfter(tt.err); got != tt.want {
				t.Errorf("RetryAfter = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"120", 120 * time.Second},
		{" 3 ", 3 * time.Second},
		{"0", 0},
		{"-5", 0},
		{"soon", 0},
		{"99999999999", maxRetryAfter},
		{now.Add(30 * time.Second).Format(http.TimeFormat), 30 * time.Second},
		{now.Add(-30 * time.Second).Format(http.TimeFormat), 0},
		{now.Add(24 * time.Hour).Format(http.TimeFormat), maxRetryAfter},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := ParseRetryAfter(tt.in, now); got != tt.want {
				t.Errorf("ParseRetryAfter(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestSanitize(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		secrets []string
		want    string
	}{
		{"plain", "invalid code, rid: 1", nil, "invalid code, rid: 1"},
		{"redacts", "bad secret S1 and code C1", []string{"S1", "C1", ""}, "bad secret [redacted] and code [redacted]"},
		{"control chars", "a\nb\x00c\u0085", nil, "abc"},
		{"long", strings.Repeat("é", 300), nil, strings.Repeat("é", maxErrmsgBytes/2) + "…"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Sanitize(tt.in, tt.secrets); got != tt.want {
				t.Errorf("sanitize = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestNoSecretsInErrorsOrLogs drives every failure path with answers that
// echo the secret and the code, and checks neither reaches an error string
// or a log entry.
func TestNoSecretsInErrorsOrLogs(t *testing.T) {
	const code = "0a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P"
	const sessionKeyB64 = "tiihtNczf5v6AKRyjwEUhQ=="
	echo := func(t *testing.T) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			writeJSON(t, w, map[string]any{"errcode": 40029, "errmsg": "invalid code " + r.URL.Query().Get("js_code") + " for secret " + r.URL.Query().Get("secret")})
		}
	}
	tests := []struct {
		name    string
		handler func(t *testing.T) http.HandlerFunc
		closed  bool
		timeout time.Duration
		want    error
	}{
		{name: "errmsg echoes secrets", handler: echo, want: ErrInvalidCode},
		{name: "connection refused", closed: true, want: ErrUnavailable},
		{name: "timeout", timeout: 50 * time.Millisecond, handler: func(*testing.T) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }
		}, want: ErrUnavailable},
		{name: "non-JSON quoting the request", handler: func(*testing.T) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) { fmt.Fprintf(w, "<html>%s</html>", r.URL.RawQuery) }
		}, want: ErrBadResponse},
		{name: "short session key", handler: func(t *testing.T) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) {
				writeJSON(t, w, map[string]any{"openid": "o1", "session_key": sessionKeyB64[:20]})
			}
		}, want: ErrBadResponse},
		{name: "server error echoing", handler: func(*testing.T) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) { http.Error(w, r.URL.RawQuery, http.StatusBadGateway) }
		}, want: ErrUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			routes := map[string]http.HandlerFunc{}
			if tt.handler != nil {
				routes["/sns/jscode2session"] = tt.handler(t)
			}
			srv, _ := newTestServer(t, routes)
			if tt.closed {
				srv.Close()
			}
			log, logs := observedLogger(t)
			c := newTestClient(t, srv.URL, func(cfg *Config) {
				cfg.Logger = log
				if tt.timeout > 0 {
					cfg.Timeout = tt.timeout
				}
			})
			_, err := c.Code2Session(context.Background(), code)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			texts := []string{err.Error()}
			for _, e := range logs.All() {
				texts = append(texts, e.Message, fmt.Sprint(e.ContextMap()))
			}
			if logs.Len() == 0 {
				t.Errorf("failure was not logged")
			}
			for _, s := range texts {
				for _, secret := range []string{testSecret, code, sessionKeyB64[:20]} {
					if strings.Contains(s, secret) {
						t.Errorf("%q contains a secret (%q)", s, secret)
					}
				}
			}
		})
	}
}

func TestCloseIdleConnections(t *testing.T) {
	srv, _ := newTestServer(t, map[string]http.HandlerFunc{"/sns/jscode2session": okSession(t)})
	c := newTestClient(t, srv.URL, nil)
	if _, err := c.Code2Session(context.Background(), testCode); err != nil {
		t.Fatal(err)
	}
	c.CloseIdleConnections()
	// Still usable afterwards: a new connection is dialled.
	if _, err := c.Code2Session(context.Background(), testCode); err != nil {
		t.Fatal(err)
	}
}

// TestRetryAfterHeader reads Retry-After in seconds or as an HTTP date,
// never more than maxRetryAfter, and 0 when absent, unparsable or not in
// the future.
func TestParseRetryAfterBounds(t *testing.T) {
	now := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		h    string
		want time.Duration
	}{
		{"", 0},
		{"  ", 0},
		{"0", 0},
		{"-5", 0},
		{"1", time.Second},
		{" 7 ", 7 * time.Second},
		{"599", 599 * time.Second},
		{"600", maxRetryAfter},
		{"601", maxRetryAfter},
		{"99999999999", maxRetryAfter},
		{"9223372036854775807", maxRetryAfter},
		{now.Add(30 * time.Second).Format(http.TimeFormat), 30 * time.Second},
		{now.Add(time.Hour).Format(http.TimeFormat), maxRetryAfter},
		{now.Format(http.TimeFormat), 0},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
		{"soon", 0},
	} {
		if got := ParseRetryAfter(tc.h, now); got != tc.want {
			t.Errorf("Retry-After %q: %v, want %v", tc.h, got, tc.want)
		}
	}
}

// TestSanitizeBound: text is kept up to maxErrmsgBytes and cut beyond it,
// its control characters dropped and the secrets redacted.
func TestSanitizeBound(t *testing.T) {
	exact := strings.Repeat("m", maxErrmsgBytes)
	for _, tc := range []struct{ in, want string }{
		{exact, exact},
		{exact + "x", exact + "…"},
		{"line\nbreak\x00", "linebreak"},
		{"secret s3cr3t here", "secret [redacted] here"},
	} {
		if got := Sanitize(tc.in, []string{"", "s3cr3t"}); got != tc.want {
			t.Errorf("Sanitize(%d bytes) = %q, want %q", len(tc.in), got, tc.want)
		}
	}
}
