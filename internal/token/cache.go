package token

import (
	"hash/maphash"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
)

// defaultCacheSize is the verified-token cache capacity when Config.CacheSize
// is 0.
const defaultCacheSize = 8192

// maxCacheShards bounds the number of cache shards (a power of two).
const maxCacheShards = 32

// verifiedCache remembers tokens whose signature and claims were verified,
// keyed by the exact token string, so a token is decoded and its signature
// checked once per token rather than once per request.
//
// An entry is served only inside [validFrom, exp): never at or after exp, at
// which point a full verification decides again. The cache holds at most its
// capacity; when a shard is full, one of two randomly chosen entries (the
// one expiring first) is replaced, which is O(1). Lookups take a shard read
// lock and allocate nothing.
type verifiedCache struct {
	seed   maphash.Seed
	mask   uint64
	shards []cacheShard
}

type cacheShard struct {
	mu    sync.RWMutex
	index map[string]int32 // token → position in slots
	slots []cacheSlot
	limit int
	_     [64]byte // keep neighbouring shard locks on separate cache lines
}

type cacheSlot struct {
	token  string
	claims *Claims
	from   int64 // unix nanoseconds; usable when from <= now
	exp    int64 // unix nanoseconds; usable when now < exp
}

// newVerifiedCache returns a cache holding at most size entries (size > 0).
func newVerifiedCache(size int) *verifiedCache {
	n := 1
	for n < maxCacheShards && n*2 <= size/64 {
		n *= 2
	}
	// Small caches: fewer shards so that the per-shard limit stays >= 1 and
	// the total never exceeds size.
	for n > 1 && size/n < 1 {
		n /= 2
	}
	c := &verifiedCache{
		seed:   maphash.MakeSeed(),
		mask:   uint64(n - 1),
		shards: make([]cacheShard, n),
	}
	per := min(size/n, math.MaxInt32) // slots are indexed by int32
	for i := range c.shards {
		c.shards[i].limit = per
		c.shards[i].index = make(map[string]int32, min(per, 1024))
	}
	return c
}

func (c *verifiedCache) shard(tok string) *cacheShard {
	return &c.shards[maphash.String(c.seed, tok)&c.mask]
}

// get returns the cached claims of tok if they are usable at now (unix
// nanoseconds). stale reports an entry that exists but is past its exp.
func (c *verifiedCache) get(tok string, now int64) (claims *Claims, stale bool) {
	s := c.shard(tok)
	s.mu.RLock()
	i, ok := s.index[tok]
	if !ok {
		s.mu.RUnlock()
		return nil, false
	}
	sl := &s.slots[i]
	cl, from, exp := sl.claims, sl.from, sl.exp
	s.mu.RUnlock()
	if now >= exp {
		return nil, true
	}
	if now < from {
		return nil, false
	}
	return cl, false
}

// put stores verified claims for tok, usable in [from, exp).
func (c *verifiedCache) put(tok string, claims *Claims, from, exp int64) {
	s := c.shard(tok)
	s.mu.Lock()
	defer s.mu.Unlock()
	if i, ok := s.index[tok]; ok {
		s.slots[i] = cacheSlot{token: s.slots[i].token, claims: claims, from: from, exp: exp}
		return
	}
	// Own the key: tok may be a slice of a larger request buffer.
	slot := cacheSlot{token: strings.Clone(tok), claims: claims, from: from, exp: exp}
	if len(s.slots) < s.limit {
		s.index[slot.token] = int32(len(s.slots))
		s.slots = append(s.slots, slot)
		return
	}
	// Full: replace the sooner-expiring of two random slots.
	v := rand.IntN(len(s.slots))
	if w := rand.IntN(len(s.slots)); s.slots[w].exp < s.slots[v].exp {
		v = w
	}
	delete(s.index, s.slots[v].token)
	s.slots[v] = slot
	s.index[slot.token] = int32(v)
}

// remove drops tok if it is present and past exp at now.
func (c *verifiedCache) remove(tok string, now int64) {
	s := c.shard(tok)
	s.mu.Lock()
	defer s.mu.Unlock()
	i, ok := s.index[tok]
	if !ok || now < s.slots[i].exp {
		return
	}
	last := int32(len(s.slots) - 1)
	delete(s.index, tok)
	if i != last {
		s.slots[i] = s.slots[last]
		s.index[s.slots[i].token] = i
	}
	s.slots[last] = cacheSlot{}
	s.slots = s.slots[:last]
}

// len returns the number of entries, for tests and metrics.
func (c *verifiedCache) len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.RLock()
		n += len(s.slots)
		s.mu.RUnlock()
	}
	return n
}
