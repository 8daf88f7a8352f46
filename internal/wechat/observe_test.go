package wechat

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"
)

// TestObserve checks that every HTTP attempt is reported with its API,
// result and duration by the client's clock.
func TestObserve(t *testing.T) {
	var (
		mu    sync.Mutex
		calls int
	)
	srv, _ := newTestServer(t, map[string]http.HandlerFunc{
		"/sns/jscode2session": func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			calls++
			n := calls
			mu.Unlock()
			switch r.URL.Query().Get("js_code") {
			case "busy-once":
				if n == 1 {
					writeJSON(t, w, map[string]any{"errcode": -1, "errmsg": "system busy"})
					return
				}
			case "bad":
				writeJSON(t, w, map[string]any{"errcode": 40029, "errmsg": "invalid code"})
				return
			}
			writeJSON(t, w, map[string]any{"openid": "oUser1", "session_key": testSessionKeyB64})
		},
	})
	// A clock that moves 250ms each time it is read.
	var clockMu sync.Mutex
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time {
		clockMu.Lock()
		defer clockMu.Unlock()
		now = now.Add(250 * time.Millisecond)
		return now
	}
	var got []string
	c := newTestClient(t, srv.URL, func(cfg *Config) {
		cfg.Now = clock
		cfg.Observe = func(api, result string, d time.Duration) {
			// The clock is read at least at the start and the end.
			if d < 250*time.Millisecond {
				t.Errorf("%s %s took %v by the client's clock, want at least 250ms", api, result, d)
			}
			got = append(got, api+" "+result)
		}
	})
	ctx := context.Background()
	if _, err := c.Code2Session(ctx, "busy-once"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Code2Session(ctx, "bad"); err == nil {
		t.Fatal("want an error")
	}
	want := []string{
		"jscode2session system_busy",
		"jscode2session ok",
		"jscode2session invalid_code",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("observed %q, want %q", got, want)
	}
}

func TestResult(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{nil, "ok"},
		{&APIError{Code: 40029}, "invalid_code"},
		{&APIError{Code: 40163}, "invalid_code"},
		{&APIError{Code: 40226}, "user_blocked"},
		{&APIError{Code: 45011}, "rate_limited"},
		{&APIError{Code: -1}, "system_busy"},
		{&APIError{Code: 42001}, "token_rejected"},
		{&APIError{Code: 87009}, "session_key_invalid"},
		{&APIError{Code: 12345}, "api_error"},
		{&httpError{api: "x", kind: ErrUnavailable, cause: context.DeadlineExceeded}, "timeout"},
		{&httpError{api: "x", kind: ErrUnavailable}, "unavailable"},
		{&httpError{api: "x", kind: ErrRateLimited}, "rate_limited"},
		{&httpError{api: "x", kind: ErrBadResponse}, "bad_response"},
		{fmt.Errorf("wechat x: %w", context.Canceled), "canceled"},
	}
	for _, tc := range tests {
		if got := Result(tc.err); got != tc.want {
			t.Errorf("Result(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}
