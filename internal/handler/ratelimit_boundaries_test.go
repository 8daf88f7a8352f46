package handler

import (
	"fmt"
	"hash/maphash"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
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

// TestRateLimiterTracksExactlyItsCap: after a flood of distinct clients
// the limiter tracks exactly its client cap (a multiple of the shard
// count here), no more and no less; a cap of 0 or less keeps the default.
func TestRateLimiterTracksExactlyItsCap(t *testing.T) {
	for _, capacity := range []int{limiterShards, 4 * limiterShards} {
		l := NewRateLimiter(1, time.Hour, WithMaxClients(capacity))
		if l.max != capacity || l.perShard != capacity/limiterShards {
			t.Fatalf("cap %d: max %d, %d a shard", capacity, l.max, l.perShard)
		}
		// 80 clients a shard on average: every shard fills.
		for i := range 80 * limiterShards {
			l.Allow(fmt.Sprintf("2001:db8:%x:%x::1", i>>16, i&0xffff), limiterT0)
		}
		if n := l.Len(); n != capacity {
			t.Fatalf("cap %d: %d clients tracked", capacity, n)
		}
	}
	for _, n := range []int{0, -1} {
		if l := NewRateLimiter(1, time.Hour, WithMaxClients(n)); l.max != DefaultMaxClients || l.perShard != DefaultMaxClients/limiterShards {
			t.Fatalf("WithMaxClients(%d): max %d, %d a shard", n, l.max, l.perShard)
		}
	}
}

// sameShardClients returns two addresses whose buckets live in the same
// shard of l.
func sameShardClients(t *testing.T, l *RateLimiter) (string, string) {
	t.Helper()
	seen := make(map[uint64]string)
	// By the pigeonhole principle, limiterShards+1 addresses suffice.
	for i := range limiterShards + 1 {
		a := fmt.Sprintf("198.51.%d.%d", i>>8, i&0xff)
		k := keyOf(a)
		s := maphash.Bytes(l.seed, k[:]) & (limiterShards - 1)
		if b, ok := seen[s]; ok {
			return b, a
		}
		seen[s] = a
	}
	t.Fatal("no two addresses share a shard")
	return "", ""
}

// TestRateLimiterOverflowSurvivesSweep: while a shard is full, untracked
// clients share one bucket, and a sweep does not refill that bucket before
// its time: the limiter stays closed under a flood.
func TestRateLimiterOverflowSurvivesSweep(t *testing.T) {
	l := NewRateLimiter(1, time.Minute, WithMaxClients(limiterShards)) // one client a shard
	tracked, untracked := sameShardClients(t, l)
	if ok, _ := l.Allow(tracked, limiterT0); !ok {
		t.Fatal("first client refused")
	}
	if ok, _ := l.Allow(untracked, limiterT0); !ok {
		t.Fatal("the shared bucket refused its first request")
	}
	if ok, wait := l.Allow(untracked, limiterT0); ok || wait != time.Minute {
		t.Fatalf("shared bucket: ok=%v wait=%v, want refused for 1m", ok, wait)
	}
	// A sweep before the bucket refills keeps both limits.
	now := limiterT0.Add(time.Minute - time.Nanosecond)
	if n := l.Sweep(now); n != 0 {
		t.Fatalf("sweep forgot %d clients whose buckets are not full", n)
	}
	if ok, _ := l.Allow(untracked, now); ok {
		t.Fatal("the sweep refilled the shared bucket early")
	}
	if ok, _ := l.Allow(tracked, now); ok {
		t.Fatal("the sweep refilled a tracked bucket early")
	}
	// Once full again, the sweep frees the slot and the client is tracked.
	now = limiterT0.Add(time.Minute)
	if n := l.Sweep(now); n != 1 || l.Len() != 0 {
		t.Fatalf("sweep at refill forgot %d, %d left", n, l.Len())
	}
	if ok, _ := l.Allow(untracked, now); !ok || l.Len() != 1 {
		t.Fatalf("after the sweep: ok=%v, %d tracked", ok, l.Len())
	}
}

// TestRateLimiterSweeperQuietWhenNotFull: the sweeper warns only about
// sweeps during which the client table overflowed.
func TestRateLimiterSweeperQuietWhenNotFull(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	l := NewRateLimiter(1, time.Minute, WithLogger(zap.New(core)))
	now := limiterT0
	ticks := make(chan time.Time)
	stop := l.startSweeper(ticks, func() time.Time { return now })
	t.Cleanup(stop)
	l.Allow("198.51.100.7", now)
	now = now.Add(time.Minute)
	ticks <- now
	ticks <- now // the second send returns once the first sweep is done
	stop()
	if l.Len() != 0 {
		t.Fatalf("%d clients left after the sweep", l.Len())
	}
	if logs.Len() != 0 {
		t.Fatalf("the sweeper logged %v", logs.All())
	}
}
