package wechat

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

const testSessionKeyB64 = "tiihtNczf5v6AKRyjwEUhQ=="

// testCode looks like a real wx.login code (32 characters).
const testCode = "081AbcDef0GhiJkl2Mno3Pqr4Stu5Vwx"

func okSession(t *testing.T) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		writeJSON(t, w, map[string]any{"openid": "oUser1", "session_key": testSessionKeyB64})
	}
}

func errcodeAnswer(t *testing.T, code int, msg string) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		writeJSON(t, w, map[string]any{"errcode": code, "errmsg": msg})
	}
}

func TestCode2SessionSuccess(t *testing.T) {
	var gotMethod string
	var gotQuery map[string][]string
	srv, hits := newTestServer(t, map[string]http.HandlerFunc{
		"/sns/jscode2session": func(w http.ResponseWriter, r *http.Request) {
			gotMethod, gotQuery = r.Method, r.URL.Query()
			writeJSON(t, w, map[string]any{"openid": "oGZUI0egBJY1zhBYw2KhdUfwVJJE", "session_key": testSessionKeyB64, "unionid": "ocMvos6NjeKLIBqg5Mr9QjxrP1FA"})
		},
	})
	c := newTestClient(t, srv.URL+"/", nil)
	s, err := c.Code2Session(context.Background(), "the-code")
	if err != nil {
		t.Fatalf("Code2Session: %v", err)
	}
	want, _ := base64.StdEncoding.DecodeString(testSessionKeyB64)
	if s.OpenID != "oGZUI0egBJY1zhBYw2KhdUfwVJJE" || s.UnionID != "ocMvos6NjeKLIBqg5Mr9QjxrP1FA" || !bytes.Equal(s.SessionKey, want) {
		t.Errorf("session = %+v", s)
	}
	if gotMethod != http.MethodGet {
		t.Errorf("method = %s, want GET", gotMethod)
	}
	for k, v := range map[string]string{"appid": testAppID, "secret": testSecret, "js_code": "the-code", "grant_type": "authorization_code"} {
		if got := gotQuery[k]; len(got) != 1 || got[0] != v {
			t.Errorf("query %s = %q, want %q", k, got, v)
		}
	}
	if n := hits.count("/sns/jscode2session"); n != 1 {
		t.Errorf("requests = %d, want 1", n)
	}
}

func TestCode2SessionErrcodes(t *testing.T) {
	tests := []struct {
		code int
		msg  string
		want error
	}{
		{40029, "invalid code, rid: 1", ErrInvalidCode},
		{40163, "code been used, rid: 2", ErrInvalidCode},
		{41008, "missing code", ErrInvalidCode},
		{40226, "invalid visit", ErrUserBlocked},
		{45011, "api minute-quota reach limit", ErrRateLimited},
		{40013, "invalid appid", ErrAPI},
		{40125, "invalid appsecret", ErrAPI},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.code), func(t *testing.T) {
			srv, hits := newTestServer(t, map[string]http.HandlerFunc{
				"/sns/jscode2session": errcodeAnswer(t, tt.code, tt.msg),
			})
			c := newTestClient(t, srv.URL, nil)
			s, err := c.Code2Session(context.Background(), testCode)
			if s != nil || !errors.Is(err, tt.want) {
				t.Fatalf("Code2Session = %v, %v; want nil, %v", s, err, tt.want)
			}
			var ae *APIError
			if !errors.As(err, &ae) || ae.API != "jscode2session" || ae.Code != tt.code || ae.Message != tt.msg {
				t.Errorf("APIError = %+v", ae)
			}
			if want := fmt.Sprintf("wechat jscode2session: errcode %d: %s", tt.code, tt.msg); err.Error() != want {
				t.Errorf("Error() = %q, want %q", err, want)
			}
			if n := hits.count("/sns/jscode2session"); n != 1 {
				t.Errorf("requests = %d, want 1 (no retry)", n)
			}
		})
	}
}

func TestCode2SessionRetryOnSystemBusy(t *testing.T) {
	tests := []struct {
		name    string
		answers []func(w http.ResponseWriter, r *http.Request)
		want    error
	}{
		{name: "busy then ok", answers: []func(http.ResponseWriter, *http.Request){errcodeAnswer(t, -1, "system error"), okSession(t)}},
		{name: "busy twice", answers: []func(http.ResponseWriter, *http.Request){errcodeAnswer(t, -1, "system error"), errcodeAnswer(t, -1, "system error"), okSession(t)}, want: ErrUnavailable},
		{name: "busy then used", answers: []func(http.ResponseWriter, *http.Request){errcodeAnswer(t, -1, "system error"), errcodeAnswer(t, 40163, "code been used")}, want: ErrInvalidCode},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			seq := &sequence{answers: tt.answers}
			srv, hits := newTestServer(t, map[string]http.HandlerFunc{"/sns/jscode2session": seq.handle})
			c := newTestClient(t, srv.URL, nil)
			s, err := c.Code2Session(context.Background(), testCode)
			if tt.want == nil && (err != nil || s == nil || s.OpenID != "oUser1") {
				t.Fatalf("Code2Session = %+v, %v; want success", s, err)
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if n := hits.count("/sns/jscode2session"); n != 2 {
				t.Errorf("requests = %d, want exactly 2", n)
			}
			if errors.Is(tt.want, ErrUnavailable) && RetryAfter(err) != retryAfterUnavailable {
				t.Errorf("RetryAfter = %v", RetryAfter(err))
			}
		})
	}
}

