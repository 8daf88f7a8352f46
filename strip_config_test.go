package wechatauth

import (
	"context"
	"net/http"
	"slices"
	"testing"

	"github.com/caddyserver/caddy/v2"
)

// TestConfigPrefixes: the handlers of one config share one set of
// prefixes and web cookie names, another config has its own, and the last release forgets it.
func TestConfigPrefixes(t *testing.T) {
	c1, cancel1 := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel1()
	c2, cancel2 := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel2()
	reg := &prefixRegistry{sets: make(map[any]*prefixSet)}

	a := reg.add(c1, "x-wechat-", "")
	b := reg.add(c1, "x-app-b-", "wb")
	again := reg.add(c1, "x-wechat-", "")
	other := reg.add(c2, "x-other-", "wo")
	if a != b || a != again || a == other {
		t.Fatal("want one set per config")
	}
	if got := *a.folded.Load(); !slices.Equal(got, []string{"x-wechat-", "x-app-b-"}) {
		t.Fatalf("prefixes of the first config: %v", got)
	}
	hdr := http.Header{
		"X-Wechat-User-Id": {"1"}, "X_app_b_openid": {"o"}, "X-Other-User-Id": {"2"}, "X-Kept": {"k"},
		"Cookie": {"wb=t; wb_refresh=r; wo=other; theirs=1"},
	}
	a.strip(hdr)
	if c := hdr["Cookie"]; len(c) != 1 || c[0] != "wo=other; theirs=1" {
		t.Fatalf("cookies after strip: %q", c)
	}
	delete(hdr, "Cookie")
	if len(hdr) != 2 || hdr["X-Other-User-Id"] == nil || hdr["X-Kept"] == nil {
		t.Fatalf("after strip: %v", hdr)
	}

	// Without a Caddy context nothing is shared.
	if n1, n2 := reg.add(caddy.Context{}, "x-a-", ""), reg.add(caddy.Context{}, "x-b-", ""); n1 == n2 || len(*n1.folded.Load()) != 1 {
		t.Fatal("handlers outside a Caddy config must not share prefixes")
	}

	for _, s := range []*prefixSet{a, b, again} {
		if len(reg.sets) != 2 {
			t.Fatalf("sets before the last release: %d", len(reg.sets))
		}
		reg.release(s)
	}
	reg.release(other)
	reg.release(nil)
	if len(reg.sets) != 0 {
		t.Fatalf("sets left after every release: %d", len(reg.sets))
	}
}
