package handler

import (
	"sync"
	"sync/atomic"
	"time"
)

// Revocations is the in-memory list of revoked sessions the guard checks on
// every request, so a logout takes effect at once without a store read per
// request. An entry is kept only while an access token of its session could
// still be accepted (revocation time + access TTL + leeway); after that the
// token's own exp refuses it and Sweep drops the entry.
//
// The list is filled from the store when an app's handler first starts and
// kept in step by every revocation this process makes. It is safe for
// concurrent use; Revoked does not allocate.
type Revocations struct {
	n  atomic.Int64 // number of entries; lets Revoked skip the lock when empty
	mu sync.RWMutex
	m  map[string]int64 // sid → unix nanoseconds after which the entry may go
}

// NewRevocations returns an empty list.
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

// Add records sid as revoked until until (extending an existing entry,
// never shortening it).
func (r *Revocations) Add(sid string, until time.Time) {
	u := until.UnixNano()
	r.mu.Lock()
	if old, ok := r.m[sid]; !ok || old < u {
		r.m[sid] = u
	}
	r.n.Store(int64(len(r.m)))
	r.mu.Unlock()
}

// Sweep drops the entries whose time has passed at now and returns how many
// it dropped.
func (r *Revocations) Sweep(now time.Time) int {
	t := now.UnixNano()
	r.mu.Lock()
	defer r.mu.Unlock()
	dropped := 0
	for sid, u := range r.m {
		if u < t {
			delete(r.m, sid)
			dropped++
		}
	}
	r.n.Store(int64(len(r.m)))
	return dropped
}

// Len returns the number of entries.
func (r *Revocations) Len() int { return int(r.n.Load()) }
