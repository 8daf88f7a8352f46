package wechatauth

import (
	"fmt"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/wxauth/caddy-wechat-auth/internal/handler"
)

// limiterPool holds the login rate limiters of this process, one per app
// and limit, shared by every wechat_auth handler with that app and limit
// and kept across config reloads (the new config takes its reference
// before the old one lets go of its own), so a reload does not hand every
// client a fresh allowance.
var limiterPool = caddy.NewUsagePool()

// pooledLimiter is a login rate limiter with its background sweep; the
// sweep stops when the last handler using it is cleaned up.
type pooledLimiter struct {
	limiter *handler.RateLimiter
	stop    func()
}

// Destruct stops the sweep.
func (p *pooledLimiter) Destruct() error {
	p.stop()
	return nil
}

// loginLimiterKey names the shared limiter of app with limit l.
func loginLimiterKey(app string, l *LoginRateLimit) string {
	return fmt.Sprintf("%s\x00%d\x00%d", app, l.Requests, time.Duration(l.Window))
}

// acquireLoginLimiter returns the shared login rate limiter of app with
// limit l, creating it (and starting its sweep, on clock) on first use.
// The caller releases it with limiterPool.Delete(key).
func acquireLoginLimiter(app string, l *LoginRateLimit, clock func() time.Time) (*handler.RateLimiter, string, error) {
	key := loginLimiterKey(app, l)
	v, _, err := limiterPool.LoadOrNew(key, func() (caddy.Destructor, error) {
		rl := handler.NewRateLimiter(l.Requests, time.Duration(l.Window),
			// The limiter outlives the config that made it: log with
			// Caddy's default logger, not the config's.
			handler.WithLogger(caddy.Log().Named("http.handlers.wechat_auth")))
		return &pooledLimiter{limiter: rl, stop: rl.StartSweeper(rl.SweepInterval(), clock)}, nil
	})
	if err != nil {
		return nil, "", fmt.Errorf("login_rate_limit: %w", err)
	}
	return v.(*pooledLimiter).limiter, key, nil
}

// Interface guards
var (
	_ caddy.Destructor = (*pooledLimiter)(nil)
)
