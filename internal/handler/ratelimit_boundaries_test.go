package handler

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestRemoteHost: the login rate limit's default client key is the peer's
// address without its port, so a client cannot get a fresh allowance by
// opening a new connection from another port.
func TestRemoteHost(t *testing.T) {
	tests := []struct{ addr, want string }{
		{"198.51.100.7:1234", "198.51.100.7"},
		{"198.51.100.7:65535", "198.51.100.7"},
		{"[2001:db8::1]:443", "2001:db8::1"},
		{"[fe80::1%eth0]:80", "fe80::1%eth0"},
		{"not-an-address", "not-an-address"},
		{"", ""},
	}
	for _, tt := range tests {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = tt.addr
		if got := RemoteHost(r); got != tt.want {
			t.Errorf("RemoteHost(%q) = %q, want %q", tt.addr, got, tt.want)
		}
	}
}

// TestLoginLimitCountsClientNotConnection: attempts from one address (or
// one IPv6 /64) share a bucket whatever their source ports; the limit is
// checked before the body is even read, so malformed attempts count too.
func TestLoginLimitCountsClientNotConnection(t *testing.T) {
	hs := newHarness(t)
	cfg := hs.h.cfg
	cfg.LoginLimit = NewRateLimiter(1, time.Minute)
	h, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	hs.h = h
	post := func(remote, body string) int {
		t.Helper()
		r := httptest.NewRequest("POST", "/wx/login", strings.NewReader(body))
		r.RemoteAddr = remote
		r.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		hs.h.Serve(w, r)
		return w.Code
	}
	tests := []struct {
		first, second string
	}{
		{"198.51.100.7:1111", "198.51.100.7:2222"},
		{"[2001:db8:1:2::1]:1111", "[2001:db8:1:2::ffff]:2222"},
		{"[::ffff:203.0.113.5]:1111", "203.0.113.5:2222"},
	}
	for _, tt := range tests {
		if code := post(tt.first, `{"code":"unknown"}`); code != 400 {
			t.Fatalf("%s: first attempt %d, want 400 invalid_code", tt.first, code)
		}
		if code := post(tt.second, `not json`); code != 429 {
			t.Fatalf("%s after %s: %d, want 429", tt.second, tt.first, code)
		}
	}
	// A GET is answered 405 without spending the allowance.
	if code := func() int {
		r := httptest.NewRequest("GET", "/wx/login", nil)
		r.RemoteAddr = "192.0.2.1:1"
		w := httptest.NewRecorder()
		hs.h.Serve(w, r)
		return w.Code
	}(); code != 405 {
		t.Fatalf("GET: %d", code)
	}
	if code := post("192.0.2.1:2", `{"code":"unknown"}`); code != 400 {
		t.Fatalf("POST after a GET: %d, want 400", code)
	}
}
