package platform

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/wxauth/caddy-wechat-auth/internal/wechat"
)

// maxResponseBytes bounds an answer read before decoding.
const maxResponseBytes = 1 << 20

// maxCodeBytes bounds a login code; the platforms' codes are far shorter.
const maxCodeBytes = 512

// caller is the HTTP plumbing the non-WeChat exchangers share: one attempt
// within the timeout, the size limit, the mapping of transport failures and
// HTTP statuses, and the one retry after "busy".
type caller struct {
	platform string
	base     string
	appID    string
	secret   string
	timeout  time.Duration
	hc       *http.Client
	now      func() time.Time
	log      *zap.Logger
	observe  func(api, result string, d time.Duration)
}

func newCaller(cfg Config) (*caller, error) {
	p := cfg.Platform
	if strings.TrimSpace(cfg.AppID) == "" {
		return nil, fmt.Errorf("creating %s code exchange: app id is required", p)
	}
	if cfg.AppSecret == "" && p != Alipay {
		return nil, fmt.Errorf("creating %s code exchange: app secret is required", p)
	}
	if cfg.Timeout < 0 {
		return nil, fmt.Errorf("creating %s code exchange: timeout %v is negative", p, cfg.Timeout)
	}
	base := cfg.BaseURL
	if base == "" {
		base = DefaultBaseURL(p)
	}
	base = strings.TrimRight(base, "/")
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("creating %s code exchange: base url %q must be an http(s) URL with a host and no user, query or fragment", p, base)
	}
	c := &caller{
		platform: p,
		base:     base,
		appID:    cfg.AppID,
		secret:   cfg.AppSecret,
		timeout:  cfg.Timeout,
		hc:       cfg.HTTPClient,
		now:      cfg.Now,
		log:      cfg.Logger,
		observe:  cfg.Observe,
	}
	if c.timeout == 0 {
		c.timeout = wechat.DefaultTimeout
	}
	if c.hc == nil {
		c.hc = wechat.NewHTTPClient()
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.log == nil {
		c.log = zap.NewNop()
	}
	return c, nil
}

// request is one API call.
type request struct {
	api     string     // name in errors, logs and metrics
	method  string     // GET or POST
	path    string     // below the base URL
	query   url.Values // GET parameters; may hold secrets
	form    url.Values // POST form body; may hold secrets
	json    any        // POST JSON body; may hold secrets
	secrets []string   // redacted from the platform's messages
}

// answer is an HTTP answer the platform's parser reads: any status but
// 5xx and 429, which the caller maps itself.
type answer struct {
	status int
	body   []byte
}

// parser turns an answer into a session or an *Error.
type parser func(a answer) (*Session, error)

// exchange performs req and parses its answer, once more when the first
// attempt says the platform is busy (never after a timeout or a failed
// connection: the code may already be spent).
func (c *caller) exchange(ctx context.Context, req *request, parse parser) (*Session, error) {
	req.secrets = append(req.secrets, c.secret)
	s, err := c.timed(ctx, req, parse)
	var pe *Error
	if errors.As(err, &pe) && pe.busy && ctx.Err() == nil {
		if ce := c.log.Check(zap.DebugLevel, "platform busy, retrying once"); ce != nil {
			ce.Write(zap.String("platform", c.platform), zap.String("api", req.api))
		}
		s, err = c.timed(ctx, req, parse)
	}
	if err != nil {
		return nil, c.fail(req.api, err)
	}
	return s, nil
}

// timed is one attempt, reported to the Observe hook.
func (c *caller) timed(ctx context.Context, req *request, parse parser) (*Session, error) {
	start := c.now()
	s, err := c.attempt(ctx, req, parse)
	if c.observe != nil {
		c.observe(c.platform+"_"+req.api, wechat.Result(err), c.now().Sub(start))
	}
	return s, err
}

