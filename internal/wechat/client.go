package wechat

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
	"unicode"

	"go.uber.org/zap"
	"golang.org/x/sync/singleflight"
)

// DefaultBaseURL is WeChat's API server.
const DefaultBaseURL = "https://api.weixin.qq.com"

// DefaultTimeout bounds one API call when Config.Timeout is zero.
const DefaultTimeout = 5 * time.Second

// maxResponseBytes bounds a WeChat answer read before decoding.
const maxResponseBytes = 1 << 20

// maxErrmsgBytes bounds WeChat's errmsg as kept in errors and logs.
const maxErrmsgBytes = 256

// Config configures a Client.
type Config struct {
	// BaseURL is the scheme and host (and optional path prefix) of WeChat's
	// API, or of a stand-in such as the emulator; a trailing slash is
	// tolerated. Default: "https://api.weixin.qq.com".
	BaseURL string
	// AppID is the mini-program's appid. Required.
	AppID string
	// AppSecret is the mini-program's app secret. Required. It is sent to
	// WeChat and nowhere else.
	AppSecret string
	// Timeout bounds one API call, from connecting to reading the last
	// byte of the answer. A retry after errcode -1 gets a new Timeout.
	// Default: 5s.
	Timeout time.Duration
	// HTTPClient sends the requests. The Timeout is applied per call
	// through the request context, so the client's own Timeout may stay
	// zero. Default: a dedicated client with its own Transport, which
	// does not follow redirects.
	HTTPClient *http.Client
	// Now is the clock used for token expiry. Default: time.Now.
	Now func() time.Time
	// Logger receives debug entries for calls and error entries for
	// failures: the API name, errcode and errmsg, never a secret. Default:
	// no logging.
	Logger *zap.Logger
	// Observe, when set, is called after every HTTP attempt (a retry
	// after errcode -1 is a second attempt) with the API name
	// ("jscode2session", "stable_token", "getuserphonenumber",
	// "checksession"), its result (see Result) and how long it took by
	// Now. It must be cheap and safe for concurrent use. Default: none.
	Observe func(api, result string, d time.Duration)
}

// Client calls WeChat's server API for one mini-program. It is safe for
// concurrent use; create one per app and share it.
type Client struct {
	base    string
	appID   string
	secret  string
	timeout time.Duration
	hc      *http.Client
	now     func() time.Time
	log     *zap.Logger
	observe func(api, result string, d time.Duration)

	codes singleflight.Group // Code2Session calls, keyed by a hash of the code

	tokMu    sync.Mutex
	tok      string      // cached access token; "" when none
	tokExp   time.Time   // when tok stops being served from the cache
	tokFetch *tokenFetch // the fetch in flight, if any
	// tokRejected is the last token a caller saw WeChat reject; tokStale
	// is set to it when a normal stable_token fetch hands it back all the
	// same, and a caller rejected with tokStale forces a new one at once.
	tokRejected, tokStale string

	// Test hooks, called when a caller starts waiting for a shared call.
	testHookCodeWait  func()
	testHookTokenWait func()
}

