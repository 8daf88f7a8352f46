package handler

import (
	"context"
	"crypto/sha256"
	"errors"
	"sync"
	"time"
)

// Login sharing: a wx.login code is single-use, so every request carrying
// one code is the same login (a client that retried, or sent it twice at
// once). The first such request does the whole login — the code exchange,
// the store write and the token issue — and every duplicate that arrives
// while it runs gets the same answer, and so does every duplicate that
// arrives shortly after it succeeded: one code, one session.
const (
	// loginShareWindow is how long a finished login's answer stays
	// available to late duplicates of its code. It only has to cover
	// requests racing the first one; WeChat itself refuses a spent code.
	loginShareWindow = 5 * time.Second
	// maxSharedLogins bounds the finished answers kept for late
	// duplicates. Past it the oldest is forgotten early: a duplicate that
	// arrives after that does its own exchange, which WeChat refuses as a
	// used code (400 invalid_code), so nothing is ever issued twice.
	maxSharedLogins = 4096
)

// loginAnswer is the outcome of one login, as every request carrying its
// code is answered: a 200 body, or an error.
type loginAnswer struct {
	body []byte
	err  *Error
}

// loginFlight is one login in flight or recently finished.
type loginFlight struct {
	done     chan struct{} // closed when ans is set
	ans      loginAnswer
	finished time.Time
}

// finishedLogin is an entry of loginFlights.finished.
type finishedLogin struct {
	key [sha256.Size]byte
	f   *loginFlight
}

// loginFlights shares logins by code. Codes are keyed by their SHA-256, so
// no code is kept in memory. The zero value is not usable; see
// newLoginFlights.
type loginFlights struct {
	window time.Duration
	max    int

	mu       sync.Mutex
	flights  map[[sha256.Size]byte]*loginFlight
	finished []finishedLogin // in the order they finished, oldest first

	// testHookJoin, when set, runs each time a request joins a login
	// already in flight or finished, before it waits for the answer.
	testHookJoin func()
}

func newLoginFlights() *loginFlights {
	return &loginFlights{
		window:  loginShareWindow,
		max:     maxSharedLogins,
		flights: make(map[[sha256.Size]byte]*loginFlight),
	}
}

// do returns the answer of the login of code: the answer of the login
// in flight, or of the one that succeeded less than the window ago, or
// else the answer of run, which this call runs. A caller that joined another's
// login and whose ctx ends before the answer is ready gets ctx's error;
// the login itself goes on for the others. now is the clock of the window.
func (l *loginFlights) do(ctx context.Context, code string, now func() time.Time, run func() loginAnswer) (loginAnswer, error) {
	key := sha256.Sum256([]byte(code))
	l.mu.Lock()
	l.expire(now())
	if f, ok := l.flights[key]; ok {
		l.mu.Unlock()
		if l.testHookJoin != nil {
			l.testHookJoin()
		}
		select {
		case <-f.done:
			return f.ans, nil
		case <-ctx.Done():
			return loginAnswer{}, ctx.Err()
		}
	}
	f := &loginFlight{done: make(chan struct{})}
	l.flights[key] = f
	l.mu.Unlock()

	finished := false
	defer func() {
		if !finished {
			// run panicked: the joined requests get an error, and the
			// panic goes on up.
			f.ans = loginAnswer{err: internalError(errLoginAborted)}
		}
		l.finish(key, f, now())
	}()
	f.ans = run()
	finished = true
	return f.ans, nil
}

// errLoginAborted is the cause logged when a shared login ended without
// an answer.
var errLoginAborted = errors.New("the login shared by this code ended without an answer")

// finish publishes f's answer to the requests waiting for it. A success
// is kept for the window: it stands for the session the code made. A
// failure is forgotten at once, so a later retry asks WeChat again (which
// answers a spent code with 40163, and may accept a code that a failed
// exchange never reached).
func (l *loginFlights) finish(key [sha256.Size]byte, f *loginFlight, at time.Time) {
	l.mu.Lock()
	f.finished = at
	if f.ans.err == nil {
		l.finished = append(l.finished, finishedLogin{key, f})
		for len(l.finished) > l.max {
			l.forgetOldest()
		}
	} else if l.flights[key] == f {
		delete(l.flights, key)
	}
	l.mu.Unlock()
	close(f.done)
}

// expire forgets the answers that finished more than the window before
// now. They are in finishing order, so it stops at the first one to keep.
func (l *loginFlights) expire(now time.Time) {
	for len(l.finished) > 0 && now.Sub(l.finished[0].f.finished) > l.window {
		l.forgetOldest()
	}
}

func (l *loginFlights) forgetOldest() {
	old := l.finished[0]
	l.finished[0] = finishedLogin{}
	l.finished = l.finished[1:]
	if l.flights[old.key] == old.f {
		delete(l.flights, old.key)
	}
}

// len reports how many logins are in flight or kept.
func (l *loginFlights) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.flights)
}
