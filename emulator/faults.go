package emulator

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// maxQueuedFaults bounds the fault queue so a runaway test cannot grow it
// without limit.
const maxQueuedFaults = 1024

// statusClientClosedRequest is the status Caddy's reverse proxy also uses
// when the client went away before an answer was ready.
const statusClientClosedRequest = 499

// garbageBody is the non-JSON body of a "garbage" fault: what a gateway in
// front of WeChat answers when things go wrong.
const garbageBody = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n</body>\r\n</html>\r\n"

// errTooManyFaults: the fault queue is full.
var errTooManyFaults = errors.New("too many queued faults")

// fault is one queued misbehaviour of the emulated API.
type fault struct {
	path    string        // API path it applies to; empty: any API path
	errcode int           // errcode to answer with; 0: none
	times   int           // remaining API calls it applies to
	delay   time.Duration // wait before answering
	garbage bool          // answer a non-JSON body
	status  int           // HTTP status; 0: 200
}

// faultRequest is the body of POST /emulator/fault.
type faultRequest struct {
	Path    string         `json:"path"`
	Errcode int            `json:"errcode"`
	Times   int            `json:"times"`
	Delay   caddy.Duration `json:"delay"`
	Garbage bool           `json:"garbage"`
	Status  int            `json:"status"`
}

// toFault validates a fault request.
func (fr faultRequest) toFault() (fault, error) {
	if fr.Path != "" && !apiPaths[fr.Path] && !oauthAPIPaths[fr.Path] && platformPaths[fr.Path] == "" {
		return fault{}, fmt.Errorf("path %q is not an emulated API path", fr.Path)
	}
	if fr.Times < 0 {
		return fault{}, errors.New("times must not be negative")
	}
	if fr.Delay < 0 {
		return fault{}, errors.New("delay must not be negative")
	}
	if fr.Status != 0 && (fr.Status < 200 || fr.Status > 599) {
		return fault{}, errors.New("status must be an HTTP status between 200 and 599")
	}
	if fr.Errcode == 0 && fr.Delay == 0 && !fr.Garbage && fr.Status == 0 {
		return fault{}, errors.New("a fault needs at least one of errcode, delay, garbage, status")
	}
	f := fault{
		path:    fr.Path,
		errcode: fr.Errcode,
		times:   fr.Times,
		delay:   time.Duration(fr.Delay),
		garbage: fr.Garbage,
		status:  fr.Status,
	}
	if f.times == 0 {
		f.times = 1
	}
	return f, nil
}

// faultQueue holds the queued faults of one module instance. It is safe for
// concurrent use.
type faultQueue struct {
	mu    sync.Mutex
	items []*fault
}

// add queues f and returns how many faults are queued.
func (q *faultQueue) add(f fault) (int, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.items) >= maxQueuedFaults {
		return len(q.items), errTooManyFaults
	}
	q.items = append(q.items, &f)
	return len(q.items), nil
}

// clear drops every queued fault and returns how many there were.
func (q *faultQueue) clear() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := len(q.items)
	q.items = nil
	return n
}

// take consumes one use of the oldest fault that applies to path.
func (q *faultQueue) take(path string) (fault, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for i, f := range q.items {
		if f.path != "" && f.path != path {
			continue
		}
		f.times--
		if f.times <= 0 {
			q.items = append(q.items[:i], q.items[i+1:]...)
		}
		return *f, true
	}
	return fault{}, false
}

// applyFault consumes and acts out the next fault queued for path, if any.
// It reports whether it answered the request; a delay-only fault waits and
// then lets the request be served normally.
func (e *Emulator) applyFault(w http.ResponseWriter, r *http.Request, path string) (bool, error) {
	f, ok := e.faults.take(path)
	if !ok {
		return false, nil
	}
	if f.delay > 0 {
		if err := e.sleep(r.Context(), f.delay); err != nil {
			return true, caddyhttp.Error(statusClientClosedRequest, fmt.Errorf("delaying emulated fault: %w", err))
		}
	}
	status := f.status
	if status == 0 {
		status = http.StatusOK
	}
	switch {
	case f.garbage:
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(garbageBody))
	case f.errcode != 0:
		e.writeAPIErrorStatus(w, status, f.errcode, errmsgFor(f.errcode))
	case f.status != 0:
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(http.StatusText(status) + "\n"))
	default:
		return false, nil
	}
	return true, nil
}

// sleepContext waits d, or until ctx is done, whichever comes first.
func sleepContext(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// errmsgFor is WeChat's errmsg for errcodes a fault may inject.
func errmsgFor(errcode int) string {
	switch errcode {
	case -1:
		return "system error"
	case 40001:
		return msgTokenInvalid
	case 40029:
		return "invalid code"
	case 40163:
		return "code been used"
	case 40226:
		return "code blocked"
	case 42001:
		return "access_token expired"
	case 45011:
		return "api minute-quota reach limit  mustslower  retry next minute"
	case 40013:
		return "invalid appid"
	case 40125:
		return "invalid appsecret"
	case 48001:
		return "api unauthorized"
	default:
		return "emulated fault"
	}
}
