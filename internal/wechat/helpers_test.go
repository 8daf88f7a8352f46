package wechat

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/wxauth/caddy-wechat-auth/internal/testclock"
)

const (
	testAppID  = "wx0123456789abcdef"
	testSecret = "s3cr3t-0f-the-app-do-not-leak"
)

// hitCounter counts requests per path.
type hitCounter struct {
	mu   sync.Mutex
	hits map[string]int
}

func (h *hitCounter) add(path string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.hits == nil {
		h.hits = make(map[string]int)
	}
	h.hits[path]++
}

func (h *hitCounter) count(path string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.hits[path]
}

// newTestServer serves routes on loopback and counts every request by path.
func newTestServer(t *testing.T, routes map[string]http.HandlerFunc) (*httptest.Server, *hitCounter) {
	t.Helper()
	hc := &hitCounter{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hc.add(r.URL.Path)
		h, ok := routes[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		h(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, hc
}

// newTestClient returns a client of srvURL with test credentials; mod may
// adjust the config first.
func newTestClient(t *testing.T, srvURL string, mod func(*Config)) *Client {
	t.Helper()
	cfg := Config{BaseURL: srvURL, AppID: testAppID, AppSecret: testSecret, Timeout: 5 * time.Second}
	if mod != nil {
		mod(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

// observedLogger returns a debug-level logger whose entries the test can read.
func observedLogger(t *testing.T) (*zap.Logger, *observer.ObservedLogs) {
	t.Helper()
	core, logs := observer.New(zap.DebugLevel)
	return zap.New(core), logs
}

// writeJSON answers v as JSON with status 200.
func writeJSON(t *testing.T, w http.ResponseWriter, v any) {
	t.Helper()
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewEncoder(w).Encode(v); err != nil {
		t.Errorf("encoding test answer: %v", err)
	}
}

// fakeClock is the tests' injected clock.
type fakeClock = testclock.Clock

func newFakeClock() *fakeClock {
	return testclock.New(time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC))
}

// sequence returns the i-th answer (0-based) for the i-th request and the
// last one for every request after that.
type sequence struct {
	mu      sync.Mutex
	n       int
	answers []func(w http.ResponseWriter, r *http.Request)
}

func (s *sequence) handle(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	i := min(s.n, len(s.answers)-1)
	s.n++
	s.mu.Unlock()
	s.answers[i](w, r)
}
