package handler

import (
	"net/http"
)

// GuardResults are the results of Serve that the guard decides, the ones
// Metrics.Guard is called with.
var GuardResults = [...]Result{ResultOK, ResultAnonymous, ResultMissing, ResultInvalid, ResultExpired, ResultRevoked}

// Login and refresh results besides error codes.
const (
	LoginOKNew           = "ok_new"
	LoginOKReturning     = "ok_returning"
	RefreshOK            = "ok"
	RefreshRetry         = "retry"
	RefreshReuseDetected = "reuse_detected"
	RefreshInvalid       = "invalid"
)

// Metrics observes what the handler does, for counters. Every method is
// called on the request's goroutine and must be cheap and safe for
// concurrent use; Guard in particular runs on every guarded request and
// must not allocate. Labels given are from small fixed sets: never a user,
// an openid or a token.
type Metrics interface {
	// Login is called once per login attempt that got an answer:
	// LoginOKNew, LoginOKReturning, or the error code answered.
	Login(result string)
	// Guard is called once per request that reached the guard, with one
	// of GuardResults.
	Guard(result Result)
	// Refresh is called once per refresh: RefreshOK, RefreshRetry,
	// RefreshReuseDetected, or RefreshInvalid for an invalid_grant answer.
	Refresh(result string)
	// Revoked is called when n sessions were revoked now for reason (one
	// of the store.Reason constants).
	Revoked(reason string, n int)
}

// noMetrics is the Metrics used when none is configured.
type noMetrics struct{}

func (noMetrics) Login(string)        {}
func (noMetrics) Guard(Result)        {}
func (noMetrics) Refresh(string)      {}
func (noMetrics) Revoked(string, int) {}

// countLogin wraps the login endpoint: a failed attempt counts under its
// error code (a success is counted by login, which knows whether the user
// is new).
func (h *Handler) countLogin(fn func(w http.ResponseWriter, r *http.Request) *Error) func(w http.ResponseWriter, r *http.Request) *Error {
	return func(w http.ResponseWriter, r *http.Request) *Error {
		e := fn(w, r)
		if e != nil {
			h.metrics.Login(e.Code)
		}
		return e
	}
}
