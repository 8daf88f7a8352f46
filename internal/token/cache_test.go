package token

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"
)

func TestCacheServesUntilExpOnly(t *testing.T) {
	m := genKeys(t)
	for _, alg := range []string{AlgEdDSA, AlgES256, AlgRS256} {
		t.Run(alg, func(t *testing.T) {
			clock := newClock(t0)
			s := newService(t, clock, []*Key{m.key(t, alg, "")}, nil)
			tok := issue(t, s, "j", t0)
			first, err := s.Verify(tok)
			if err != nil {
				t.Fatal(err)
			}
			if n := s.cache.len(); n != 1 {
				t.Fatalf("cache has %d entries after one verify, want 1", n)
			}
			clock.Set(t0.Add(testTTL - time.Nanosecond)) // just before exp
			if c, err := s.Verify(tok); err != nil || c != first {
				t.Fatalf("before exp: got %p, %v; want the cached claims %p", c, err, first)
			}
			clock.Set(t0.Add(testTTL)) // at exp, still inside the leeway
			c, err := s.Verify(tok)
			if err != nil {
				t.Fatalf("at exp within leeway: %v", err)
			}
			if c == first {
				t.Fatal("cache entry served at exp; want a full verification")
			}
			if n := s.cache.len(); n != 0 {
				t.Errorf("cache has %d entries after exp, want 0 (stale entry dropped, not re-added)", n)
			}
			clock.Set(t0.Add(testTTL + testLeeway))
			_, err = s.Verify(tok)
			wantInvalid(t, err, ErrExpired)
		})
	}
}

func TestCacheWithoutLeewayRefusesAtExp(t *testing.T) {
	m := genKeys(t)
	clock := newClock(t0)
	s := newService(t, clock, []*Key{m.key(t, AlgEdDSA, "")}, func(c *Config) { c.Leeway = 0 })
	tok := issue(t, s, "j", t0)
	if _, err := s.Verify(tok); err != nil {
		t.Fatal(err)
	}
	clock.Set(t0.Add(testTTL))
	_, err := s.Verify(tok)
	wantInvalid(t, err, ErrExpired)
}

func TestCacheNotServedBeforeValid(t *testing.T) {
	c := newVerifiedCache(8)
	claims := &Claims{}
	c.put("tok", claims, 100, 200)
	tests := []struct {
		now       int64
		wantHit   bool
		wantStale bool
	}{
		{99, false, false},
		{100, true, false},
		{199, true, false},
		{200, false, true},
		{1 << 62, false, true},
	}
	for _, tt := range tests {
		got, stale := c.get("tok", tt.now)
		if (got == claims) != tt.wantHit || stale != tt.wantStale {
			t.Errorf("get at %d = hit %v stale %v; want %v %v", tt.now, got == claims, stale, tt.wantHit, tt.wantStale)
		}
	}
	c.remove("tok", 150) // not yet expired: kept
	if c.len() != 1 {
		t.Error("remove dropped a live entry")
	}
	c.remove("tok", 200)
	if c.len() != 0 {
		t.Error("remove kept an expired entry")
	}
}

func TestCacheBounded(t *testing.T) {
	for _, size := range []int{1, 3, 64, 100, 1000, 8192} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			c := newVerifiedCache(size)
			for i := range 3 * size {
				c.put(fmt.Sprintf("tok-%d", i), &Claims{}, 0, int64(1000+i))
			}
			if n := c.len(); n > size || n < size/2 {
				t.Errorf("cache of size %d holds %d entries after %d puts", size, n, 3*size)
			}
			// Every index entry points at the slot holding its key.
			for i := range c.shards {
				s := &c.shards[i]
				if len(s.index) != len(s.slots) {
					t.Fatalf("shard %d: %d index entries, %d slots", i, len(s.index), len(s.slots))
				}
				for tok, j := range s.index {
					if s.slots[j].token != tok {
						t.Fatalf("shard %d: index %q → slot %d holding %q", i, tok, j, s.slots[j].token)
					}
				}
			}
		})
	}
}

func TestServiceCacheBounded(t *testing.T) {
	m := genKeys(t)
	clock := newClock(t0)
	s := newService(t, clock, []*Key{m.key(t, AlgEdDSA, "")}, func(c *Config) { c.CacheSize = 16 })
	var toks []string
	for i := range 100 {
		toks = append(toks, issue(t, s, fmt.Sprint("j", i), t0))
	}
	for round := range 2 {
		for i, tok := range toks {
			c, err := s.Verify(tok)
			if err != nil || c.ID != fmt.Sprint("j", i) {
				t.Fatalf("round %d token %d: %v, %+v", round, i, err, c)
			}
		}
	}
	if n := s.cache.len(); n > 16 {
		t.Errorf("cache holds %d entries, limit 16", n)
	}
}

