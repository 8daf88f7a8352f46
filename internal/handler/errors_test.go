package handler

import (
	"errors"
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/wxauth/caddy-wechat-auth/internal/wechat"
)

// TestWeChatErrorRetryAfter: a WeChat rate limit or outage is answered
// with the wait WeChat's client derived (its own default when WeChat sent
// none), not the handler's fallback.
func TestWeChatErrorRetryAfter(t *testing.T) {
	tests := []struct {
		err    error
		status int
		code   string
	}{
		{fmt.Errorf("jscode2session: %w", wechat.ErrRateLimited), 429, CodeRateLimited},
		{fmt.Errorf("jscode2session: %w", wechat.ErrUnavailable), 503, CodeWeChatUnavailable},
	}
	for _, tt := range tests {
		e := wechatError(tt.err)
		want := wechat.RetryAfter(tt.err)
		if want <= 0 {
			t.Fatalf("%v: the WeChat client gives no wait", tt.err)
		}
		if e.Status != tt.status || e.Code != tt.code || e.RetryAfter != want {
			t.Fatalf("%v: %d %s retry after %v, want %d %s %v", tt.err, e.Status, e.Code, e.RetryAfter, tt.status, tt.code, want)
		}
	}
	if e := wechatError(errors.New("something else")); e.Status != 502 || e.Code != CodeWeChatError || e.RetryAfter != 0 {
		t.Fatalf("other error: %d %s %v", e.Status, e.Code, e.RetryAfter)
	}
}

// TestWriteErrorRetryAfter: Retry-After is whole seconds rounded up, and
// absent when there is nothing to wait for.
func TestWriteErrorRetryAfter(t *testing.T) {
	tests := []struct {
		wait time.Duration
		want string
	}{
		{0, ""},
		{time.Nanosecond, "1"},
		{time.Second, "1"},
		{1500 * time.Millisecond, "2"},
		{30 * time.Second, "30"},
	}
	for _, tt := range tests {
		w := httptest.NewRecorder()
		e := newError(429, CodeRateLimited, "slow down")
		e.RetryAfter = tt.wait
		WriteError(w, e)
		got, set := w.Header()["Retry-After"]
		if tt.want == "" {
			if set {
				t.Errorf("wait %v: Retry-After %q", tt.wait, got)
			}
			continue
		}
		if len(got) != 1 || got[0] != tt.want {
			t.Errorf("wait %v: Retry-After %q, want %q", tt.wait, got, tt.want)
		}
	}
	w := httptest.NewRecorder()
	WriteError(w, badRequest("bad"))
	if h := w.Header(); h.Get("Retry-After") != "" || h.Get("Allow") != "" || h.Get("WWW-Authenticate") != "" {
		t.Fatalf("a plain 400 carries %v", h)
	}
}
