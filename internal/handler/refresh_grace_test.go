package handler

import (
	"strings"
	"testing"
	"time"
)

// withGrace rebuilds the harness's handler with the retry window grace.
func (hs *harness) withGrace(grace time.Duration) {
	hs.t.Helper()
	cfg := hs.h.cfg
	cfg.RefreshGrace = &grace
	h, err := New(cfg)
	if err != nil {
		hs.t.Fatal(err)
	}
	hs.h = h
}

func TestRefreshGrace(t *testing.T) {
	tests := []struct {
		name    string
		grace   *time.Duration // nil: not configured
		retryAt time.Duration  // after the first refresh
		retried bool           // true: same pair; false: reuse, session revoked
	}{
		{name: "default, inside", retryAt: DefaultRefreshGrace - time.Second, retried: true},
		{name: "default, after", retryAt: DefaultRefreshGrace + time.Millisecond},
		{name: "strict, at once", grace: durPtr(0), retryAt: time.Millisecond},
		{name: "strict, a nanosecond later", grace: durPtr(0), retryAt: time.Nanosecond},
		{name: "3s, inside", grace: durPtr(3 * time.Second), retryAt: 3 * time.Second, retried: true},
		{name: "3s, after", grace: durPtr(3 * time.Second), retryAt: 3*time.Second + time.Millisecond},
		{name: "60s, inside", grace: durPtr(MaxRefreshGrace), retryAt: 59 * time.Second, retried: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hs := newHarness(t)
			if tt.grace != nil {
				hs.withGrace(*tt.grace)
			}
			_, rt := hs.login("o1")
			first := hs.refresh(rt)
			want(t, first, 200, "")
			hs.clock.Advance(tt.retryAt)
			again := hs.refresh(rt)
			if tt.retried {
				want(t, again, 200, "")
				if again.body["token"] != first.body["token"] || again.body["refresh_token"] != first.body["refresh_token"] {
					t.Fatal("retry inside the window got another pair")
				}
				want(t, hs.guard(first.body["token"].(string)), 200, "")
				return
			}
			want(t, again, 401, CodeInvalidGrant)
			// Reuse revokes the session: the pair of the first refresh is dead.
			want(t, hs.guard(first.body["token"].(string)), 401, CodeInvalidToken)
			want(t, hs.refresh(first.body["refresh_token"].(string)), 401, CodeInvalidGrant)
		})
	}
}

func TestRefreshGraceBounds(t *testing.T) {
	hs := newHarness(t)
	for _, g := range []time.Duration{-time.Second, MaxRefreshGrace + time.Nanosecond, time.Hour} {
		cfg := hs.h.cfg
		cfg.RefreshGrace = &g
		if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), "refresh grace") {
			t.Errorf("grace %s: err = %v, want a refresh grace error", g, err)
		}
	}
}

func durPtr(d time.Duration) *time.Duration { return &d }
