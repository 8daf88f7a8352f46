package handler

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

var limiterT0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func TestRateLimiter(t *testing.T) {
	t0 := limiterT0
	for _, client := range []string{"198.51.100.7", "2001:db8::7", "not-an-ip"} {
		t.Run(client, func(t *testing.T) {
			l := NewRateLimiter(3, time.Minute) // 3 at once, one back every 20s
			for i := range 3 {
				if ok, _ := l.Allow(client, t0); !ok {
					t.Fatalf("request %d refused", i)
				}
			}
			ok, wait := l.Allow(client, t0)
			if ok || wait != 20*time.Second {
				t.Fatalf("4th request: ok=%v wait=%v", ok, wait)
			}
			if ok, _ := l.Allow("203.0.113.1", t0); !ok {
				t.Fatal("another client was limited")
			}
			if ok, wait := l.Allow(client, t0.Add(15*time.Second)); ok || wait != 5*time.Second {
				t.Fatalf("after 15s: ok=%v wait=%v", ok, wait)
			}
			if ok, _ := l.Allow(client, t0.Add(20*time.Second)); !ok {
				t.Fatal("token not regained after 20s")
			}
			if ok, _ := l.Allow(client, t0.Add(21*time.Second)); ok {
				t.Fatal("more than one token regained")
			}
			// A long pause refills to the burst, not beyond.
			t1 := t0.Add(time.Hour)
			for i := range 3 {
				if ok, _ := l.Allow(client, t1); !ok {
					t.Fatalf("after an hour, request %d refused", i)
				}
			}
			if ok, _ := l.Allow(client, t1); ok {
				t.Fatal("bucket grew past its burst")
			}
		})
	}
}

// TestRateLimiterClientGrouping: IPv6 clients count by /64, IPv4 by
// address, IPv4-mapped IPv6 as IPv4.
func TestRateLimiterClientGrouping(t *testing.T) {
	tests := []struct {
		a, b string
		same bool
	}{
		{"2001:db8:1:2::1", "2001:db8:1:2:ffff:ffff:ffff:ffff", true},
		{"2001:db8:1:2::1", "2001:DB8:1:2:0:0:0:99", true},
		{"2001:db8:1:2::1", "2001:db8:1:3::1", false},
		{"2001:db8:1:2::1", "2001:db8:2:2::1", false},
		{"fe80::1%eth0", "fe80::2%eth1", true},
		{"192.0.2.1", "::ffff:192.0.2.1", true},
		{"192.0.2.1", "::ffff:c000:201", true},
		{"192.0.2.1", "192.0.2.2", false},
		{"192.0.2.1", "192.0.3.1", false},
		{"0.0.0.0", "::", false},
		{"::ffff:0:0", "::", false}, // the mapped 0.0.0.0 is not the /64 of ::
		{"192.0.2.1", "::c000:201", false},
		{"pipe", "pipe", true},
		{"pipe", "@", false},
	}
	for _, tt := range tests {
		t.Run(tt.a+" "+tt.b, func(t *testing.T) {
			if got := keyOf(tt.a) == keyOf(tt.b); got != tt.same {
				t.Fatalf("same key = %v, want %v", got, tt.same)
			}
			// And as the limiter sees it: with a burst of one, b is
			// refused right after a exactly when they share a bucket.
			l := NewRateLimiter(1, time.Minute)
			if ok, _ := l.Allow(tt.a, limiterT0); !ok {
				t.Fatal("first request refused")
			}
			if ok, _ := l.Allow(tt.b, limiterT0); ok == tt.same {
				t.Fatalf("second client allowed = %v, want %v", ok, !tt.same)
			}
		})
	}
}

func TestRateLimiterSweep(t *testing.T) {
	t0 := limiterT0
	l := NewRateLimiter(2, time.Minute) // one back every 30s
	l.Allow("192.0.2.1", t0)            // full again at t0+30s
	l.Allow("192.0.2.2", t0)
	l.Allow("192.0.2.2", t0) // empty: full again at t0+60s
	if ok, _ := l.Allow("192.0.2.2", t0); ok {
		t.Fatal("third request allowed")
	}
	l.Allow("2001:db8::1", t0.Add(30*time.Second)) // full again at t0+60s

	if n := l.Sweep(t0.Add(time.Second)); n != 0 || l.Len() != 3 {
		t.Fatalf("early sweep removed %d, %d left", n, l.Len())
	}
	// A sweep never forgets a client that is being limited.
	if ok, _ := l.Allow("192.0.2.2", t0.Add(time.Second)); ok {
		t.Fatal("sweep reset a limited client")
	}
	if n := l.Sweep(t0.Add(30 * time.Second)); n != 1 || l.Len() != 2 {
		t.Fatalf("sweep at 30s removed %d, %d left", n, l.Len())
	}
	if n := l.Sweep(t0.Add(60 * time.Second)); n != 2 || l.Len() != 0 {
		t.Fatalf("sweep at 60s removed %d, %d left", n, l.Len())
	}
}

