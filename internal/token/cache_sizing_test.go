package token

import "testing"

// TestCacheShardSizing: the verified-token cache is split into up to 32
// shards with at least 64 slots each, and all shards together hold at
// most the configured size.
func TestCacheShardSizing(t *testing.T) {
	tests := []struct {
		size, shards int
	}{
		{1, 1},
		{64, 1},
		{127, 1},
		{128, 2},
		{255, 2},
		{256, 4},
		{1000, 8},
		{2048, 32},
		{defaultCacheSize, 32},
		{1 << 20, 32},
	}
	for _, tt := range tests {
		c := newVerifiedCache(tt.size)
		if len(c.shards) != tt.shards {
			t.Errorf("size %d: %d shards, want %d", tt.size, len(c.shards), tt.shards)
			continue
		}
		if c.mask != uint64(tt.shards-1) {
			t.Errorf("size %d: mask %#x, want %#x", tt.size, c.mask, tt.shards-1)
		}
		total := 0
		for i := range c.shards {
			l := c.shards[i].limit
			if l < 1 {
				t.Errorf("size %d: shard %d holds %d", tt.size, i, l)
			}
			total += l
		}
		if total > tt.size || total < tt.size-tt.shards+1 {
			t.Errorf("size %d: shards hold %d in all", tt.size, total)
		}
	}
}
