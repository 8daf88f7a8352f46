package emulator

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// queueFault posts a fault and fails the test unless it is accepted.
func queueFault(t *testing.T, e *Emulator, body string) {
	t.Helper()
	status, m := call(t, e, http.MethodPost, pathFault, body)
	if status != http.StatusOK {
		t.Fatalf("queueing fault %s: %d %v", body, status, m)
	}
}

// rawCall sends a request and returns the recorder, failing on handler
// errors.
func rawCall(t *testing.T, e *Emulator, r *http.Request) *httptest.ResponseRecorder {
	t.Helper()
	w, called, err := serve(t, e, r)
	if err != nil || called {
		t.Fatalf("%s %s: err=%v next=%v", r.Method, r.URL, err, called)
	}
	return w
}

func TestFaultErrcodeOnceThenNormal(t *testing.T) {
	e, _ := configured(t)
	code, _ := mintCode(t, e, "")
	queueFault(t, e, `{"path":"/sns/jscode2session","errcode":-1}`)

	status, m := call(t, e, http.MethodGet, exchangeURL(code), "")
	wantErrcode(t, status, m, codeSystemError)
	if !strings.HasPrefix(m["errmsg"].(string), "system error") {
		t.Errorf("errmsg = %v", m["errmsg"])
	}
	// The faulted call did not spend the code: a retry succeeds.
	exchange(t, e, code)
}

func TestFaultKinds(t *testing.T) {
	tests := []struct {
		name        string
		fault       string
		wantStatus  int
		wantJSON    bool
		wantErrcode int
		wantType    string
	}{
		{"garbage", `{"garbage":true}`, http.StatusOK, false, 0, "text/html"},
		{"garbage with status", `{"garbage":true,"status":502}`, http.StatusBadGateway, false, 0, "text/html"},
		{"status only", `{"status":503}`, http.StatusServiceUnavailable, false, 0, "text/plain; charset=utf-8"},
		{"errcode with status", `{"errcode":45011,"status":429}`, http.StatusTooManyRequests, true, 45011, apiContentType},
		{"blocked user", `{"errcode":40226}`, http.StatusOK, true, 40226, apiContentType},
		{"unknown errcode", `{"errcode":61024}`, http.StatusOK, true, 61024, apiContentType},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, _ := configured(t)
			code, _ := mintCode(t, e, "")
			queueFault(t, e, tt.fault)
			w := rawCall(t, e, httptest.NewRequest(http.MethodGet, exchangeURL(code), nil))
			if w.Code != tt.wantStatus || w.Header().Get("Content-Type") != tt.wantType {
				t.Fatalf("status %d type %q, want %d %q", w.Code, w.Header().Get("Content-Type"), tt.wantStatus, tt.wantType)
			}
			var m apiError
			err := json.Unmarshal(w.Body.Bytes(), &m)
			if tt.wantJSON != (err == nil) {
				t.Fatalf("body %q: JSON=%v, want %v", w.Body.String(), err == nil, tt.wantJSON)
			}
			if tt.wantJSON && (m.Errcode != tt.wantErrcode || !ridPattern.MatchString(m.Errmsg)) {
				t.Fatalf("body = %+v, want errcode %d with a rid", m, tt.wantErrcode)
			}
			exchange(t, e, code) // one use only, and the code survived
		})
	}
}

func TestFaultPathAndTimes(t *testing.T) {
	e, _ := configured(t)
	queueFault(t, e, `{"path":"/cgi-bin/stable_token","errcode":-1,"times":2}`)

	// Other paths and helper paths are not affected.
	code, _ := mintCode(t, e, "")
	exchange(t, e, code)

	body := `{"grant_type":"client_credential","appid":"` + testAppID + `","secret":"` + testSecret + `"}`
	for i := range 2 {
		status, m := call(t, e, http.MethodPost, pathStableToken, body)
		if errcode(t, m) != codeSystemError || status != http.StatusOK {
			t.Fatalf("call %d: %d %v, want errcode -1", i, status, m)
		}
	}
	stableToken(t, e, false)
}

func TestFaultsAreFIFO(t *testing.T) {
	e, _ := configured(t)
	queueFault(t, e, `{"errcode":45011}`)
	queueFault(t, e, `{"errcode":40226}`)
	for _, want := range []int{45011, 40226} {
		code, _ := mintCode(t, e, "")
		status, m := call(t, e, http.MethodGet, exchangeURL(code), "")
		wantErrcode(t, status, m, want)
	}
}

func TestFaultClear(t *testing.T) {
	e, _ := configured(t)
	for range 3 {
		queueFault(t, e, `{"errcode":-1}`)
	}
	status, m := call(t, e, http.MethodDelete, pathFault, "")
	if status != http.StatusOK || m["cleared"] != float64(3) {
		t.Fatalf("DELETE: %d %v, want cleared 3", status, m)
	}
	stableToken(t, e, false)
}