// New checks cfg, fills in its defaults and returns a Client.
func New(cfg Config) (*Client, error) {
	if strings.TrimSpace(cfg.AppID) == "" {
		return nil, errors.New("creating wechat client: app id is required")
	}
	if cfg.AppSecret == "" {
		return nil, errors.New("creating wechat client: app secret is required")
	}
	if cfg.Timeout < 0 {
		return nil, fmt.Errorf("creating wechat client: timeout %v is negative", cfg.Timeout)
	}
	base := cfg.BaseURL
	if base == "" {
		base = DefaultBaseURL
	}
	base = strings.TrimRight(base, "/")
	u, err := url.Parse(base)
	if err != nil {
		return nil, fmt.Errorf("creating wechat client: parsing base url: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("creating wechat client: base url %q must be an http(s) URL with a host and no user, query or fragment", base)
	}
	c := &Client{
		base:    base,
		appID:   cfg.AppID,
		secret:  cfg.AppSecret,
		timeout: cfg.Timeout,
		hc:      cfg.HTTPClient,
		now:     cfg.Now,
		log:     cfg.Logger,
		observe: cfg.Observe,
	}
	if c.timeout == 0 {
		c.timeout = DefaultTimeout
	}
	if c.hc == nil {
		c.hc = NewHTTPClient()
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.log == nil {
		c.log = zap.NewNop()
	}
	return c, nil
}

// CloseIdleConnections closes the idle keep-alive connections of the
// client's HTTP transport; call it when the Client is retired (for example
// on a config reload) so its pool does not linger until the idle timeout.
func (c *Client) CloseIdleConnections() {
	c.hc.CloseIdleConnections()
}

// NewHTTPClient returns a client with its own Transport (so other users of
// http.DefaultTransport neither share nor disturb its pool) that refuses
// redirects: neither WeChat nor the other platforms redirect an API call,
// and following a redirect would carry the secret to wherever it points.
// The other platforms' code exchanges use it too.
func NewHTTPClient() *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			Proxy: http.ProxyFromEnvironment,
			DialContext: (&net.Dialer{
				Timeout:   10 * time.Second,
				KeepAlive: 30 * time.Second,
			}).DialContext,
			ForceAttemptHTTP2:      true,
			MaxIdleConns:           64,
			MaxIdleConnsPerHost:    32,
			MaxConnsPerHost:        256,
			IdleConnTimeout:        90 * time.Second,
			TLSHandshakeTimeout:    10 * time.Second,
			ExpectContinueTimeout:  time.Second,
			MaxResponseHeaderBytes: 64 << 10,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// apiStatus is the errcode/errmsg pair every WeChat answer may carry.
type apiStatus struct {
	ErrCode int    `json:"errcode"`
	ErrMsg  string `json:"errmsg"`
}

func (s *apiStatus) status() *apiStatus { return s }

// response is implemented by every answer type through an embedded apiStatus.
type response interface{ status() *apiStatus }

// request describes one API call.
type request struct {
	api    string     // name used in errors and logs
	method string     // http.MethodGet or http.MethodPost
	path   string     // below the base URL, starting with "/"
	query  url.Values // may hold secrets: never logged
	body   any        // JSON-encoded when non-nil
	// secrets are redacted from WeChat's errmsg before it is kept.
	secrets []string
}

// call performs req, retrying once after errcode -1 and never otherwise,
// and returns the decoded answer of the last attempt. Each attempt decodes
// into a fresh T, so nothing of a "system busy" answer leaks into the
// retry's result.
func call[T any, PT interface {
	*T
	response
}](ctx context.Context, c *Client, req *request) (*T, error) {
	req.secrets = append(req.secrets, c.secret)
	out := PT(new(T))
	err := c.timedAttempt(ctx, req, out)
	if ae, ok := asAPIError(err); ok && ae.Code == codeSystemBusy {
		c.logRetry(req.api)
		out = PT(new(T))
		err = c.timedAttempt(ctx, req, out)
	}
	if err != nil {
		return nil, err
	}
	return out, nil
}

// timedAttempt is attempt, reported to the Observe hook.
func (c *Client) timedAttempt(ctx context.Context, req *request, out response) error {
	if c.observe == nil {
		return c.attempt(ctx, req, out)
	}
	start := c.now()
	err := c.attempt(ctx, req, out)
	c.observe(req.api, Result(err), c.now().Sub(start))
	return err
}

// Result names the outcome of a call for metrics, from a small fixed set:
// "ok", "invalid_code", "user_blocked", "rate_limited", "system_busy"
// (errcode -1), "timeout", "unavailable" (connection failures, HTTP 5xx),
// "bad_response", "token_rejected" (the access token was refused),
// "session_key_invalid", "api_error" (any other errcode) or "canceled"
// (the caller gave up).
func Result(err error) string {
	if err == nil {
		return "ok"
	}
	if ae, ok := asAPIError(err); ok {
		switch {
		case ae.Code == codeSystemBusy:
			return "system_busy"
		case ae.tokenRejected():
			return "token_rejected"
		}
	}
	switch {
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, ErrInvalidCode):
		return "invalid_code"
	case errors.Is(err, ErrUserBlocked):
		return "user_blocked"
	case errors.Is(err, ErrRateLimited):
		return "rate_limited"
	case errors.Is(err, ErrUnavailable) && errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, ErrUnavailable):
		return "unavailable"
	case errors.Is(err, ErrBadResponse):
		return "bad_response"
	case errors.Is(err, ErrSessionKeyInvalid):
		return "session_key_invalid"
	}
	return "api_error"
}

