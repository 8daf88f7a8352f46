package handler

import (
	"math"
	"sync"
	"time"
)

// maxLimiterKeys bounds the memory of a RateLimiter: past it, clients
// whose bucket has refilled (who would be allowed anyway) are forgotten
// first, then arbitrary ones.
const maxLimiterKeys = 1 << 16

// RateLimiter is a token bucket per key (the client IP): each key may make
// Burst requests at once and regains one every Interval. It is safe for
// concurrent use and its memory is bounded.
type RateLimiter struct {
	burst    float64
	interval time.Duration
	max      int

	mu      sync.Mutex
	buckets map[string]bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

// NewRateLimiter allows burst requests per key at once and regains one
// every window/burst, i.e. burst requests per window on average.
func NewRateLimiter(burst int, window time.Duration) *RateLimiter {
	if burst < 1 {
		burst = 1
	}
	return &RateLimiter{
		burst:    float64(burst),
		interval: window / time.Duration(burst),
		max:      maxLimiterKeys,
		buckets:  make(map[string]bucket),
	}
}

// Allow takes a token from key's bucket at now. When there is none it
// reports how long until there will be.
func (l *RateLimiter) Allow(key string, now time.Time) (ok bool, retryAfter time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, found := l.buckets[key]
	if !found {
		if len(l.buckets) >= l.max {
			l.evict(now)
		}
		b = bucket{tokens: l.burst, last: now}
	}
	b = l.refill(b, now)
	if b.tokens < 1 {
		l.buckets[key] = b
		wait := time.Duration(math.Ceil((1 - b.tokens) * float64(l.interval)))
		return false, wait
	}
	b.tokens--
	l.buckets[key] = b
	return true, 0
}

func (l *RateLimiter) refill(b bucket, now time.Time) bucket {
	if elapsed := now.Sub(b.last); elapsed > 0 && l.interval > 0 {
		b.tokens = math.Min(l.burst, b.tokens+float64(elapsed)/float64(l.interval))
		b.last = now
	}
	return b
}

// evict makes room: first every key whose bucket is full again, then, if
// that freed nothing, one arbitrary key.
func (l *RateLimiter) evict(now time.Time) {
	for k, b := range l.buckets {
		if l.refill(b, now).tokens >= l.burst {
			delete(l.buckets, k)
		}
	}
	if len(l.buckets) < l.max {
		return
	}
	for k := range l.buckets {
		delete(l.buckets, k)
		return
	}
}

// Len returns how many keys the limiter remembers.
func (l *RateLimiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}
