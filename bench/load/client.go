package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// loader is the HTTP client side of the run.
type loader struct {
	cfg                               config
	client                            *http.Client
	emulator, open, hs, eddsa, es, rs string // base URLs
	pg                                string // base URL of the PostgreSQL site; "" without -postgres
	progress                          io.Writer
}

// newLoader is a loader for cfg's sites, with a keep-alive pool of one
// connection per worker and host; progress gets the progress lines.
func newLoader(cfg config, progress io.Writer) *loader {
	tr := &http.Transport{
		Proxy:               nil, // loopback only, never through a proxy
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        4 * cfg.concurrency,
		MaxIdleConnsPerHost: cfg.concurrency,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	base := func(port int) string { return "http://127.0.0.1:" + strconv.Itoa(port) }
	pgBase := ""
	if cfg.postgres != "" {
		pgBase = base(cfg.ports.pg)
	}
	return &loader{
		cfg: cfg,
		client: &http.Client{
			Transport:     tr,
			Timeout:       30 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		emulator: base(cfg.ports.emulator),
		open:     base(cfg.ports.open),
		hs:       base(cfg.ports.hs256),
		eddsa:    base(cfg.ports.eddsa),
		es:       base(cfg.ports.es256),
		rs:       base(cfg.ports.rs256),
		pg:       pgBase,
		progress: progress,
	}
}

// statusError is an answer other than the expected one. It holds the
// status and the error code of the body, never the body itself.
type statusError struct {
	status int
	code   string
}

// Error is the status and the error code.
func (e *statusError) Error() string {
	if e.code == "" {
		return "status " + strconv.Itoa(e.status)
	}
	return "status " + strconv.Itoa(e.status) + " (" + e.code + ")"
}

// do sends req and returns the body of a 200 answer.
func (l *loader) do(req *http.Request) ([]byte, error) {
	resp, err := l.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return nil, fmt.Errorf("reading the answer: %w", err)
	}
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return nil, fmt.Errorf("reading the answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
		}
		_ = json.Unmarshal(body, &e) // best effort: the code only
		if len(e.Error) > 40 {
			e.Error = e.Error[:40]
		}
		return nil, &statusError{status: resp.StatusCode, code: e.Error}
	}
	return body, nil
}

// get asks for the guard route of base and wants 200 with the route's body.
func (l *loader) get(ctx context.Context, base, tok string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+guardPath, nil)
	if err != nil {
		return fmt.Errorf("building the request: %w", err)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	body, err := l.do(req)
	if err != nil {
		return err
	}
	if string(body) != routeBody {
		return errors.New("status 200 with an unexpected body")
	}
	return nil
}

// postJSON posts in as JSON and decodes a 200 answer into out.
func (l *loader) postJSON(ctx context.Context, url string, in, out any) error {
	b, err := json.Marshal(in)
	if err != nil {
		return fmt.Errorf("encoding the request: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("building the request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	body, err := l.do(req)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("decoding the answer: %w", err)
	}
	return nil
}

// tokens is the part of a login or refresh answer the run uses.
type tokens struct {
	Status       string `json:"status"`
	Token        string `json:"token"`
	RefreshToken string `json:"refresh_token"`
	NewUser      bool   `json:"new_user"`
}

// check fails an answer that is 200 but not a success with both tokens.
func (t tokens) check() error {
	if t.Status != "success" || t.Token == "" || t.RefreshToken == "" {
		return errors.New("status 200 without status success and both tokens")
	}
	return nil
}

// login mints a code for openid at the emulator and logs in with it at
// base, as a phone would: wx.login, then POST /wx/login.
func (l *loader) login(ctx context.Context, base, openid string) (tokens, error) {
	var minted struct {
		Code string `json:"code"`
	}
	if err := l.postJSON(ctx, l.emulator+"/emulator/code", map[string]string{"openid": openid}, &minted); err != nil {
		return tokens{}, fmt.Errorf("minting a code: %w", err)
	}
	if minted.Code == "" {
		return tokens{}, errors.New("minting a code: no code in the answer")
	}
	var t tokens
	if err := l.postJSON(ctx, base+"/wx/login", map[string]string{"code": minted.Code}, &t); err != nil {
		return tokens{}, fmt.Errorf("logging in: %w", err)
	}
	return t, t.check()
}

// refresh rotates rt at base.
func (l *loader) refresh(ctx context.Context, base, rt string) (tokens, error) {
	var t tokens
	if err := l.postJSON(ctx, base+"/wx/refresh", map[string]string{"refresh_token": rt}, &t); err != nil {
		return tokens{}, fmt.Errorf("refreshing: %w", err)
	}
	return t, t.check()
}

// result is one run of a phase.
type result struct {
	ok, failed int64
	elapsed    time.Duration
	firstErr   string
}

// rate is successful operations per second.
func (r result) rate() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.ok) / r.elapsed.Seconds()
}

// add folds the errors of a warm-up into a measured result.
func (r *result) add(warm result) {
	r.failed += warm.failed
	if r.firstErr == "" {
		r.firstErr = warm.firstErr
	}
}

// op is one operation of a phase, by worker w.
type op func(ctx context.Context, w int) error

// drive runs op from workers goroutines until limit operations have been
// started or d has passed, whichever is first; operations in flight at the
// end are completed and counted.
func (l *loader) drive(ctx context.Context, workers int, limit int64, d time.Duration, fn op) result {
	var started, ok, failed atomic.Int64
	var first atomic.Pointer[string]
	start := l.cfg.now()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for ctx.Err() == nil && started.Add(1) <= limit && l.cfg.now().Before(deadline) {
				if err := fn(ctx, w); err != nil {
					failed.Add(1)
					msg := err.Error()
					first.CompareAndSwap(nil, &msg)
					continue
				}
				ok.Add(1)
			}
		})
	}
	wg.Wait()
	r := result{ok: ok.Load(), failed: failed.Load(), elapsed: l.cfg.now().Sub(start)}
	if p := first.Load(); p != nil {
		r.firstErr = *p
	}
	return r
}

// measure warms up with fn, then measures it within the phase bounds.
func (l *loader) measure(ctx context.Context, name string, workers int, fn op) (result, error) {
	fmt.Fprintf(l.progress, "load: %s\n", name)
	var warm result
	if l.cfg.warmup > 0 {
		warm = l.drive(ctx, workers, l.cfg.requests, l.cfg.warmup, fn)
	}
	r := l.drive(ctx, workers, l.cfg.requests, l.cfg.duration, fn)
	r.add(warm)
	if err := ctx.Err(); err != nil {
		return r, fmt.Errorf("%s: interrupted: %w", name, err)
	}
	return r, nil
}

// setup runs fn exactly n times (concurrently, unmeasured) and fails on
// any error: the measurement that follows needs all of it.
func (l *loader) setup(ctx context.Context, what string, n int, fn op) error {
	r := l.drive(ctx, min(l.cfg.concurrency, n), int64(n), setupBudget, fn)
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: interrupted: %w", what, err)
	}
	if r.failed > 0 || r.ok != int64(n) {
		return fmt.Errorf("%s: %d of %d done, %d failed (first: %s)", what, r.ok, n, r.failed, r.firstErr)
	}
	return nil
}
