package wechatauth

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/wxauth/caddy-wechat-auth/internal/handler"
	"github.com/wxauth/caddy-wechat-auth/store"
)

// The collectors are created once per process and registered on the
// metrics registry of every config that uses wechat_auth, so counts go on
// across config reloads (each reload brings a new registry) and two
// wechat_auth blocks share them. Label values come from small fixed sets:
// never a user, an openid or a token.
var (
	metricLogins = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "wechat_auth", Name: "logins_total",
		Help: "Login attempts by app and result (ok_new, ok_returning, or the error code answered).",
	}, []string{"app_id", "result"})
	metricGuard = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "wechat_auth", Name: "guard_requests_total",
		Help: "Requests that reached the token guard, by app and result (ok, anonymous, missing, invalid, expired, revoked).",
	}, []string{"app_id", "result"})
	metricRefreshes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "wechat_auth", Name: "refreshes_total",
		Help: "Refresh-token rotations by app and result (ok, retry, reuse_detected, invalid).",
	}, []string{"app_id", "result"})
	metricRevocations = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "wechat_auth", Name: "revocations_total",
		Help: "Sessions revoked, by app and reason (logout, logout_all, reuse, ban, admin).",
	}, []string{"app_id", "reason"})
	metricWeChatRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "wechat_auth", Name: "wechat_requests_total",
		Help: "HTTP requests to WeChat's server API, by API and result.",
	}, []string{"api", "result"})
	metricWeChatDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "caddy", Subsystem: "wechat_auth", Name: "wechat_request_duration_seconds",
		Help:    "Duration of HTTP requests to WeChat's server API, by API.",
		Buckets: []float64{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10},
	}, []string{"api"})
	metricUsers = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "caddy", Subsystem: "wechat_auth", Name: "users",
		Help: "Users of the app in its store: counted from the store in the background at start and every 10 minutes, plus the users this process created since the last count (other instances' new users show at the next count).",
	}, []string{"app_id"})

	allCollectors = []prometheus.Collector{
		metricLogins, metricGuard, metricRefreshes, metricRevocations,
		metricWeChatRequests, metricWeChatDuration, metricUsers,
	}
)

// registerMetrics registers the collectors on reg (nil: metrics are not
// collected). A collector that is already registered there is fine.
func registerMetrics(reg *prometheus.Registry) error {
	if reg == nil {
		return nil
	}
	for _, c := range allCollectors {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return err
			}
		}
	}
	return nil
}

// provisionMetrics registers the collectors on the config's registry and
// returns the app's counters. It does no store I/O: the users gauge is
// counted in the background (sharedDB.countUsers). Without a registry (a
// context not made by Caddy) nothing is collected and it returns nil.
func provisionMetrics(ctx caddy.Context, app string) (*appMetrics, error) {
	reg := ctx.GetMetricsRegistry()
	if reg == nil {
		return nil, nil
	}
	if err := registerMetrics(reg); err != nil {
		return nil, fmt.Errorf("registering metrics: %w", err)
	}
	return newAppMetrics(app), nil
}

// Retry delays of the first users count while the store does not answer.
const (
	usersCountRetryMin = time.Second
	usersCountRetryMax = 30 * time.Second
)

