package handler

import (
	"crypto/sha256"
	"hash/maphash"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// DefaultMaxClients is how many clients a RateLimiter tracks at most,
// unless WithMaxClients says otherwise. At about 56 bytes of heap a client
// (measured by BenchmarkRateLimiterClients) that is some 60 MiB when full;
// it only fills when that many distinct clients made a login attempt
// within about one window.
const DefaultMaxClients = 1 << 20

// limiterShards is the number of independently locked parts of a
// RateLimiter (a power of two). A client belongs to one shard, chosen by a
// keyed hash of its key, and each shard holds at most its share of the
// client cap.
const limiterShards = 256

// RateLimiter is a token bucket per client: each client may make Burst
// requests at once and regains one every Window/Burst. It is safe for
// concurrent use.
//
// Clients are IP addresses: an IPv4 address counts alone (an IPv4-mapped
// IPv6 address counts as its IPv4 address), an IPv6 address counts with
// its whole /64, which is what one subscriber usually gets. Anything that
// is not an IP address is a client of its own.
//
// Admission costs the same whatever the number of clients: a hash keyed
// with a random seed (so clients cannot aim at one shard) picks one of 256
// shards, each a map under its own lock, and nothing on the request path
// scans. A client whose bucket has filled up again is
// forgotten by Sweep (it would start full anyway), so StartSweeper keeps
// only clients active within about the last window.
//
// Memory is bounded: each shard holds at most its share of the client cap
// (DefaultMaxClients, or WithMaxClients). When a request comes from a
// client that is not tracked and its shard is full, the request is counted
// against one bucket shared by all such clients of that shard (same burst
// and rate): the limiter fails closed, so under a flood of distinct
// addresses new clients are limited together rather than not at all,
// while clients already tracked keep their own buckets. The sweeper logs a
// warning, at most once per sweep, when that happened; space comes back as
// soon as buckets are swept.
type RateLimiter struct {
	burst     int
	window    time.Duration
	interval  int64 // ns to regain one token: window / burst
	tolerance int64 // ns a bucket may run ahead of now: (burst-1) * interval
	max       int   // client cap
	perShard  int   // client cap of one shard
	seed      maphash.Seed
	log       *zap.Logger

	shards [limiterShards]limiterShard

	// overflowed counts requests counted against a shared overflow
	// bucket since the last sweep.
	overflowed atomic.Int64
}

// limiterShard is one part of a RateLimiter's clients.
type limiterShard struct {
	mu sync.Mutex
	// tat is each client's theoretical arrival time (Unix ns): the bucket
	// is full at or after it, and each admitted request moves it one
	// interval on (the generic cell rate algorithm, a token bucket in one
	// number).
	tat map[clientKey]int64
	// overflow is the tat of the bucket shared by untracked clients while
	// the shard is full.
	overflow int64
	// Pads the shard (a mutex, a map and an int64: 24 bytes) to 64, the
	// usual cache line, so that busy neighbours do not share one.
	_ [40]byte
}

// clientKey is a client's address as 16 bytes: an IPv4 address in its
// IPv4-mapped form, an IPv6 /64 with the host half zeroed, or a hash of
// a key that is not an IP address.
type clientKey [16]byte

// LimiterOption configures a RateLimiter.
type LimiterOption func(*RateLimiter)

// WithMaxClients sets how many clients the limiter tracks at most (see
// RateLimiter). Default: DefaultMaxClients.
func WithMaxClients(n int) LimiterOption {
	return func(l *RateLimiter) {
		if n > 0 {
			l.max = n
		}
	}
}

// WithLogger sets where the sweeper reports a full client table.
// Default: no logging.
func WithLogger(log *zap.Logger) LimiterOption {
	return func(l *RateLimiter) {
		if log != nil {
			l.log = log
		}
	}
}

// NewRateLimiter allows burst requests per client at once and regains one
// every window/burst, i.e. burst requests per window on average. A burst
// below 1 counts as 1, a window below 1ns as 1ns.
func NewRateLimiter(burst int, window time.Duration, opts ...LimiterOption) *RateLimiter {
	burst = max(burst, 1)
	window = max(window, time.Nanosecond)
	interval := max(int64(window)/int64(burst), 1)
	l := &RateLimiter{
		burst:     burst,
		window:    window,
		interval:  interval,
		tolerance: int64(burst-1) * interval,
		max:       DefaultMaxClients,
		seed:      maphash.MakeSeed(),
		log:       zap.NewNop(),
	}
	for _, o := range opts {
		o(l)
	}
	l.perShard = max((l.max+limiterShards-1)/limiterShards, 1)
	for i := range l.shards {
		l.shards[i].tat = make(map[clientKey]int64)
	}
	return l
}

// Allow takes a token from client's bucket at now. When there is none it
// reports how long until there will be. client is normally an IP address
// (see RateLimiter for how addresses are grouped).
func (l *RateLimiter) Allow(client string, now time.Time) (ok bool, retryAfter time.Duration) {
	k := keyOf(client)
	sh := &l.shards[maphash.Bytes(l.seed, k[:])&(limiterShards-1)]
	n := now.UnixNano()
	sh.mu.Lock()
	tat, tracked := sh.tat[k]
	if !tracked && len(sh.tat) >= l.perShard {
		next, ok, wait := l.admit(sh.overflow, n)
		sh.overflow = next
		sh.mu.Unlock()
		l.overflowed.Add(1)
		return ok, wait
	}
	next, ok, wait := l.admit(tat, n)
	if ok {
		sh.tat[k] = next
	}
	sh.mu.Unlock()
	return ok, wait
}

// admit applies one request at n to a bucket whose theoretical arrival
// time is tat (0 for a full bucket): it returns the new tat, whether the
// request is allowed, and if not how long until it would be.
func (l *RateLimiter) admit(tat, n int64) (next int64, ok bool, wait time.Duration) {
	t := max(tat, n)
	if ahead := t - n; ahead > l.tolerance {
		return tat, false, time.Duration(ahead - l.tolerance)
	}
	return t + l.interval, true, 0
}

// keyOf groups client addresses: see clientKey.
func keyOf(client string) clientKey {
	addr, err := netip.ParseAddr(client)
	if err != nil {
		sum := sha256.Sum256([]byte(client))
		return clientKey(sum[:16])
	}
	addr = addr.Unmap().WithZone("")
	k := clientKey(addr.As16())
	if addr.Is6() {
		clear(k[8:])
	}
	return k
}

// Sweep forgets every client whose bucket is full again at now (it would
// start full anyway) and returns how many it forgot. It locks one shard at
// a time.
func (l *RateLimiter) Sweep(now time.Time) int {
	n := now.UnixNano()
	removed := 0
	for i := range l.shards {
		sh := &l.shards[i]
		sh.mu.Lock()
		gone := 0
		for k, tat := range sh.tat {
			if tat <= n {
				delete(sh.tat, k)
				gone++
			}
		}
		if sh.overflow <= n {
			sh.overflow = 0
		}
		// Go maps keep their size after deletes: after a flood, start
		// the shard afresh so its memory goes back.
		if gone > 64 && len(sh.tat) < gone/4 {
			fresh := make(map[clientKey]int64, len(sh.tat))
			for k, v := range sh.tat {
				fresh[k] = v
			}
			sh.tat = fresh
		}
		sh.mu.Unlock()
		removed += gone
	}
	return removed
}

// SweepInterval is how often StartSweeper should sweep: the window, at
// least 1s and at most 1m. A bucket is full again at most one window
// after its client's last request.
func (l *RateLimiter) SweepInterval() time.Duration {
	return min(max(l.window, time.Second), time.Minute)
}

// StartSweeper sweeps every interval, at the time clock gives, in a
// goroutine of its own, and reports a full client table (see RateLimiter)
// with one warning per sweep. stop ends the goroutine and returns once it
// has; it may be called more than once.
func (l *RateLimiter) StartSweeper(interval time.Duration, clock func() time.Time) (stop func()) {
	t := time.NewTicker(interval)
	stopSweep := l.startSweeper(t.C, clock)
	return func() {
		t.Stop()
		stopSweep()
	}
}

// startSweeper is StartSweeper driven by ticks.
func (l *RateLimiter) startSweeper(ticks <-chan time.Time, clock func() time.Time) (stop func()) {
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-quit:
				return
			case <-ticks:
				l.Sweep(clock())
				if n := l.overflowed.Swap(0); n > 0 {
					l.log.Warn("wechat_auth login rate limit: client table full; clients not already tracked shared one bucket per shard",
						zap.Int64("requests", n), zap.Int("max_clients", l.max))
				}
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() { close(quit) })
		<-done
	}
}

// Len returns how many clients the limiter tracks.
func (l *RateLimiter) Len() int {
	n := 0
	for i := range l.shards {
		sh := &l.shards[i]
		sh.mu.Lock()
		n += len(sh.tat)
		sh.mu.Unlock()
	}
	return n
}
