package handler

import (
	"errors"
	"net/http"

	"github.com/wxauth/caddy-wechat-auth/internal/token"
)

// GuardResult is the outcome of the guard on one request.
type GuardResult int

// Guard outcomes, in the order of GuardResultNames.
const (
	GuardOK        GuardResult = iota // a valid token
	GuardAnonymous                    // no token, let through (optional mode)
	GuardMissing                      // no token, refused
	GuardInvalid                      // a bad token: signature, claims, type, app
	GuardExpired                      // an expired token
	GuardRevoked                      // a valid token of a revoked session
	numGuardResults
)

// GuardResultNames are the metric label values of the guard outcomes,
// indexed by GuardResult.
var GuardResultNames = [numGuardResults]string{"ok", "anonymous", "missing", "invalid", "expired", "revoked"}

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
	// Guard is called once per request that reached the guard.
	Guard(result GuardResult)
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
func (noMetrics) Guard(GuardResult)   {}
func (noMetrics) Refresh(string)      {}
func (noMetrics) Revoked(string, int) {}

// ClassifyGuard names the outcome of an Authenticate call that returned
// err (nil: a valid token); optional says whether a missing token passes
// as anonymous.
func ClassifyGuard(err error, optional bool) GuardResult {
	switch {
	case err == nil:
		return GuardOK
	case errors.Is(err, ErrNoToken):
		if optional {
			return GuardAnonymous
		}
		return GuardMissing
	case errors.Is(err, ErrRevoked):
		return GuardRevoked
	case errors.Is(err, token.ErrExpired):
		return GuardExpired
	}
	return GuardInvalid
}

// ObserveGuard counts the guard's outcome for a request whose
// Authenticate returned err.
func (h *Handler) ObserveGuard(err error) {
	h.metrics.Guard(ClassifyGuard(err, h.cfg.Optional))
}

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
