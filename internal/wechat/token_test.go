package wechat

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// tokenServer is a fake stable_token endpoint. Each answer carries a new
// token "tok-N"; the requests it saw are recorded.
type tokenServer struct {
	t         *testing.T
	expiresIn int64
	release   chan struct{} // when non-nil, answers wait for it

	// stable makes a normal-mode request answer the current token, as
	// WeChat's stable_token does until the token expires or someone forces
	// a new one; otherwise every request gets a new token.
	stable bool

	mu     sync.Mutex
	n      int
	forced []bool
	fail   []int // errcodes to answer, consumed one per request
}

func (s *tokenServer) handle(w http.ResponseWriter, r *http.Request) {
	var req stableTokenRequest
	if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
		s.t.Errorf("stable_token: method %s, content type %q", r.Method, r.Header.Get("Content-Type"))
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		s.t.Errorf("stable_token: decoding body: %v", err)
	}
	if req.GrantType != "client_credential" || req.AppID != testAppID || req.Secret != testSecret {
		s.t.Errorf("stable_token: body %+v", req)
	}
	if s.release != nil {
		<-s.release
	}
	s.mu.Lock()
	s.forced = append(s.forced, req.ForceRefresh)
	var code int
	if len(s.fail) > 0 {
		code, s.fail = s.fail[0], s.fail[1:]
	}
	if code == 0 && (!s.stable || req.ForceRefresh || s.n == 0) {
		s.n++
	}
	tok := fmt.Sprintf("tok-%d", s.n)
	s.mu.Unlock()
	if code != 0 {
		writeJSON(s.t, w, map[string]any{"errcode": code, "errmsg": "failed"})
		return
	}
	writeJSON(s.t, w, map[string]any{"access_token": tok, "expires_in": s.expiresIn})
}

func (s *tokenServer) requests() []bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]bool(nil), s.forced...)
}

func TestAccessTokenCacheExpiry(t *testing.T) {
	tests := []struct {
		name      string
		expiresIn int64
		fresh     time.Duration // still served from cache at this age
		stale     time.Duration // fetched again at this age
	}{
		{name: "two hours, 5 minute margin", expiresIn: 7200, fresh: 7200*time.Second - 5*time.Minute - time.Second, stale: 7200*time.Second - 5*time.Minute},
		{name: "five minutes, half the lifetime", expiresIn: 300, fresh: 149 * time.Second, stale: 150 * time.Second},
		{name: "one second", expiresIn: 1, fresh: 499 * time.Millisecond, stale: 500 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := &tokenServer{t: t, expiresIn: tt.expiresIn}
			srv, _ := newTestServer(t, map[string]http.HandlerFunc{"/cgi-bin/stable_token": ts.handle})
			clock := newFakeClock()
			c := newTestClient(t, srv.URL, func(cfg *Config) { cfg.Now = clock.Now })
			ctx := context.Background()
			start := clock.Now()

			for _, step := range []struct {
				at       time.Duration
				want     string
				requests int
			}{
				{0, "tok-1", 1},
				{0, "tok-1", 1},
				{tt.fresh, "tok-1", 1},
				{tt.stale, "tok-2", 2},
				{tt.stale, "tok-2", 2},
			} {
				clock.Advance(start.Add(step.at).Sub(clock.Now()))
				tok, err := c.AccessToken(ctx)
				if err != nil || tok != step.want {
					t.Fatalf("at %v: AccessToken = %q, %v; want %q", step.at, tok, err, step.want)
				}
				if got := len(ts.requests()); got != step.requests {
					t.Fatalf("at %v: requests = %d, want %d", step.at, got, step.requests)
				}
			}
			for i, f := range ts.requests() {
				if f {
					t.Errorf("request %d used force_refresh", i)
				}
			}
		})
	}
}

func TestAccessTokenConcurrentCallersShareOneFetch(t *testing.T) {
	const n = 100
	ts := &tokenServer{t: t, expiresIn: 7200, release: make(chan struct{})}
	srv, hits := newTestServer(t, map[string]http.HandlerFunc{"/cgi-bin/stable_token": ts.handle})
	c := newTestClient(t, srv.URL, nil)
	var waiting sync.WaitGroup
	waiting.Add(n)
	c.testHookTokenWait = waiting.Done

	toks := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			toks[i], errs[i] = c.AccessToken(context.Background())
		}()
	}
	waiting.Wait() // all 100 wait for a fetch that cannot finish yet
	close(ts.release)
	wg.Wait()
	for i := range n {
		if errs[i] != nil || toks[i] != "tok-1" {
			t.Fatalf("caller %d: %q, %v", i, toks[i], errs[i])
		}
	}
	if got := hits.count("/cgi-bin/stable_token"); got != 1 {
		t.Errorf("upstream requests = %d, want 1", got)
	}
}

