package handler

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/wxauth/caddy-wechat-auth/internal/token"
	"github.com/wxauth/caddy-wechat-auth/store"
)

// countingMetrics records every observation as "kind/label".
type countingMetrics struct {
	mu sync.Mutex
	n  map[string]int
}

func (m *countingMetrics) add(k string, n int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.n == nil {
		m.n = map[string]int{}
	}
	m.n[k] += n
}

func (m *countingMetrics) Login(r string)          { m.add("login/"+r, 1) }
func (m *countingMetrics) Guard(r Result)          { m.add("guard/"+r.String(), 1) }
func (m *countingMetrics) Refresh(r string)        { m.add("refresh/"+r, 1) }
func (m *countingMetrics) Revoked(r string, n int) { m.add("revoked/"+r, n) }

func (m *countingMetrics) check(t *testing.T, want map[string]int) {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	for k, v := range want {
		if m.n[k] != v {
			t.Errorf("%s = %d, want %d (all: %v)", k, m.n[k], v, m.n)
		}
	}
	for k, v := range m.n {
		if _, ok := want[k]; !ok && v != 0 {
			t.Errorf("unexpected %s = %d", k, v)
		}
	}
}

func metricsHarness(t *testing.T) (*harness, *countingMetrics) {
	t.Helper()
	hs := newHarness(t)
	m := &countingMetrics{}
	hs.h.metrics = m
	return hs, m
}

func TestMetricsLoginAndBan(t *testing.T) {
	hs, m := metricsHarness(t)
	hs.login("o1")
	a2, _ := hs.login("o1")
	hs.login("o2")
	want(t, hs.call("POST", "/wx/login", `{"code":"unknown"}`), 400, CodeInvalidCode)
	want(t, hs.call("POST", "/wx/login", `{}`), 400, CodeInvalidRequest)

	// A banned user: every session revoked at once, login refused.
	u, err := hs.st.UserByOpenID(context.Background(), testApp, "o1")
	if err != nil {
		t.Fatal(err)
	}
	_, revoked, err := hs.h.Ban(context.Background(), u.ID, "spam")
	if err != nil || len(revoked) != 2 {
		t.Fatalf("Ban: %v, %d revoked", err, len(revoked))
	}
	want(t, hs.guard(a2), 401, CodeInvalidToken)
	hs.wx.addCode("banned-code", "o1", "")
	want(t, hs.call("POST", "/wx/login", `{"code":"banned-code"}`), 403, CodeUserBanned)
	if _, err := hs.h.Unban(context.Background(), u.ID); err != nil {
		t.Fatal(err)
	}
	hs.login("o1")

	m.check(t, map[string]int{
		"login/ok_new": 2, "login/ok_returning": 2, "login/invalid_code": 1,
		"login/invalid_request": 1, "login/user_banned": 1, "revoked/ban": 2, "guard/revoked": 1,
	})
}

func TestMetricsRefreshAndLogout(t *testing.T) {
	hs, m := metricsHarness(t)
	_, rt := hs.login("o1")
	want(t, hs.refresh(rt), 200, "")
	want(t, hs.refresh(rt), 200, "") // retried within the grace period
	hs.clock.Advance(DefaultRefreshGrace + time.Second)
	want(t, hs.refresh(rt), 401, CodeInvalidGrant) // reuse: session revoked
	want(t, hs.refresh("nonsense"), 401, CodeInvalidGrant)

	a1, _ := hs.login("o2")
	hs.login("o2")
	a3, _ := hs.login("o2")
	want(t, hs.call("POST", "/wx/logout", `{}`, "Authorization", "Bearer "+a1), 200, "")
	want(t, hs.call("POST", "/wx/logout", `{}`, "Authorization", "Bearer "+a1), 200, "") // again: nothing new
	want(t, hs.call("POST", "/wx/logout", `{"all":true}`, "Authorization", "Bearer "+a3), 200, "")

	// Operator revocations.
	a4, _ := hs.login("o3")
	c, err := hs.h.cfg.Tokens.Verify(a4)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := hs.h.RevokeSession(context.Background(), c.SessionID); err != nil {
		t.Fatal(err)
	}
	want(t, hs.guard(a4), 401, CodeInvalidToken)
	if _, err := hs.h.RevokeSession(context.Background(), c.SessionID); err != nil {
		t.Fatal(err)
	}
	if _, err := hs.h.RevokeSession(context.Background(), "no-such-session"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("RevokeSession of an unknown session: %v", err)
	}

	m.check(t, map[string]int{
		"login/ok_new": 3, "login/ok_returning": 2, "guard/revoked": 1,
		"refresh/ok": 1, "refresh/retry": 1, "refresh/reuse_detected": 1, "refresh/invalid": 1,
		"revoked/reuse": 1, "revoked/logout": 1, "revoked/logout_all": 2, "revoked/admin": 1,
	})
}

// TestMetricsGuard: each guard decision is counted once under its result;
// endpoints and preflights are not guard decisions.
func TestMetricsGuard(t *testing.T) {
	hs, m := metricsHarness(t)
	access, _ := hs.login("o1")
	for range 3 {
		want(t, hs.guard(access), 200, "")
	}
	want(t, hs.guard("a.b.c"), 401, CodeInvalidToken)
	want(t, hs.call("GET", "/x", ""), 401, CodeInvalidToken)
	want(t, hs.call("OPTIONS", "/x", "", "Access-Control-Request-Method", "GET"), 200, "")
	want(t, hs.call("GET", "/wx/profile", "", "Authorization", "Bearer "+access), 200, "")
	expired := hs.issueWith(15*time.Minute, token.Subject{UserID: 1, SessionID: "sid-x", OpenID: "o1", AppID: testApp})
	hs.clock.Advance(16 * time.Minute)
	want(t, hs.guard(expired), 401, CodeInvalidToken)
	m.check(t, map[string]int{"login/ok_new": 1, "guard/ok": 3, "guard/invalid": 1, "guard/missing": 1, "guard/expired": 1})
}
