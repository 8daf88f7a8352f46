package wechatauth

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/wxauth/caddy-wechat-auth/internal/handler"
	"github.com/wxauth/caddy-wechat-auth/store"
)

var metricsTestRuns atomic.Int32

// TestMetricsSurviveNewRegistries registers the collectors on several
// registries, as config reloads do, and checks that counts go on and
// every registry serves them.
func TestMetricsSurviveNewRegistries(t *testing.T) {
	// The collectors live as long as the process: a fresh app id per run
	// keeps this run's counts apart from an earlier run's (-count=N).
	app := fmt.Sprintf("wxmetricsunit%04d", metricsTestRuns.Add(1))
	var regs []*prometheus.Registry
	for range 3 {
		reg := prometheus.NewPedanticRegistry()
		for range 2 { // a second wechat_auth block in the same config
			if err := registerMetrics(reg); err != nil {
				t.Fatalf("registering: %v", err)
			}
		}
		regs = append(regs, reg)
		m := newAppMetrics(app)
		m.Guard(handler.ResultOK)
		m.Guard(handler.ResultRevoked)
		m.Login(handler.LoginOKNew)
		m.Login("some_future_code")
		m.Refresh(handler.RefreshReuseDetected)
		m.Revoked(store.ReasonBan, 3)
		m.Revoked(store.ReasonAdmin, 0)
	}
	observeWeChat("jscode2session", "ok", 30*time.Millisecond)
	for i, reg := range regs {
		// Every registry serves every family (other tests of this process
		// may have added series of their own apps).
		for _, name := range []string{"logins_total", "guard_requests_total", "refreshes_total", "revocations_total", "users"} {
			if n, err := testutil.GatherAndCount(reg, "caddy_wechat_auth_"+name); err != nil || n == 0 {
				t.Errorf("registry %d: caddy_wechat_auth_%s: %d series, %v", i, name, n, err)
			}
		}
		for _, c := range []struct {
			collector prometheus.Collector
			want      float64
		}{
			{metricGuard.WithLabelValues(app, "ok"), 3},
			{metricGuard.WithLabelValues(app, "revoked"), 3},
			{metricLogins.WithLabelValues(app, "ok_new"), 3},
			{metricLogins.WithLabelValues(app, "some_future_code"), 3},
			{metricRefreshes.WithLabelValues(app, "reuse_detected"), 3},
			{metricRevocations.WithLabelValues(app, "ban"), 9},
			{metricRevocations.WithLabelValues(app, "admin"), 0},
			{metricUsers.WithLabelValues(app), 3},
		} {
			if got := testutil.ToFloat64(c.collector); got != c.want {
				t.Errorf("registry %d: %v = %v, want %v", i, c.collector, got, c.want)
			}
		}
		if n, err := testutil.GatherAndCount(reg, "caddy_wechat_auth_wechat_request_duration_seconds"); err != nil || n < 1 {
			t.Errorf("registry %d: wechat duration histogram: %d series, %v", i, n, err)
		}
	}
}

// TestRegisterMetricsConflict: another collector under one of our names
// is an error, not a silent mix.
func TestRegisterMetricsConflict(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewGauge(prometheus.GaugeOpts{Name: "caddy_wechat_auth_users", Help: "impostor"}))
	if err := registerMetrics(reg); err == nil {
		t.Fatal("registering next to a conflicting collector succeeded")
	}
	if err := registerMetrics(nil); err != nil {
		t.Fatalf("no registry: %v", err)
	}
}

func TestGuardCountingDoesNotAllocate(t *testing.T) {
	m := newAppMetrics("wxmetricsalloc001")
	if n := testing.AllocsPerRun(100, func() { m.Guard(handler.ResultOK) }); n != 0 {
		t.Fatalf("counting a guard outcome allocates %v times", n)
	}
}