func TestAccessTokenFailuresNotCached(t *testing.T) {
	ts := &tokenServer{t: t, expiresIn: 7200, fail: []int{40013, -1, -1}}
	srv, _ := newTestServer(t, map[string]http.HandlerFunc{"/cgi-bin/stable_token": ts.handle})
	c := newTestClient(t, srv.URL, nil)
	ctx := context.Background()

	_, err := c.AccessToken(ctx)
	var ae *APIError
	if !errors.Is(err, ErrAPI) || !errors.As(err, &ae) || ae.API != "stable_token" || ae.Code != 40013 {
		t.Fatalf("first AccessToken err = %v, want errcode 40013", err)
	}
	if _, err := c.AccessToken(ctx); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("second AccessToken err = %v, want ErrUnavailable (-1 twice)", err)
	}
	tok, err := c.AccessToken(ctx)
	if err != nil || tok != "tok-1" {
		t.Fatalf("third AccessToken = %q, %v", tok, err)
	}
	if got := len(ts.requests()); got != 4 {
		t.Errorf("requests = %d, want 4", got)
	}
}

func TestAccessTokenBadAnswers(t *testing.T) {
	tests := []struct {
		name string
		body string
	}{
		{"no token", `{"expires_in":7200}`},
		{"zero lifetime", `{"access_token":"t","expires_in":0}`},
		{"negative lifetime", `{"access_token":"t","expires_in":-5}`},
		{"absurd lifetime", `{"access_token":"t","expires_in":99999999999}`},
		{"not JSON", `access_token=t`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, _ := newTestServer(t, map[string]http.HandlerFunc{"/cgi-bin/stable_token": func(w http.ResponseWriter, r *http.Request) {
				fmt.Fprint(w, tt.body)
			}})
			c := newTestClient(t, srv.URL, nil)
			if _, err := c.AccessToken(context.Background()); !errors.Is(err, ErrBadResponse) {
				t.Errorf("err = %v, want ErrBadResponse", err)
			}
			c.tokMu.Lock()
			defer c.tokMu.Unlock()
			if c.tok != "" {
				t.Errorf("bad answer was cached")
			}
		})
	}
}

func TestAccessTokenCallerCancelDoesNotFailOthers(t *testing.T) {
	ts := &tokenServer{t: t, expiresIn: 7200, release: make(chan struct{})}
	srv, hits := newTestServer(t, map[string]http.HandlerFunc{"/cgi-bin/stable_token": ts.handle})
	c := newTestClient(t, srv.URL, nil)
	var waiting sync.WaitGroup
	waiting.Add(2)
	c.testHookTokenWait = waiting.Done

	ctxA, cancelA := context.WithCancel(context.Background())
	defer cancelA()
	errA := make(chan error, 1)
	type result struct {
		tok string
		err error
	}
	resB := make(chan result, 1)
	go func() {
		_, err := c.AccessToken(ctxA)
		errA <- err
	}()
	go func() {
		tok, err := c.AccessToken(context.Background())
		resB <- result{tok, err}
	}()
	waiting.Wait()
	cancelA()
	if err := <-errA; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled caller err = %v", err)
	}
	close(ts.release)
	if r := <-resB; r.err != nil || r.tok != "tok-1" {
		t.Fatalf("other caller = %q, %v", r.tok, r.err)
	}
	if got := hits.count("/cgi-bin/stable_token"); got != 1 {
		t.Errorf("upstream requests = %d, want 1", got)
	}
}

