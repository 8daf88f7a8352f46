package handler

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/wxauth/caddy-wechat-auth/internal/platform"
	"github.com/wxauth/caddy-wechat-auth/internal/wechat"
	"github.com/wxauth/caddy-wechat-auth/store"
)

// Error codes: the "error" field of every error answer.
const (
	CodeInvalidRequest       = "invalid_request"
	CodeUnsupportedMediaType = "unsupported_media_type"
	CodePayloadTooLarge      = "payload_too_large"
	CodeMethodNotAllowed     = "method_not_allowed"
	// CodeNotFound: an endpoint the block's platform does not have, or no
	// stored avatar of that name.
	CodeNotFound          = "not_found"
	CodeInvalidCode       = "invalid_code"
	CodeUserBlocked       = "user_blocked"
	CodeRateLimited       = "rate_limited"
	CodeWeChatUnavailable = "wechat_unavailable"
	CodeWeChatError       = "wechat_error"
	CodeInvalidToken      = "invalid_token"
	CodeInvalidGrant      = "invalid_grant"
	CodeUserBanned        = "user_banned"
	CodeStoreUnavailable  = "store_unavailable"
	CodeInternalError     = "internal_error"
	// CodeContentRejected: WeChat's content check did not pass a nickname.
	CodeContentRejected = "content_rejected"
	// CodeBusy: as many images as allowed are being processed; retry.
	CodeBusy = "busy"
)

// Error is an error answer: an HTTP status, an error code and a message
// for humans. Its text never contains a secret, a code or a token.
type Error struct {
	Status  int
	Code    string
	Message string
	// RetryAfter, when positive, is sent as a Retry-After header.
	RetryAfter time.Duration
	// Allow, for 405 answers, lists the allowed methods.
	Allow string
	// Challenge, for 401 answers, is the WWW-Authenticate value.
	Challenge string
	// Err is the underlying cause, for logs only; never sent.
	Err error
}

// Error describes the answer and its cause, for logs.
func (e *Error) Error() string {
	if e.Err != nil {
		return e.Code + ": " + e.Message + ": " + e.Err.Error()
	}
	return e.Code + ": " + e.Message
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

func newError(status int, code, msg string) *Error {
	return &Error{Status: status, Code: code, Message: msg}
}

func badRequest(msg string) *Error { return newError(http.StatusBadRequest, CodeInvalidRequest, msg) }

// storeRetryAfter is the Retry-After of store_unavailable answers.
const storeRetryAfter = 5 * time.Second

// internalError answers a failure: 503 store_unavailable with Retry-After
// when the database cannot be reached (nothing was done; the same request
// may succeed later), else 500.
func internalError(err error) *Error {
	if errors.Is(err, store.ErrUnavailable) {
		return &Error{Status: http.StatusServiceUnavailable, Code: CodeStoreUnavailable, Message: "the database is unavailable; try again later", RetryAfter: storeRetryAfter, Err: err}
	}
	return &Error{Status: http.StatusInternalServerError, Code: CodeInternalError, Message: "internal error, nothing was changed", Err: err}
}

func invalidGrant(msg string) *Error {
	return newError(http.StatusUnauthorized, CodeInvalidGrant, msg)
}

func methodNotAllowed(allow string) *Error {
	e := newError(http.StatusMethodNotAllowed, CodeMethodNotAllowed, "method not allowed; use "+allow)
	e.Allow = allow
	return e
}

// wechatError maps an error of the WeChat client to an answer, as
// platformError does for WeChat.
func wechatError(err error) *Error { return platformError(err, platform.WeChat) }

// platformError maps an error of a platform's API (the WeChat client or a
// code exchange) to an answer whose message names the platform: a bad or
// used code is 400 invalid_code, the platform busy or unreachable 503, its
// rate limit 429, anything else (an Alipay answer whose signature does not
// verify included) 502 wechat_error. The error codes are shared by every
// platform.
func platformError(err error, name string) *Error {
	e := &Error{Err: err}
	p := platform.DisplayName(name)
	switch {
	case errors.Is(err, wechat.ErrInvalidCode):
		e.Status, e.Code, e.Message = http.StatusBadRequest, CodeInvalidCode, "the code is invalid, expired or already used; call "+platform.LoginCall(name)+" again"
	case errors.Is(err, wechat.ErrUserBlocked):
		e.Status, e.Code, e.Message = http.StatusForbidden, CodeUserBlocked, p+" refused this user"
	case errors.Is(err, wechat.ErrRateLimited):
		e.Status, e.Code, e.Message = http.StatusTooManyRequests, CodeRateLimited, "too many requests to "+p+"; try again later"
		e.RetryAfter = retryAfter(err, 10*time.Second)
	case errors.Is(err, wechat.ErrUnavailable):
		e.Status, e.Code, e.Message = http.StatusServiceUnavailable, CodeWeChatUnavailable, p+" is unavailable; try again later"
		e.RetryAfter = retryAfter(err, 5*time.Second)
	case errors.Is(err, platform.ErrBadSignature):
		e.Status, e.Code, e.Message = http.StatusBadGateway, CodeWeChatError, p+"'s answer could not be verified"
	default:
		e.Status, e.Code, e.Message = http.StatusBadGateway, CodeWeChatError, p+" returned an error"
	}
	return e
}

func retryAfter(err error, def time.Duration) time.Duration {
	if d := platform.RetryAfter(err); d > 0 {
		return d
	}
	return def
}

// storeError maps a storage failure to notFound for a not-found, else as
// internalError does.
func storeError(err error, notFound *Error) *Error {
	if notFound != nil && errors.Is(err, store.ErrNotFound) {
		return notFound
	}
	return internalError(err)
}

// errorBody is the JSON shape of every error answer.
type errorBody struct {
	Status  string `json:"status"`
	Error   string `json:"error"`
	Message string `json:"message"`
}

// WriteError writes e as a JSON error answer.
func WriteError(w http.ResponseWriter, e *Error) {
	h := w.Header()
	if e.RetryAfter > 0 {
		secs := int64((e.RetryAfter + time.Second - 1) / time.Second)
		h.Set("Retry-After", strconv.FormatInt(secs, 10))
	}
	if e.Allow != "" {
		h.Set("Allow", e.Allow)
	}
	if e.Challenge != "" {
		h.Set("WWW-Authenticate", e.Challenge)
	}
	writeJSON(w, e.Status, errorBody{Status: "error", Error: e.Code, Message: e.Message})
}

// writeJSON writes v with status. Answers are never cached: they carry
// tokens or personal data.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"status":"error","error":"internal_error","message":"internal error"}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