func TestCode2SessionNoRetryAfterTimeout(t *testing.T) {
	srv, hits := newTestServer(t, map[string]http.HandlerFunc{
		// Blocks until the client gives up: the deadline, not a sleep.
		"/sns/jscode2session": func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() },
	})
	c := newTestClient(t, srv.URL, func(cfg *Config) { cfg.Timeout = 50 * time.Millisecond })
	_, err := c.Code2Session(context.Background(), testCode)
	if !errors.Is(err, ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want ErrUnavailable and DeadlineExceeded", err)
	}
	if RetryAfter(err) != retryAfterUnavailable {
		t.Errorf("RetryAfter = %v", RetryAfter(err))
	}
	if n := hits.count("/sns/jscode2session"); n != 1 {
		t.Errorf("requests = %d, want 1 (never retry after a timeout)", n)
	}
}

func TestCode2SessionConnectionError(t *testing.T) {
	srv, _ := newTestServer(t, nil)
	srv.Close()
	c := newTestClient(t, srv.URL, nil)
	_, err := c.Code2Session(context.Background(), testCode)
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
	if strings.Contains(err.Error(), testSecret) || strings.Contains(err.Error(), "js_code") {
		t.Errorf("error quotes the request URL: %q", err)
	}
}

func TestCode2SessionBadResponses(t *testing.T) {
	huge := `{"openid":"o","session_key":"` + testSessionKeyB64 + `","pad":"` + strings.Repeat("x", maxResponseBytes) + `"}`
	tests := []struct {
		name       string
		handler    http.HandlerFunc
		want       error
		retryAfter time.Duration
	}{
		{name: "html", handler: func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "<html>busy</html>") }, want: ErrBadResponse},
		{name: "empty body", handler: func(w http.ResponseWriter, r *http.Request) {}, want: ErrBadResponse},
		{name: "truncated JSON", handler: func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, `{"openid":"o`) }, want: ErrBadResponse},
		{name: "JSON array", handler: func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, `[1]`) }, want: ErrBadResponse},
		{name: "errcode is a string", handler: func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, `{"errcode":"40029"}`) }, want: ErrBadResponse},
		{name: "no openid", handler: func(w http.ResponseWriter, r *http.Request) {
			writeJSON(t, w, map[string]any{"session_key": testSessionKeyB64})
		}, want: ErrBadResponse},
		{name: "errcode 0 and nothing else", handler: func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, `{"errcode":0,"errmsg":"ok"}`) }, want: ErrBadResponse},
		{name: "no session_key", handler: func(w http.ResponseWriter, r *http.Request) {
			writeJSON(t, w, map[string]any{"openid": "o"})
		}, want: ErrBadResponse},
		{name: "session_key not base64", handler: func(w http.ResponseWriter, r *http.Request) {
			writeJSON(t, w, map[string]any{"openid": "o", "session_key": "not*base64"})
		}, want: ErrBadResponse},
		{name: "session_key 24 bytes", handler: func(w http.ResponseWriter, r *http.Request) {
			writeJSON(t, w, map[string]any{"openid": "o", "session_key": base64.StdEncoding.EncodeToString(make([]byte, 24))})
		}, want: ErrBadResponse},
		{name: "too large", handler: func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, huge) }, want: ErrBadResponse},
		{name: "500", handler: func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(500) }, want: ErrUnavailable, retryAfter: retryAfterUnavailable},
		{name: "503 with Retry-After", handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Retry-After", "7")
			w.WriteHeader(503)
		}, want: ErrUnavailable, retryAfter: 7 * time.Second},
		{name: "429", handler: func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(429) }, want: ErrRateLimited, retryAfter: retryAfterRateLimited},
		{name: "404", handler: func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(404) }, want: ErrBadResponse},
		{name: "redirect not followed", handler: func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "/elsewhere?"+r.URL.RawQuery, http.StatusFound)
		}, want: ErrBadResponse},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, hits := newTestServer(t, map[string]http.HandlerFunc{
				"/sns/jscode2session": tt.handler,
				"/elsewhere":          okSession(t),
			})
			c := newTestClient(t, srv.URL, nil)
			s, err := c.Code2Session(context.Background(), testCode)
			if s != nil || !errors.Is(err, tt.want) {
				t.Fatalf("Code2Session = %+v, %v; want nil, %v", s, err, tt.want)
			}
			if got := RetryAfter(err); got != tt.retryAfter {
				t.Errorf("RetryAfter = %v, want %v", got, tt.retryAfter)
			}
			if n := hits.count("/sns/jscode2session"); n != 1 {
				t.Errorf("requests = %d, want 1", n)
			}
			if n := hits.count("/elsewhere"); n != 0 {
				t.Errorf("redirect was followed")
			}
		})
	}
}