// attempt performs req once, within c.timeout.
func (c *Client) attempt(parent context.Context, req *request, out response) error {
	ctx, cancel := context.WithTimeout(parent, c.timeout)
	defer cancel()

	u := c.base + req.path
	if len(req.query) > 0 {
		u += "?" + req.query.Encode()
	}
	var body io.Reader
	if req.body != nil {
		b, err := json.Marshal(req.body)
		if err != nil {
			return fmt.Errorf("wechat %s: encoding request: %w", req.api, err)
		}
		body = bytes.NewReader(b)
	}
	hreq, err := http.NewRequestWithContext(ctx, req.method, u, body)
	if err != nil {
		// The URL holds secrets; the error would quote it.
		return fmt.Errorf("wechat %s: building request failed", req.api)
	}
	hreq.Header.Set("Accept", "application/json")
	if req.body != nil {
		hreq.Header.Set("Content-Type", "application/json")
	}

	start := c.now()
	resp, err := c.hc.Do(hreq)
	if err != nil {
		return c.fail(req.api, c.transportError(parent, req, err))
	}
	defer func() {
		// Drain a little so the connection can be reused, then close.
		_, _ = io.CopyN(io.Discard, resp.Body, 4<<10)
		_ = resp.Body.Close()
	}()

	switch {
	case resp.StatusCode == http.StatusOK:
	case resp.StatusCode >= 500:
		return c.fail(req.api, &httpError{api: req.api, kind: ErrUnavailable,
			detail:     fmt.Sprintf("http status %d", resp.StatusCode),
			retryAfter: ParseRetryAfter(resp.Header.Get("Retry-After"), c.now())})
	case resp.StatusCode == http.StatusTooManyRequests:
		return c.fail(req.api, &httpError{api: req.api, kind: ErrRateLimited,
			detail:     fmt.Sprintf("http status %d", resp.StatusCode),
			retryAfter: ParseRetryAfter(resp.Header.Get("Retry-After"), c.now())})
	default:
		return c.fail(req.api, &httpError{api: req.api, kind: ErrBadResponse,
			detail: fmt.Sprintf("unexpected http status %d", resp.StatusCode)})
	}

	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	if err != nil {
		return c.fail(req.api, c.transportError(parent, req, err))
	}
	if len(raw) > maxResponseBytes {
		return c.fail(req.api, &httpError{api: req.api, kind: ErrBadResponse,
			detail: fmt.Sprintf("answer larger than %d bytes", maxResponseBytes)})
	}
	if err := json.Unmarshal(raw, out); err != nil {
		// The decoder's message may quote the body; keep only its kind.
		return c.fail(req.api, &httpError{api: req.api, kind: ErrBadResponse,
			detail: "answer is not the expected JSON (" + JSONErrorKind(err) + ")"})
	}
	st := out.status()
	if st.ErrCode != 0 {
		return c.fail(req.api, &APIError{API: req.api, Code: st.ErrCode, Message: Sanitize(st.ErrMsg, req.secrets)})
	}
	if ce := c.log.Check(zap.DebugLevel, "wechat api call"); ce != nil {
		ce.Write(zap.String("api", req.api), zap.Duration("duration", c.now().Sub(start)))
	}
	return nil
}

// transportError turns an error from the HTTP client into a secret-free
// error. The caller's own cancellation is reported as such; anything else
// (our timeout, a refused connection, a reset) is ErrUnavailable.
func (c *Client) transportError(parent context.Context, req *request, err error) error {
	api := req.api
	if perr := parent.Err(); perr != nil {
		return fmt.Errorf("wechat %s: %w", api, perr)
	}
	// *url.Error quotes the URL, whose query holds the secret, code or token.
	var ue *url.Error
	for errors.As(err, &ue) {
		err = ue.Err
	}
	if errors.Is(err, context.DeadlineExceeded) || isTimeout(err) {
		return &httpError{api: api, kind: ErrUnavailable,
			detail: fmt.Sprintf("no answer within %v", c.timeout), cause: context.DeadlineExceeded}
	}
	return &httpError{api: api, kind: ErrUnavailable, detail: "request failed", cause: errors.New(Sanitize(err.Error(), req.secrets))}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// fail logs err (secret-free by construction) and returns it. The caller's
// own cancellation is not a WeChat failure and is not logged.
func (c *Client) fail(api string, err error) error {
	if errors.Is(err, context.Canceled) {
		return err
	}
	var ae *APIError
	if errors.As(err, &ae) {
		lvl := zap.ErrorLevel
		if errors.Is(err, ErrInvalidCode) || errors.Is(err, ErrSessionKeyInvalid) || ae.tokenRejected() || ae.Code == codeSystemBusy {
			// Expected in normal operation, or handled by a retry.
			lvl = zap.DebugLevel
		}
		if ce := c.log.Check(lvl, "wechat api error"); ce != nil {
			ce.Write(zap.String("api", api), zap.Int("errcode", ae.Code), zap.String("errmsg", ae.Message))
		}
		return err
	}
	if ce := c.log.Check(zap.ErrorLevel, "wechat api call failed"); ce != nil {
		ce.Write(zap.String("api", api), zap.String("error", err.Error()))
	}
	return err
}

func (c *Client) logRetry(api string) {
	if ce := c.log.Check(zap.DebugLevel, "wechat system busy, retrying once"); ce != nil {
		ce.Write(zap.String("api", api))
	}
}

// JSONErrorKind names a JSON decoding failure without quoting input.
func JSONErrorKind(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("syntax error at offset %d", se.Offset)
	case errors.As(err, &te):
		return fmt.Sprintf("field %q has the wrong type", te.Field)
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return "unexpected end"
	default:
		return "undecodable"
	}
}

// Sanitize bounds text from WeChat, another platform or the network, removes control
// characters and replaces every non-empty secret with "[redacted]".
func Sanitize(s string, secrets []string) string {
	for _, sec := range secrets {
		if sec != "" {
			s = strings.ReplaceAll(s, sec, "[redacted]")
		}
	}
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == unicode.ReplacementChar {
			return -1
		}
		return r
	}, s)
	if len(s) > maxErrmsgBytes {
		s = strings.ToValidUTF8(s[:maxErrmsgBytes], "") + "…"
	}
	return s
}
