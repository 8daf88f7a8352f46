package handler

import (
	"fmt"
	"testing"
	"time"
)

func TestRateLimiter(t *testing.T) {
	t0 := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	l := NewRateLimiter(3, time.Minute) // 3 at once, one back every 20s
	for i := range 3 {
		if ok, _ := l.Allow("a", t0); !ok {
			t.Fatalf("request %d refused", i)
		}
	}
	ok, wait := l.Allow("a", t0)
	if ok || wait != 20*time.Second {
		t.Fatalf("4th request: ok=%v wait=%v", ok, wait)
	}
	if ok, _ := l.Allow("b", t0); !ok {
		t.Fatal("another key was limited")
	}
	if ok, wait := l.Allow("a", t0.Add(15*time.Second)); ok || wait != 5*time.Second {
		t.Fatalf("after 15s: ok=%v wait=%v", ok, wait)
	}
	if ok, _ := l.Allow("a", t0.Add(20*time.Second)); !ok {
		t.Fatal("token not regained after 20s")
	}
	if ok, _ := l.Allow("a", t0.Add(21*time.Second)); ok {
		t.Fatal("more than one token regained")
	}
	// A long pause refills to the burst, not beyond.
	t1 := t0.Add(time.Hour)
	for i := range 3 {
		if ok, _ := l.Allow("a", t1); !ok {
			t.Fatalf("after an hour, request %d refused", i)
		}
	}
	if ok, _ := l.Allow("a", t1); ok {
		t.Fatal("bucket grew past its burst")
	}
}

func TestRateLimiterBoundedMemory(t *testing.T) {
	t0 := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	l := NewRateLimiter(2, time.Minute)
	l.max = 100
	// 100 clients drain their buckets: all stay remembered.
	for i := range 100 {
		l.Allow(fmt.Sprint("busy-", i), t0)
		l.Allow(fmt.Sprint("busy-", i), t0)
	}
	// A flood of new keys never grows the map past its bound.
	for i := range 1000 {
		l.Allow(fmt.Sprint("new-", i), t0)
		if n := l.Len(); n > 100 {
			t.Fatalf("limiter holds %d keys, bound 100", n)
		}
	}
	// Once buckets have refilled, those keys go first.
	l2 := NewRateLimiter(2, time.Minute)
	l2.max = 2
	l2.Allow("idle", t0)
	l2.Allow("busy", t0.Add(30*time.Second))
	l2.Allow("busy", t0.Add(30*time.Second))
	l2.Allow("newcomer", t0.Add(time.Minute)) // idle has refilled, busy has not
	if _, kept := l2.buckets["idle"]; kept {
		t.Fatal("the refilled key was kept")
	}
	if ok, _ := l2.Allow("busy", t0.Add(time.Minute)); !ok {
		t.Fatal("busy key lost its regained token")
	}
	if ok, _ := l2.Allow("busy", t0.Add(time.Minute)); ok {
		t.Fatal("busy key was forgotten and got a fresh bucket")
	}
}