func TestCacheKeyIsOwned(t *testing.T) {
	m := genKeys(t)
	s := newService(t, newClock(t0), []*Key{m.key(t, AlgEdDSA, "")}, nil)
	tok := issue(t, s, "j", t0)
	// A caller may hand Verify a zero-copy view of a request buffer that is
	// reused afterwards; the cache must keep its own copy of the key.
	buf := []byte(tok)
	view := unsafe.String(&buf[0], len(buf))
	first, err := s.Verify(view)
	if err != nil {
		t.Fatal(err)
	}
	for i := range buf {
		buf[i] = 'x'
	}
	if c, err := s.Verify(tok); err != nil || c != first {
		t.Errorf("after the caller's buffer changed: %p, %v; want the cached claims %p", c, err, first)
	}
	if _, err := s.Verify(view); err == nil {
		t.Error("the overwritten buffer verified")
	}
}

func TestCacheDisabledAndHS256(t *testing.T) {
	m := genKeys(t)
	clock := newClock(t0)
	if s := newService(t, clock, []*Key{m.key(t, AlgEdDSA, "")}, func(c *Config) { c.CacheSize = -1 }); s.cache != nil {
		t.Error("CacheSize < 0 did not disable the cache")
	}
	// HS256 tokens are cached like any other, and a tampered copy of a
	// cached token is still refused.
	hs := newService(t, clock, []*Key{m.key(t, AlgHS256, "hs")}, nil)
	tok := issue(t, hs, "h", t0)
	for range 3 {
		if _, err := hs.Verify(tok); err != nil {
			t.Fatal(err)
		}
	}
	if n := hs.cache.len(); n != 1 {
		t.Errorf("HS256 token cached %d times, want once", n)
	}
	if _, err := hs.Verify(tok[:len(tok)-2] + "AA"); err == nil {
		t.Error("a tampered copy of a cached HS256 token verified")
	}
}

func TestCacheLookupDoesNotAllocate(t *testing.T) {
	m := genKeys(t)
	s := newService(t, newClock(t0), []*Key{m.key(t, AlgEdDSA, "")}, nil)
	tok := issue(t, s, "j", t0)
	if _, err := s.Verify(tok); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(200, func() {
		if _, err := s.Verify(tok); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("cached Verify allocates %v times per call", n)
	}
	miss := strings.Repeat("x", 500)
	if n := testing.AllocsPerRun(200, func() { s.cache.get(miss, 0) }); n != 0 {
		t.Errorf("cache miss allocates %v times per call", n)
	}
	if n := testing.AllocsPerRun(200, func() { _, _ = s.Verify(strings.Repeat("A", MaxTokenSize+1)[:MaxTokenSize+1]) }); n > 1 {
		// The argument itself may allocate once; Verify must not add more.
		t.Errorf("refusing an oversize token allocates %v times", n)
	}
}

func TestCacheConcurrent(t *testing.T) {
	m := genKeys(t)
	clock := newClock(t0)
	s := newService(t, clock, []*Key{m.key(t, AlgEdDSA, "")}, func(c *Config) { c.CacheSize = 8 })
	var toks []string
	for i := range 16 {
		toks = append(toks, issue(t, s, fmt.Sprint("j", i), t0.Add(time.Duration(i)*time.Second)))
	}
	clock.Set(t0.Add(20 * time.Second))
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 150 {
				k := (i/3*7 + g) % len(toks) // repeats, so some calls hit
				c, err := s.Verify(toks[k])
				if err != nil {
					errs <- fmt.Errorf("goroutine %d token %d: %w", g, k, err)
					return
				}
				if c.ID != fmt.Sprint("j", k) {
					errs <- fmt.Errorf("token %d returned the claims of %s", k, c.ID)
					return
				}
				if g == 0 && i%30 == 0 {
					clock.Advance(time.Second)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := s.cache.len(); n > 8 {
		t.Errorf("cache holds %d entries, limit 8", n)
	}
	// Once past every exp (and the leeway) nothing is served.
	clock.Set(t0.Add(time.Hour))
	for _, tok := range toks {
		_, err := s.Verify(tok)
		wantInvalid(t, err, ErrExpired)
	}
}
