package handler

import (
	"fmt"
	"runtime"
	"testing"
	"time"
)

// clientAddrs returns n distinct client addresses, half IPv4 and half
// IPv6 (each in its own /64), as Caddy hands them to the limiter.
func clientAddrs(n int) []string {
	addrs := make([]string, n)
	for i := range addrs {
		if i%2 == 0 {
			addrs[i] = fmt.Sprintf("10.%d.%d.%d", i>>16&0xff, i>>8&0xff, i&0xff)
		} else {
			addrs[i] = fmt.Sprintf("2001:db8:%x:%x::1", i>>16, i&0xffff)
		}
	}
	return addrs
}

// BenchmarkRateLimiterClients measures one admission while the limiter
// tracks 1k, 100k or 1M distinct clients: the work per request does not
// grow with them (one hash, one shard lock, one map access); what grows is
// only the memory latency of a table that no longer fits the CPU caches.
// The requests cycle through all the clients. bytes/client is the heap the
// tracked clients take.
func BenchmarkRateLimiterClients(b *testing.B) {
	for _, n := range []int{1_000, 100_000, 1_000_000} {
		b.Run(fmt.Sprintf("clients=%d", n), func(b *testing.B) {
			addrs := clientAddrs(n)
			now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			l := NewRateLimiter(1_000_000, time.Minute, WithMaxClients(4*n+64*limiterShards))
			for _, a := range addrs {
				l.Allow(a, now)
			}
			runtime.GC()
			runtime.ReadMemStats(&after)
			if l.Len() != n {
				b.Fatalf("%d clients tracked, want %d", l.Len(), n)
			}
			perClient := float64(after.HeapAlloc-before.HeapAlloc) / float64(n)
			i := 0
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				l.Allow(addrs[i], now)
				if i++; i == n {
					i = 0
				}
			}
			b.ReportMetric(perClient, "bytes/client")
		})
	}
}

// BenchmarkRateLimiterNewClients measures admissions of clients never seen
// before, the worst case of a flood: first with room in the table, then
// with the table full (the shared overflow bucket).
func BenchmarkRateLimiterNewClients(b *testing.B) {
	for _, full := range []bool{false, true} {
		b.Run(fmt.Sprintf("full=%v", full), func(b *testing.B) {
			const n = 1 << 20
			addrs := clientAddrs(n)
			now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
			maxClients := 4 * n
			if full {
				maxClients = limiterShards
			}
			l := NewRateLimiter(5, time.Minute, WithMaxClients(maxClients))
			i := 0
			b.ResetTimer()
			for b.Loop() {
				if i == n {
					// Start over with an empty table, outside the timing.
					b.StopTimer()
					l = NewRateLimiter(5, time.Minute, WithMaxClients(maxClients))
					i = 0
					b.StartTimer()
				}
				l.Allow(addrs[i], now)
				i++
			}
		})
	}
}

// BenchmarkMapBaseline is the floor under BenchmarkRateLimiterClients: one
// read and one write of a plain map with as many 16-byte keys, from the
// same addresses. Its cost grows with the table the same way, which shows
// that the limiter's growth is the memory's, not its own work.
func BenchmarkMapBaseline(b *testing.B) {
	for _, n := range []int{1_000, 100_000, 1_000_000} {
		b.Run(fmt.Sprintf("clients=%d", n), func(b *testing.B) {
			addrs := clientAddrs(n)
			m := make(map[clientKey]int64)
			for _, a := range addrs {
				m[keyOf(a)] = 1
			}
			i := 0
			b.ResetTimer()
			for b.Loop() {
				k := keyOf(addrs[i])
				m[k] = m[k] + 1
				if i++; i == n {
					i = 0
				}
			}
		})
	}
}
