package handler

import (
	"sync"
	"sync/atomic"
	"time"
)

// Revocations is the in-memory list of revoked sessions the guard checks on
// every request, so a logout takes effect at once without a store read per
// request. An entry is kept for the list's window after the later of its
// revocation time and the moment this process learnt of it: while an
// access token of its session could still be accepted (access TTL + leeway
// + a second). After that the token's own exp refuses it and Sweep drops
// the entry. Counting from the later of the two times keeps the entry its
// full window even when the revoking side's clock is behind this one.
//
// One list serves every handler of an app in the process; its window is
// the widest any of them has asked for (Widen), so a logout through a
// handler with short-lived tokens still covers the longer-lived tokens of
// another. The list is filled from the store when an app's handler first
// starts and kept in step by every revocation this process makes or hears
// of. It is safe for concurrent use; Revoked does not allocate.
type Revocations struct {
	n      atomic.Int64 // number of entries; lets Revoked skip the lock when empty
	window atomic.Int64 // nanoseconds an entry is kept after its start
	mu     sync.RWMutex
	m      map[string]int64 // sid → unix nanoseconds from which the entry's window runs
}

// NewRevocations returns an empty list with a zero window; every handler
// using it widens it to its own (see Widen).
func NewRevocations() *Revocations {
	return &Revocations{m: make(map[string]int64)}
}

// Revoked reports whether the session sid is revoked.
func (r *Revocations) Revoked(sid string) bool {
	if r.n.Load() == 0 {
		return false
	}
	r.mu.RLock()
	_, ok := r.m[sid]
	r.mu.RUnlock()
	return ok
}

// Widen makes the list keep every entry, those already on it included, for
// at least d. It never narrows the window.
func (r *Revocations) Widen(d time.Duration) {
	for {
		old := r.window.Load()
		if int64(d) <= old || r.window.CompareAndSwap(old, int64(d)) {
			return
		}
	}
}

// Window returns how long an entry is kept after the later of its
// revocation time and its receipt.
func (r *Revocations) Window() time.Duration { return time.Duration(r.window.Load()) }

// Add records sid as revoked at at, learnt of at now: the entry is kept
// until the later of the two plus the window (extending an existing entry,
// never shortening it). A zero at counts as now.
func (r *Revocations) Add(sid string, at, now time.Time) {
	from := now.UnixNano()
	if !at.IsZero() {
		from = max(from, at.UnixNano())
	}
	r.mu.Lock()
	if old, ok := r.m[sid]; !ok || old < from {
		r.m[sid] = from
	}
	r.n.Store(int64(len(r.m)))
	r.mu.Unlock()
}

// Sweep drops the entries whose time has passed at now and returns how many
// it dropped.
func (r *Revocations) Sweep(now time.Time) int {
	t := now.UnixNano()
	w := r.window.Load()
	r.mu.Lock()
	defer r.mu.Unlock()
	dropped := 0
	for sid, from := range r.m {
		if from+w < t {
			delete(r.m, sid)
			dropped++
		}
	}
	r.n.Store(int64(len(r.m)))
	return dropped
}

// Len returns the number of entries.
func (r *Revocations) Len() int { return int(r.n.Load()) }
