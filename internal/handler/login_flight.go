package handler

import (
	"context"
	"crypto/sha256"
	"errors"
	"sync"
)

// Login sharing: a wx.login code is single-use, so every request carrying
// one code is the same login (a client that retried, or sent it twice at
// once). The first such request does the whole login — the code exchange,
// the store write and the token issue — and every duplicate that arrives
// while it runs gets the same answer: one code, one session. The answer is
// kept only while the login runs; a duplicate arriving after that asks
// WeChat, which refuses a spent code (400 invalid_code), so a code never
// makes a second session.

// loginAnswer is the outcome of one login, as every request carrying its
// code is answered: a 200 body, or an error.
type loginAnswer struct {
	body []byte
	err  *Error
}

// loginSharer shares logins in flight by code: do returns the answer of
// the login of code, running run when none is in flight. *loginFlights is
// the one the handler uses.
type loginSharer interface {
	do(ctx context.Context, code string, run func() loginAnswer) (loginAnswer, error)
	len() int
}

// loginFlight is one login in flight.
type loginFlight struct {
	key  [sha256.Size]byte // the code's SHA-256
	done chan struct{}     // closed when ans is set
	ans  loginAnswer
}

// loginFlights shares logins in flight by code. Codes are keyed by their
// SHA-256, so no code is kept in memory. It holds one entry per login in
// flight, so its size is bounded by the requests being served. The zero
// value is not usable; see newLoginFlights.
type loginFlights struct {
	mu      sync.Mutex
	flights map[[sha256.Size]byte]*loginFlight
}

func newLoginFlights() *loginFlights {
	return &loginFlights{flights: make(map[[sha256.Size]byte]*loginFlight)}
}

// errLoginAborted is the cause logged when a shared login ended without
// an answer.
var errLoginAborted = errors.New("the login shared by this code ended without an answer")

// do returns the answer of the login of code: the answer of the login of
// code in flight, or else the answer of run, which this call runs. A caller
// that joined another's login and whose ctx ends before the answer is
// ready gets ctx's error; the login itself goes on for the others.
func (l *loginFlights) do(ctx context.Context, code string, run func() loginAnswer) (loginAnswer, error) {
	f, leader := l.enter(code)
	if !leader {
		return f.wait(ctx)
	}
	return l.lead(f, run), nil
}

// enter returns the login of code in flight (leader false), or registers
// a new one that the caller must run with lead (leader true).
func (l *loginFlights) enter(code string) (f *loginFlight, leader bool) {
	key := sha256.Sum256([]byte(code))
	l.mu.Lock()
	defer l.mu.Unlock()
	if f, ok := l.flights[key]; ok {
		return f, false
	}
	f = &loginFlight{key: key, done: make(chan struct{})}
	l.flights[key] = f
	return f, true
}

// wait returns the answer of a login in flight, or ctx's error if ctx ends
// first.
func (f *loginFlight) wait(ctx context.Context) (loginAnswer, error) {
	select {
	case <-f.done:
		return f.ans, nil
	case <-ctx.Done():
		return loginAnswer{}, ctx.Err()
	}
}

// lead runs the login f that enter registered, answers every request
// that joined it and forgets it.
func (l *loginFlights) lead(f *loginFlight, run func() loginAnswer) loginAnswer {
	finished := false
	defer func() {
		if !finished {
			// run panicked: the joined requests get an error, and the
			// panic goes on up.
			f.ans = loginAnswer{err: internalError(errLoginAborted)}
		}
		l.mu.Lock()
		delete(l.flights, f.key)
		l.mu.Unlock()
		close(f.done)
	}()
	f.ans = run()
	finished = true
	return f.ans
}

// len reports how many logins are in flight.
func (l *loginFlights) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.flights)
}
