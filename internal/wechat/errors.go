package wechat

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Sentinel errors. Errors returned by this package wrap them, so callers
// test with errors.Is.
var (
	// ErrInvalidCode: the login or phone code is invalid, expired or
	// already used (errcode 40029, 40163), or missing (41008). An empty
	// code is refused locally with this error, without calling WeChat.
	ErrInvalidCode = errors.New("wechat: invalid code")
	// ErrUserBlocked: WeChat refuses to log in a high-risk user (errcode 40226).
	ErrUserBlocked = errors.New("wechat: user blocked")
	// ErrRateLimited: WeChat's frequency limit was reached (errcode 45011,
	// or HTTP 429).
	ErrRateLimited = errors.New("wechat: rate limited")
	// ErrUnavailable: WeChat could not be reached or did not answer in
	// time: errcode -1 after the one retry, a timeout, a connection error,
	// or an HTTP 5xx status.
	ErrUnavailable = errors.New("wechat: unavailable")
	// ErrBadResponse: WeChat answered something this package cannot use:
	// not JSON, over the size limit, an unexpected HTTP status, or a
	// success answer missing a required field (openid, a 16-byte
	// session_key, access_token, phone_info).
	ErrBadResponse = errors.New("wechat: bad response")
	// ErrAPI: any non-zero errcode not covered by a more specific sentinel.
	ErrAPI = errors.New("wechat: api error")
	// ErrWatermark: the watermark.appid of a phone number or of decrypted
	// open data is not this app's appid (or is missing).
	ErrWatermark = errors.New("wechat: watermark mismatch")
	// ErrBadData: open data that cannot be decrypted: bad base64, a key or
	// iv that is not 16 bytes, a ciphertext that is not a positive multiple
	// of 16 bytes, bad PKCS#7 padding, or a plaintext that is not a JSON
	// object.
	ErrBadData = errors.New("wechat: bad open data")
	// ErrSessionKeyInvalid: WeChat says the session key is no longer the
	// user's current one (checksession errcode 87009). A session key that
	// is not 16 bytes long is refused locally with this error.
	ErrSessionKeyInvalid = errors.New("wechat: session key invalid")
)

// WeChat errcodes this package treats specially.
const (
	codeSystemBusy        = -1
	codeInvalidCredential = 40001
	codeInvalidToken      = 40014
	codeTokenExpired      = 42001
	codeInvalidCode       = 40029
	codeCodeUsed          = 40163
	codeMissingCode       = 41008
	codeUserBlocked       = 40226
	codeRateLimited       = 45011
	codeInvalidSignature  = 87009
)

// Retry-After suggestions when WeChat gives none. 45011 is a per-minute
// quota; -1 and transport failures are usually short.
const (
	retryAfterRateLimited = 60 * time.Second
	retryAfterUnavailable = 5 * time.Second
	maxRetryAfter         = 10 * time.Minute
)

// APIError is a non-zero errcode from WeChat. Is maps Code to the sentinel
// errors of this package, so callers rarely need the type itself.
type APIError struct {
	// API names the call: "jscode2session", "stable_token",
	// "getuserphonenumber" or "checksession".
	API string
	// Code is WeChat's errcode.
	Code int
	// Message is WeChat's errmsg, with any secret of the request redacted.
	Message string
}

// Error returns "wechat <api>: errcode <code>: <errmsg>".
func (e *APIError) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("wechat %s: errcode %d", e.API, e.Code)
	}
	return fmt.Sprintf("wechat %s: errcode %d: %s", e.API, e.Code, e.Message)
}

// Is reports whether target is the sentinel error for e.Code: 40029, 40163
// and 41008 are ErrInvalidCode, 40226 ErrUserBlocked, 45011 ErrRateLimited,
// -1 ErrUnavailable, 87009 ErrSessionKeyInvalid and every other code ErrAPI.
func (e *APIError) Is(target error) bool {
	return target == e.sentinel()
}

func (e *APIError) sentinel() error {
	switch e.Code {
	case codeInvalidCode, codeCodeUsed, codeMissingCode:
		return ErrInvalidCode
	case codeUserBlocked:
		return ErrUserBlocked
	case codeRateLimited:
		return ErrRateLimited
	case codeSystemBusy:
		return ErrUnavailable
	case codeInvalidSignature:
		return ErrSessionKeyInvalid
	default:
		return ErrAPI
	}
}

// tokenRejected reports whether the errcode means the access token is bad.
func (e *APIError) tokenRejected() bool {
	return e.Code == codeInvalidCredential || e.Code == codeInvalidToken || e.Code == codeTokenExpired
}

// RetryAfter suggests how long a client should wait before trying again
// after err: the upstream Retry-After header when WeChat (or a proxy in
// front of it) sent one, otherwise 60s for ErrRateLimited and 5s for
// ErrUnavailable. It returns 0 for every other error, including nil.
func RetryAfter(err error) time.Duration {
	if err == nil {
		return 0
	}
	var he *httpError
	if errors.As(err, &he) && he.retryAfter > 0 {
		return he.retryAfter
	}
	switch {
	case errors.Is(err, ErrRateLimited):
		return retryAfterRateLimited
	case errors.Is(err, ErrUnavailable):
		return retryAfterUnavailable
	default:
		return 0
	}
}

// httpError is a failure below WeChat's JSON layer: a transport error, an
// HTTP status, or a body that could not be decoded. It wraps kind (one of
// the sentinels) and, when there is one, a secret-free cause.
type httpError struct {
	api        string
	kind       error
	detail     string
	cause      error
	retryAfter time.Duration
}

func (e *httpError) Error() string {
	var b strings.Builder
	b.WriteString("wechat ")
	b.WriteString(e.api)
	b.WriteString(": ")
	b.WriteString(strings.TrimPrefix(e.kind.Error(), "wechat: "))
	if e.detail != "" {
		b.WriteString(": ")
		b.WriteString(e.detail)
	}
	if e.cause != nil {
		b.WriteString(": ")
		b.WriteString(e.cause.Error())
	}
	return b.String()
}

// Unwrap returns the sentinel and the cause, so errors.Is matches both
// (for example ErrUnavailable and context.DeadlineExceeded).
func (e *httpError) Unwrap() []error {
	if e.cause == nil {
		return []error{e.kind}
	}
	return []error{e.kind, e.cause}
}

// ParseRetryAfter reads a Retry-After header given in seconds or as an
// HTTP date; it returns 0 when absent, unparsable or not in the future.
func ParseRetryAfter(h string, now time.Time) time.Duration {
	h = strings.TrimSpace(h)
	if h == "" {
		return 0
	}
	var d time.Duration
	if secs, err := strconv.ParseInt(h, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		if secs > int64(maxRetryAfter/time.Second) {
			return maxRetryAfter
		}
		d = time.Duration(secs) * time.Second
	} else if t, err := http.ParseTime(h); err == nil {
		d = t.Sub(now)
	}
	if d <= 0 {
		return 0
	}
	return min(d, maxRetryAfter)
}

// asAPIError returns err as an *APIError when it is one (or wraps one).
func asAPIError(err error) (*APIError, bool) {
	var ae *APIError
	if errors.As(err, &ae) {
		return ae, true
	}
	return nil, false
}