func TestFaultDelayStopsWhenClientGivesUp(t *testing.T) {
	e, _ := configured(t) // the real, timer-based sleep
	queueFault(t, e, `{"delay":"1h","errcode":-1}`)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r := httptest.NewRequest(http.MethodGet, exchangeURL("x"), nil).WithContext(ctx)
	w := httptest.NewRecorder()
	done := make(chan error, 1)
	go func() { done <- e.ServeHTTP(w, r, nil) }()

	var err error
	select {
	case err = <-done:
	case <-time.After(30 * time.Second): // a guard against a hung test, not a wait
		t.Fatal("delay did not stop when the request context was cancelled")
	}
	var he caddyhttp.HandlerError
	if !errors.As(err, &he) || he.StatusCode != statusClientClosedRequest || !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want a 499 handler error wrapping context.Canceled", err)
	}
	if w.Body.Len() != 0 {
		t.Fatalf("wrote %q to a client that gave up", w.Body.String())
	}
	if _, pending := e.faults.take(""); pending {
		t.Fatal("the delayed fault was not consumed")
	}
}

func TestFaultDelayThenNormalAnswer(t *testing.T) {
	e, _ := configured(t)
	var (
		mu    sync.Mutex
		slept []time.Duration
	)
	e.sleep = func(ctx context.Context, d time.Duration) error {
		mu.Lock()
		defer mu.Unlock()
		slept = append(slept, d)
		return ctx.Err()
	}
	queueFault(t, e, `{"path":"/cgi-bin/stable_token","delay":"2s"}`)
	queueFault(t, e, `{"path":"/cgi-bin/stable_token","delay":1500000000}`) // nanoseconds also accepted
	stableToken(t, e, false)
	stableToken(t, e, false)
	stableToken(t, e, false)
	mu.Lock()
	defer mu.Unlock()
	if len(slept) != 2 || slept[0] != 2*time.Second || slept[1] != 1500*time.Millisecond {
		t.Fatalf("slept %v, want [2s 1.5s]", slept)
	}
}

func TestSleepContext(t *testing.T) {
	if err := sleepContext(context.Background(), 0); err != nil {
		t.Fatalf("zero delay: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := sleepContext(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
}

func TestFaultValidation(t *testing.T) {
	tests := []struct {
		name, method, body string
		want               int
	}{
		{"ok errcode", http.MethodPost, `{"errcode":-1}`, http.StatusOK},
		{"ok path", http.MethodPost, `{"path":"/wxa/checksession","status":500}`, http.StatusOK},
		{"no effect", http.MethodPost, `{"path":"/sns/jscode2session"}`, http.StatusBadRequest},
		{"empty object", http.MethodPost, `{}`, http.StatusBadRequest},
		{"empty body", http.MethodPost, ``, http.StatusBadRequest},
		{"unknown path", http.MethodPost, `{"path":"/sns/jscode2sessionx","errcode":-1}`, http.StatusBadRequest},
		{"helper path", http.MethodPost, `{"path":"/emulator/code","errcode":-1}`, http.StatusBadRequest},
		{"negative times", http.MethodPost, `{"errcode":-1,"times":-1}`, http.StatusBadRequest},
		{"negative delay", http.MethodPost, `{"delay":"-1s"}`, http.StatusBadRequest},
		{"bad delay", http.MethodPost, `{"delay":"soon"}`, http.StatusBadRequest},
		{"bad status", http.MethodPost, `{"status":99}`, http.StatusBadRequest},
		{"status too high", http.MethodPost, `{"status":600}`, http.StatusBadRequest},
		{"unknown field", http.MethodPost, `{"errcode":-1,"count":2}`, http.StatusBadRequest},
		{"wrong type", http.MethodPost, `{"garbage":"yes"}`, http.StatusBadRequest},
		{"wrong method", http.MethodGet, ``, http.StatusMethodNotAllowed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, _ := configured(t)
			status, m := call(t, e, tt.method, pathFault, tt.body)
			if status != tt.want {
				t.Fatalf("status = %d (%v), want %d", status, m, tt.want)
			}
			if status >= 400 {
				if s, _ := m["error"].(string); s == "" {
					t.Fatalf("no error member: %v", m)
				}
			}
		})
	}
}

func TestFaultQueueBounded(t *testing.T) {
	e, _ := configured(t)
	for i := range maxQueuedFaults {
		if _, err := e.faults.add(fault{errcode: -1, times: 1}); err != nil {
			t.Fatalf("add %d: %v", i, err)
		}
	}
	status, m := call(t, e, http.MethodPost, pathFault, `{"errcode":-1}`)
	if status != http.StatusTooManyRequests {
		t.Fatalf("status = %d (%v), want 429", status, m)
	}
}
