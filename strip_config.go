package wechatauth

import (
	"net/http"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/caddyserver/caddy/v2"

	"github.com/wxauth/caddy-wechat-auth/internal/handler"
	"github.com/wxauth/caddy-wechat-auth/internal/websession"
)

// configPrefixes holds, for each loaded config, the identity header
// prefixes and the web session cookie names of all its wechat_auth
// handlers. A guard that fails with `errors caddy` removes those headers
// and cookies before the request goes to the site's handle_errors routes:
// Caddy sorts the wechat_auth directives' guards ahead of their strip
// steps, so when the first guard fails, the strip steps of the other
// prefixes have not run, and handle_errors may proxy to an upstream that
// trusts one of them (or should never see a session's cookies).
var configPrefixes = &prefixRegistry{sets: make(map[any]*prefixSet)}

// prefixRegistry maps a config (the metrics registry Caddy makes for
// each config load, the one value all its modules share) to its prefixes.
type prefixRegistry struct {
	mu   sync.Mutex
	sets map[any]*prefixSet
}

// prefixSet is the folded identity header prefixes and the web cookie
// names of one config.
type prefixSet struct {
	refs    int                      // handlers holding it; guarded by prefixRegistry.mu
	folded  atomic.Pointer[[]string] // replaced, never changed in place
	cookies atomic.Pointer[[]string] // access cookie names of web blocks; likewise
}

// configKey is what tells one loaded config from another: nil for a
// context not made by Caddy (unit tests), whose handlers share nothing.
func configKey(ctx caddy.Context) any {
	if reg := ctx.GetMetricsRegistry(); reg != nil {
		return reg
	}
	return nil
}

// add records a folded prefix, and the access cookie name of a web block
// unless it is empty, for the config of ctx and returns the config's set;
// the caller releases it with release at Cleanup.
func (p *prefixRegistry) add(ctx caddy.Context, folded, cookie string) *prefixSet {
	key := configKey(ctx)
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.sets[key]
	if key == nil || s == nil {
		s = new(prefixSet)
		s.folded.Store(&[]string{})
		s.cookies.Store(&[]string{})
		if key != nil {
			p.sets[key] = s
		}
	}
	s.refs++
	addTo(&s.folded, folded)
	if cookie != "" {
		addTo(&s.cookies, cookie)
	}
	return s
}

// addTo adds v to the list l points to, if it is not there yet, by
// replacing the list.
func addTo(l *atomic.Pointer[[]string], v string) {
	if old := *l.Load(); !slices.Contains(old, v) {
		next := append(slices.Clip(old), v)
		l.Store(&next)
	}
}

// release lets go of a set add returned; the last release forgets it.
func (p *prefixRegistry) release(s *prefixSet) {
	if s == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if s.refs--; s.refs > 0 {
		return
	}
	for k, v := range p.sets {
		if v == s {
			delete(p.sets, k)
		}
	}
}

// strip removes from hdr every header with one of the config's prefixes,
// and the session cookies of the config's web blocks.
func (s *prefixSet) strip(hdr http.Header) {
	if s == nil {
		return
	}
	for _, name := range *s.cookies.Load() {
		websession.Cookies{Name: name}.Strip(hdr)
	}
	for _, p := range *s.folded.Load() {
		handler.StripPrefixed(hdr, p)
	}
}