// countUsers keeps the app's users gauge at the store's figure: counted
// now in the background, retried until the store answers, then again on
// every sweep (recountUsers). Nothing is done when the store already
// counts the app (a config reload), so a reload does no store I/O for it.
func (d *sharedDB) countUsers(app string) {
	d.mu.Lock()
	if d.counted[app] {
		d.mu.Unlock()
		return
	}
	d.counted[app] = true
	d.mu.Unlock()
	d.bg.Add(1)
	go func() {
		defer d.bg.Done()
		delay := d.countRetry
		for {
			err := d.countAppUsers(d.bgCtx, app)
			if err == nil || d.bgCtx.Err() != nil {
				return
			}
			if ce := d.logger.Check(zap.DebugLevel, "counting users for the users gauge; will retry"); ce != nil {
				ce.Write(zap.String("app_id", app), zap.Duration("retry_in", delay), zap.Error(err))
			}
			t := time.NewTimer(delay)
			select {
			case <-d.bgCtx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			delay = min(2*delay, usersCountRetryMax)
		}
	}()
}

// recountUsers sets the users gauge of every app the store counts to the
// store's figure; a failure leaves the gauge as it is until the next run.
func (d *sharedDB) recountUsers(ctx context.Context) {
	d.mu.Lock()
	apps := make([]string, 0, len(d.counted))
	for app := range d.counted {
		apps = append(apps, app)
	}
	d.mu.Unlock()
	for _, app := range apps {
		if err := d.countAppUsers(ctx, app); err != nil && ctx.Err() == nil {
			d.logger.Warn("counting users for the users gauge", zap.String("app_id", app), zap.Error(err))
		}
	}
}

// countAppUsers sets the app's users gauge from the store.
func (d *sharedDB) countAppUsers(ctx context.Context, app string) error {
	stats, err := d.store.Stats(ctx, app, d.now())
	if err != nil {
		return err
	}
	metricUsers.WithLabelValues(app).Set(float64(stats.Users))
	return nil
}

// observer is m as the handler's Metrics; nil (none) when m is nil.
func (m *appMetrics) observer() handler.Metrics {
	if m == nil {
		return nil
	}
	return m
}

// Label values known in advance; their counters are made once per app so
// that counting is an atomic add with no lookup in the vector.
var (
	loginResults = []string{
		handler.LoginOKNew, handler.LoginOKReturning,
		handler.CodeInvalidRequest, handler.CodeUnsupportedMediaType, handler.CodePayloadTooLarge,
		handler.CodeMethodNotAllowed, handler.CodeInvalidCode, handler.CodeUserBlocked,
		handler.CodeRateLimited, handler.CodeWeChatUnavailable, handler.CodeWeChatError,
		handler.CodeUserBanned, handler.CodeInternalError, "store_unavailable",
	}
	refreshResults    = []string{handler.RefreshOK, handler.RefreshRetry, handler.RefreshReuseDetected, handler.RefreshInvalid}
	revocationReasons = []string{store.ReasonLogout, store.ReasonLogoutAll, store.ReasonReuse, store.ReasonBan, store.ReasonAdmin}
)

// appMetrics is the handler.Metrics of one app: the app's counters,
// curried once.
type appMetrics struct {
	app         string
	guard       [handler.NumResults]prometheus.Counter
	logins      map[string]prometheus.Counter
	refreshes   map[string]prometheus.Counter
	revocations map[string]prometheus.Counter
	users       prometheus.Gauge
}

func newAppMetrics(app string) *appMetrics {
	m := &appMetrics{
		app:         app,
		logins:      curry(metricLogins, app, loginResults),
		refreshes:   curry(metricRefreshes, app, refreshResults),
		revocations: curry(metricRevocations, app, revocationReasons),
		users:       metricUsers.WithLabelValues(app),
	}
	for _, r := range handler.GuardResults {
		m.guard[r] = metricGuard.WithLabelValues(app, r.String())
	}
	return m
}

func curry(v *prometheus.CounterVec, app string, values []string) map[string]prometheus.Counter {
	m := make(map[string]prometheus.Counter, len(values))
	for _, val := range values {
		m[val] = v.WithLabelValues(app, val)
	}
	return m
}

// counter returns the curried counter of value, or the vector's child for
// a value not known in advance (still from a fixed set in the code).
func (m *appMetrics) counter(curried map[string]prometheus.Counter, v *prometheus.CounterVec, value string) prometheus.Counter {
	if c, ok := curried[value]; ok {
		return c
	}
	return v.WithLabelValues(m.app, value)
}

// Guard counts a guard outcome: one atomic add, no allocation.
func (m *appMetrics) Guard(r handler.Result) {
	if int(r) >= 0 && int(r) < len(m.guard) {
		if c := m.guard[r]; c != nil {
			c.Inc()
		}
	}
}

// Login counts a login result; a new user also counts in the users gauge.
func (m *appMetrics) Login(result string) {
	m.counter(m.logins, metricLogins, result).Inc()
	if result == handler.LoginOKNew {
		m.users.Inc()
	}
}

// Refresh counts a refresh result.
func (m *appMetrics) Refresh(result string) {
	m.counter(m.refreshes, metricRefreshes, result).Inc()
}

// Revoked counts n sessions revoked for reason.
func (m *appMetrics) Revoked(reason string, n int) {
	if n > 0 {
		m.counter(m.revocations, metricRevocations, reason).Add(float64(n))
	}
}

// observeWeChat counts one HTTP request to WeChat and its duration.
func observeWeChat(api, result string, d time.Duration) {
	metricWeChatRequests.WithLabelValues(api, result).Inc()
	metricWeChatDuration.WithLabelValues(api).Observe(d.Seconds())
}

// Interface guard
var _ handler.Metrics = (*appMetrics)(nil)