func TestCode2SessionLocalChecks(t *testing.T) {
	srv, hits := newTestServer(t, map[string]http.HandlerFunc{"/sns/jscode2session": okSession(t)})
	c := newTestClient(t, srv.URL, nil)
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name string
		ctx  context.Context
		code string
		want error
	}{
		{"empty code", context.Background(), "", ErrInvalidCode},
		{"huge code", context.Background(), strings.Repeat("c", maxCodeBytes+1), ErrInvalidCode},
		{"cancelled context", cancelled, "code", context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := c.Code2Session(tt.ctx, tt.code); !errors.Is(err, tt.want) {
				t.Errorf("err = %v, want %v", err, tt.want)
			}
		})
	}
	if n := hits.count("/sns/jscode2session"); n != 0 {
		t.Errorf("requests = %d, want 0", n)
	}
}

// blockingSession answers okSession once release is closed, counting the
// requests whose context ended before that.
type blockingSession struct {
	t         *testing.T
	release   chan struct{}
	mu        sync.Mutex
	cancelled int
}

func (b *blockingSession) handle(w http.ResponseWriter, r *http.Request) {
	select {
	case <-b.release:
	case <-r.Context().Done():
		b.mu.Lock()
		b.cancelled++
		b.mu.Unlock()
		return
	}
	okSession(b.t)(w, r)
}

func TestCode2SessionSingleflight(t *testing.T) {
	const n = 20
	bs := &blockingSession{t: t, release: make(chan struct{})}
	srv, hits := newTestServer(t, map[string]http.HandlerFunc{"/sns/jscode2session": bs.handle})
	c := newTestClient(t, srv.URL, nil)
	var joined sync.WaitGroup
	joined.Add(n)
	c.testHookCodeWait = joined.Done

	results := make([]*Session, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = c.Code2Session(context.Background(), "same-code")
		}()
	}
	joined.Wait() // every caller waits on the shared call, which cannot finish yet
	close(bs.release)
	wg.Wait()

	if got := hits.count("/sns/jscode2session"); got != 1 {
		t.Errorf("upstream requests = %d, want 1", got)
	}
	for i := range n {
		if errs[i] != nil || results[i].OpenID != "oUser1" {
			t.Fatalf("caller %d: %+v, %v", i, results[i], errs[i])
		}
	}
	results[0].SessionKey[0] ^= 0xff
	if bytes.Equal(results[0].SessionKey, results[1].SessionKey) {
		t.Errorf("callers share one session key slice")
	}

	// A finished call is not remembered: the same code goes upstream again,
	// and a different code is a different call.
	c.testHookCodeWait = nil
	for _, code := range []string{"same-code", "other-code"} {
		if _, err := c.Code2Session(context.Background(), code); err != nil {
			t.Fatalf("Code2Session(%s): %v", code, err)
		}
	}
	if got := hits.count("/sns/jscode2session"); got != 3 {
		t.Errorf("upstream requests = %d, want 3", got)
	}
}

func TestCode2SessionCallerCancelDoesNotCancelSharedCall(t *testing.T) {
	bs := &blockingSession{t: t, release: make(chan struct{})}
	srv, hits := newTestServer(t, map[string]http.HandlerFunc{"/sns/jscode2session": bs.handle})
	c := newTestClient(t, srv.URL, nil)
	var joined sync.WaitGroup
	joined.Add(2)
	c.testHookCodeWait = joined.Done

	ctxA, cancelA := context.WithCancel(context.Background())
	defer cancelA()
	errA := make(chan error, 1)
	type result struct {
		s   *Session
		err error
	}
	resB := make(chan result, 1)
	go func() {
		_, err := c.Code2Session(ctxA, testCode)
		errA <- err
	}()
	go func() {
		s, err := c.Code2Session(context.Background(), testCode)
		resB <- result{s, err}
	}()
	joined.Wait()

	cancelA()
	if err := <-errA; !errors.Is(err, context.Canceled) {
		t.Fatalf("first caller err = %v, want context.Canceled", err)
	}
	close(bs.release)
	r := <-resB
	if r.err != nil || r.s.OpenID != "oUser1" {
		t.Fatalf("second caller = %+v, %v; want success", r.s, r.err)
	}
	if got := hits.count("/sns/jscode2session"); got != 1 {
		t.Errorf("upstream requests = %d, want 1", got)
	}
	bs.mu.Lock()
	defer bs.mu.Unlock()
	if bs.cancelled != 0 {
		t.Errorf("shared upstream request was cancelled")
	}
}