func TestRateLimiterSweeper(t *testing.T) {
	core, logs := observer.New(zapcore.WarnLevel)
	// 256 clients at most: one per shard.
	l := NewRateLimiter(1, time.Minute, WithMaxClients(limiterShards), WithLogger(zap.New(core)))
	now := limiterT0
	clock := func() time.Time { return now }
	ticks := make(chan time.Time)
	stop := l.startSweeper(ticks, clock)
	t.Cleanup(stop)

	for i := range 2000 {
		l.Allow(fmt.Sprintf("10.0.%d.%d", i/256, i%256), now)
	}
	if n := l.Len(); n == 0 || n > limiterShards {
		t.Fatalf("%d clients tracked, cap %d", n, limiterShards)
	}
	now = now.Add(time.Minute)
	ticks <- now // the sweeper takes the tick…
	stop()       // …and has finished its sweep once stop returns
	if n := l.Len(); n != 0 {
		t.Fatalf("%d clients left after the sweep", n)
	}
	if logs.Len() != 1 || !strings.Contains(logs.All()[0].Message, "client table full") {
		t.Fatalf("want one warning about the full table, got %v", logs.All())
	}
	stop() // a second stop is harmless
}

// TestRateLimiterBoundedMemory floods the limiter with distinct clients:
// its size stays under the cap, tracked clients keep their own limits, and
// untracked clients are limited together, never let through unlimited.
func TestRateLimiterBoundedMemory(t *testing.T) {
	const capacity = 4 * limiterShards
	l := NewRateLimiter(1, time.Hour, WithMaxClients(capacity))
	t0 := limiterT0
	if ok, _ := l.Allow("198.51.100.1", t0); !ok {
		t.Fatal("first client refused")
	}
	allowed := 0
	const flood = 100_000
	for i := range flood {
		if ok, _ := l.Allow(fmt.Sprintf("2001:db8:%x:%x::1", i>>16, i&0xffff), t0); ok {
			allowed++
		}
		if n := l.Len(); i%1000 == 0 && n > capacity {
			t.Fatalf("%d clients tracked, cap %d", n, capacity)
		}
	}
	if n := l.Len(); n > capacity {
		t.Fatalf("%d clients tracked, cap %d", n, capacity)
	}
	// Each shard tracked its share and let one more through for all the
	// others together: never more.
	if allowed > capacity+limiterShards {
		t.Fatalf("%d of %d distinct clients allowed with a burst of 1; at most %d may be", allowed, flood, capacity+limiterShards)
	}
	// The client tracked before the flood is still limited on its own.
	if ok, _ := l.Allow("198.51.100.1", t0); ok {
		t.Fatal("the flood reset a tracked client")
	}
	// Once the buckets are full again and swept, new clients have room.
	l.Sweep(t0.Add(time.Hour))
	if ok, _ := l.Allow("203.0.113.50", t0.Add(time.Hour)); !ok {
		t.Fatal("new client refused after the sweep")
	}
}

// FuzzRateLimiterClient: any client string is a client, never a panic, and
// always the same one.
func FuzzRateLimiterClient(f *testing.F) {
	for _, s := range []string{"", "192.0.2.1", "::ffff:192.0.2.1", "2001:db8::1", "fe80::1%eth0", "[::1]:80", "1.2.3.4.5", "\xff", "@"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, client string) {
		if keyOf(client) != keyOf(client) {
			t.Fatal("one client, two keys")
		}
		l := NewRateLimiter(1, time.Minute)
		if ok, _ := l.Allow(client, limiterT0); !ok {
			t.Fatal("first request refused")
		}
		if ok, wait := l.Allow(client, limiterT0); ok || wait != time.Minute {
			t.Fatalf("second request: ok=%v wait=%v", ok, wait)
		}
	})
}