func TestRefreshAccessTokenCompareAndRefresh(t *testing.T) {
	const n = 50
	ts := &tokenServer{t: t, expiresIn: 7200, stable: true}
	srv, _ := newTestServer(t, map[string]http.HandlerFunc{"/cgi-bin/stable_token": ts.handle})
	c := newTestClient(t, srv.URL, nil)
	ctx := context.Background()

	if tok, err := c.AccessToken(ctx); err != nil || tok != "tok-1" {
		t.Fatalf("AccessToken = %q, %v", tok, err)
	}
	// A rejection of a token that is no longer cached changes nothing.
	if tok, err := c.refreshAccessToken(ctx, "tok-0"); err != nil || tok != "tok-1" {
		t.Fatalf("refresh of a stale token = %q, %v; want the cached tok-1", tok, err)
	}
	if got := len(ts.requests()); got != 1 {
		t.Fatalf("requests = %d, want 1", got)
	}

	// n callers reject tok-1 at once: one normal look-up (another
	// instance may have replaced the token) serves them all and hands back
	// tok-1 again, then one forced fetch serves them all. The hook counts
	// the first wait of each caller only.
	ts.release = make(chan struct{})
	var waiting sync.WaitGroup
	waiting.Add(n)
	var waits atomic.Int32
	c.testHookTokenWait = func() {
		if waits.Add(1) <= n {
			waiting.Done()
		}
	}
	toks := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			toks[i], errs[i] = c.refreshAccessToken(ctx, "tok-1")
		}()
	}
	waiting.Wait()
	close(ts.release)
	wg.Wait()
	for i := range n {
		if errs[i] != nil || toks[i] != "tok-2" {
			t.Fatalf("caller %d: %q, %v", i, toks[i], errs[i])
		}
	}
	if got, want := fmt.Sprint(ts.requests()), "[false false true]"; got != want {
		t.Errorf("force_refresh per request = %s, want %s", got, want)
	}
	// Late rejections of tok-1 get the new token from the cache.
	if tok, err := c.refreshAccessToken(ctx, "tok-1"); err != nil || tok != "tok-2" {
		t.Fatalf("late refresh = %q, %v", tok, err)
	}
	if got := len(ts.requests()); got != 3 {
		t.Errorf("requests = %d, want 3", got)
	}
}

// TestRefreshAfterAnotherInstanceForced: another process of the app forced
// a new token, which invalidated ours; a rejection fetches the new one in
// normal mode and forces nothing (a force would invalidate the other
// process's token in turn).
func TestRefreshAfterAnotherInstanceForced(t *testing.T) {
	ts := &tokenServer{t: t, expiresIn: 7200, stable: true}
	srv, _ := newTestServer(t, map[string]http.HandlerFunc{"/cgi-bin/stable_token": ts.handle})
	c := newTestClient(t, srv.URL, nil)
	ctx := context.Background()
	if tok, err := c.AccessToken(ctx); err != nil || tok != "tok-1" {
		t.Fatalf("AccessToken = %q, %v", tok, err)
	}
	ts.mu.Lock()
	ts.n++ // the other instance's forced refresh: WeChat now hands out tok-2
	ts.mu.Unlock()
	if tok, err := c.refreshAccessToken(ctx, "tok-1"); err != nil || tok != "tok-2" {
		t.Fatalf("refresh = %q, %v; want tok-2", tok, err)
	}
	if got, want := fmt.Sprint(ts.requests()), "[false false]"; got != want {
		t.Errorf("force_refresh per request = %s, want %s", got, want)
	}
}

// TestRefreshJoinsPlainFetchThenForces covers a rejection that arrives
// while a plain fetch is in flight and that fetch returns the rejected
// token again: the caller must go on to force a refresh.
func TestRefreshJoinsPlainFetchThenForces(t *testing.T) {
	var mu sync.Mutex
	var forced []bool
	release := make(chan struct{})
	srv, _ := newTestServer(t, map[string]http.HandlerFunc{"/cgi-bin/stable_token": func(w http.ResponseWriter, r *http.Request) {
		var req stableTokenRequest
		_ = json.NewDecoder(r.Body).Decode(&req)
		mu.Lock()
		forced = append(forced, req.ForceRefresh)
		first := len(forced) == 1
		mu.Unlock()
		tok := "bad"
		if req.ForceRefresh {
			tok = "good"
		}
		if first {
			<-release
		}
		writeJSON(t, w, map[string]any{"access_token": tok, "expires_in": 7200})
	}})
	c := newTestClient(t, srv.URL, nil)
	var waiting sync.WaitGroup
	waiting.Add(1)
	c.testHookTokenWait = waiting.Done
	plain := make(chan string, 1)
	go func() {
		tok, _ := c.AccessToken(context.Background())
		plain <- tok
	}()
	waiting.Wait() // the plain fetch is in flight
	waiting.Add(1)
	refreshed := make(chan string, 1)
	go func() {
		tok, err := c.refreshAccessToken(context.Background(), "bad")
		if err != nil {
			t.Errorf("refresh: %v", err)
		}
		refreshed <- tok
	}()
	waiting.Wait()
	c.testHookTokenWait = nil
	close(release)
	if tok := <-plain; tok != "bad" {
		t.Errorf("plain caller got %q", tok)
	}
	if tok := <-refreshed; tok != "good" {
		t.Errorf("refreshing caller got %q, want good", tok)
	}
	mu.Lock()
	defer mu.Unlock()
	if got := fmt.Sprint(forced); got != "[false true]" {
		t.Errorf("force_refresh per request = %s", got)
	}
}