// attempt performs req once within the timeout.
func (c *caller) attempt(parent context.Context, req *request, parse parser) (*Session, error) {
	ctx, cancel := context.WithTimeout(parent, c.timeout)
	defer cancel()
	u := c.base + req.path
	if len(req.query) > 0 {
		u += "?" + req.query.Encode()
	}
	var body io.Reader
	ctype := ""
	switch {
	case req.form != nil:
		body = strings.NewReader(req.form.Encode())
		ctype = "application/x-www-form-urlencoded;charset=utf-8"
	case req.json != nil:
		b, err := json.Marshal(req.json)
		if err != nil {
			return nil, c.errorf(req.api, ErrBadResponse, "encoding the request failed", nil)
		}
		body = bytes.NewReader(b)
		ctype = "application/json"
	}
	hreq, err := http.NewRequestWithContext(ctx, req.method, u, body)
	if err != nil {
		// The URL may hold secrets; the error would quote it.
		return nil, c.errorf(req.api, ErrBadResponse, "building the request failed", nil)
	}
	hreq.Header.Set("Accept", "application/json")
	if ctype != "" {
		hreq.Header.Set("Content-Type", ctype)
	}
	resp, err := c.hc.Do(hreq)
	if err != nil {
		return nil, c.transportError(parent, req, err)
	}
	defer func() {
		_, _ = io.CopyN(io.Discard, resp.Body, 4<<10)
		_ = resp.Body.Close()
	}()
	switch {
	case resp.StatusCode >= 500:
		e := c.errorf(req.api, ErrUnavailable, fmt.Sprintf("http status %d", resp.StatusCode), nil)
		e.busy = true
		e.RetryAfter = wechat.ParseRetryAfter(resp.Header.Get("Retry-After"), c.now())
		return nil, e
	case resp.StatusCode == http.StatusTooManyRequests:
		e := c.errorf(req.api, ErrRateLimited, "http status 429", nil)
		e.RetryAfter = wechat.ParseRetryAfter(resp.Header.Get("Retry-After"), c.now())
		return nil, e
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	if err != nil {
		return nil, c.transportError(parent, req, err)
	}
	if len(raw) > maxResponseBytes {
		return nil, c.errorf(req.api, ErrBadResponse, fmt.Sprintf("answer larger than %d bytes", maxResponseBytes), nil)
	}
	return parse(answer{status: resp.StatusCode, body: raw})
}

// transportError turns a failure of the HTTP client into a secret-free
// error: the caller's own cancellation as such, anything else ErrUnavailable.
func (c *caller) transportError(parent context.Context, req *request, err error) error {
	if perr := parent.Err(); perr != nil {
		return fmt.Errorf("%s %s: %w", c.platform, req.api, perr)
	}
	var ue *url.Error
	for errors.As(err, &ue) {
		err = ue.Err
	}
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return c.errorf(req.api, ErrUnavailable, fmt.Sprintf("no answer within %v", c.timeout), context.DeadlineExceeded)
	}
	return c.errorf(req.api, ErrUnavailable, "request failed", errors.New(wechat.Sanitize(err.Error(), req.secrets)))
}

// errorf builds an *Error of this caller's platform.
func (c *caller) errorf(api string, kind error, detail string, cause error) *Error {
	return &Error{Platform: c.platform, API: api, Kind: kind, Detail: detail, Cause: cause}
}

// apiError builds the *Error of an error code the platform answered with.
func (c *caller) apiError(api string, kind error, code, msg string, secrets []string) *Error {
	return &Error{Platform: c.platform, API: api, Kind: kind, Code: code, Message: wechat.Sanitize(msg, append(secrets, c.secret))}
}

// notJSON is the error of an answer that is not the expected JSON; the
// decoder's message may quote the body, so only its kind is kept.
func (c *caller) notJSON(api string, status int, err error) *Error {
	d := "answer is not the expected JSON"
	if err != nil {
		d += " (" + wechat.JSONErrorKind(err) + ")"
	}
	if status != http.StatusOK {
		d += fmt.Sprintf(", http status %d", status)
	}
	return c.errorf(api, ErrBadResponse, d, nil)
}

// fail logs err (secret-free by construction) and returns it. A bad code
// is expected in normal operation and logged at debug level only.
func (c *caller) fail(api string, err error) error {
	if errors.Is(err, context.Canceled) {
		return err
	}
	lvl := zap.ErrorLevel
	if errors.Is(err, ErrInvalidCode) {
		lvl = zap.DebugLevel
	}
	if ce := c.log.Check(lvl, "platform code exchange failed"); ce != nil {
		ce.Write(zap.String("platform", c.platform), zap.String("api", api), zap.String("error", err.Error()))
	}
	return err
}

// checkCode refuses an empty or oversized code without a request.
func (c *caller) checkCode(api, code string) error {
	switch {
	case code == "":
		return &Error{Platform: c.platform, API: api, Kind: ErrInvalidCode, Detail: "empty code", Cause: ErrNoCode}
	case len(code) > maxCodeBytes:
		return c.errorf(api, ErrInvalidCode, fmt.Sprintf("code longer than %d bytes", maxCodeBytes), nil)
	}
	return nil
}

// decodeKey decodes a base64 session_key and checks its length; its error
// never quotes the key.
func decodeKey(s string, want int) ([]byte, error) {
	if s == "" {
		return nil, errors.New("answer has no session_key")
	}
	key, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, errors.New("session_key is not valid base64")
	}
	if len(key) != want {
		return nil, fmt.Errorf("session_key is %d bytes, want %d", len(key), want)
	}
	return key, nil
}

// CloseIdleConnections closes the idle keep-alive connections of x's HTTP
// client, when x has its own (every exchanger but WeChat's, whose client
// the caller owns); call it when x is retired, e.g. on a config reload.
func CloseIdleConnections(x Exchanger) {
	var c *caller
	switch v := x.(type) {
	case *qqExchanger:
		c = v.c
	case *douyinExchanger:
		c = v.c
	case *alipayExchanger:
		c = v.c
	case *baiduExchanger:
		c = v.c
	}
	if c != nil {
		c.hc.CloseIdleConnections()
	}
}
