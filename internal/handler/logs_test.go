package handler

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// TestEndpointLogs: a login is logged at info with the user id; a
// refresh-token reuse (a likely theft) at warn; a WeChat failure at error;
// a rate-limited login at warn. No entry carries a code, a token or a
// session_key.
func TestEndpointLogs(t *testing.T) {
	hs := newHarness(t)
	core, logs := observer.New(zapcore.DebugLevel)
	cfg := hs.h.cfg
	cfg.Logger = zap.New(core)
	cfg.LoginLimit = NewRateLimiter(3, time.Minute)
	h, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	hs.h = h

	access, rt := hs.login("o1") // code-1
	want(t, hs.refresh(rt), 200, "")
	hs.clock.Advance(DefaultRefreshGrace + time.Second)
	want(t, hs.refresh(rt), 401, CodeInvalidGrant)
	hs.wx.err = errors.New("upstream exploded")
	want(t, hs.call("POST", "/wx/login", `{"code":"code-x"}`), 502, CodeWeChatError)
	hs.wx.err = nil
	want(t, hs.call("POST", "/wx/login", `{"code":"code-y"}`), 400, CodeInvalidCode)
	want(t, hs.call("POST", "/wx/login", `{"code":"code-z"}`), 429, CodeRateLimited)

	type entry struct {
		level zapcore.Level
		msg   string
		field string
	}
	wants := []entry{
		{zapcore.InfoLevel, "wechat_auth login", "user_id"},
		{zapcore.WarnLevel, "wechat_auth refresh token reused; session revoked", "user_id"},
		{zapcore.ErrorLevel, "wechat_auth endpoint error", "error=" + CodeWeChatError},
		{zapcore.DebugLevel, "wechat_auth endpoint error", "error=" + CodeInvalidCode},
		{zapcore.WarnLevel, "wechat_auth endpoint error", "error=" + CodeRateLimited},
	}
	all := logs.All()
	for _, w := range wants {
		found := false
		for _, e := range all {
			if e.Level != w.level || e.Message != w.msg {
				continue
			}
			m := e.ContextMap()
			name, val, hasVal := strings.Cut(w.field, "=")
			if v, ok := m[name]; ok && (!hasVal || v == val) {
				found = true
			}
		}
		if !found {
			t.Errorf("no %v entry %q with %s", w.level, w.msg, w.field)
		}
	}
	for _, e := range all {
		text := e.Message
		for k, v := range e.ContextMap() {
			text += " " + k + "=" + fmt.Sprint(v)
		}
		for _, secret := range []string{access, rt, "code-1", "code-x", "code-y", "code-z", "0123456789abcdef", "app-secret"} {
			if strings.Contains(text, secret) {
				t.Errorf("log entry %q carries a secret", e.Message)
			}
		}
	}
}

// TestRefreshMetricsTellRotationFromRetry: each rotation counts as ok and
// each retry within the grace period as retry.
func TestRefreshMetricsTellRotationFromRetry(t *testing.T) {
	hs, m := metricsHarness(t)
	_, rt := hs.login("o1")
	r := hs.refresh(rt)
	want(t, r, 200, "")
	rt2 := r.body["refresh_token"].(string)
	want(t, hs.refresh(rt2), 200, "")
	want(t, hs.refresh(rt2), 200, "") // retried
	m.check(t, map[string]int{"login/ok_new": 1, "refresh/ok": 2, "refresh/retry": 1})
}

// TestResultString: every result has its name; a value out of range is
// "unknown" rather than a panic.
func TestResultString(t *testing.T) {
	for r, name := range resultNames {
		if got := Result(r).String(); got != name {
			t.Errorf("Result(%d) = %q, want %q", r, got, name)
		}
	}
	if len(resultNames) != NumResults {
		t.Fatalf("%d names for %d results", len(resultNames), NumResults)
	}
	for _, r := range []Result{Result(NumResults), Result(NumResults + 1), 255} {
		if got := r.String(); got != "unknown" {
			t.Errorf("Result(%d) = %q", r, got)
		}
	}
}
