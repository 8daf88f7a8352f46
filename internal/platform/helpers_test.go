package platform

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Test credentials.
const (
	testAppID  = "app-1234"
	testSecret = "s3cret-value-never-logged"
	testCode   = "the-login-code-0001"
)

// A 16-byte and a 24-byte session key in base64, as the platforms send them.
var (
	key16    = base64.StdEncoding.EncodeToString([]byte("0123456789abcdef"))
	key24    = base64.StdEncoding.EncodeToString([]byte("0123456789abcdef01234567"))
	testKeys struct {
		once           sync.Once
		app, alipay    *rsa.PrivateKey
		appErr, aliErr error
	}
)

// rsaKeys returns the app's and Alipay's test keys, generated once.
func rsaKeys(t testing.TB) (app, alipay *rsa.PrivateKey) {
	t.Helper()
	testKeys.once.Do(func() {
		testKeys.app, testKeys.appErr = rsa.GenerateKey(rand.Reader, 2048)
		testKeys.alipay, testKeys.aliErr = rsa.GenerateKey(rand.Reader, 2048)
	})
	if testKeys.appErr != nil || testKeys.aliErr != nil {
		t.Fatalf("generating RSA keys: %v %v", testKeys.appErr, testKeys.aliErr)
	}
	return testKeys.app, testKeys.alipay
}

// reply is one scripted answer of the fake platform.
type reply struct {
	status int
	body   string
	header map[string]string
	delay  time.Duration // longer than the timeout: no answer in time
}

// fake is a platform stand-in answering a script, one reply per call (the
// last one repeats), recording what it was asked.
type fake struct {
	t       *testing.T
	replies []reply
	calls   atomic.Int32
	mu      sync.Mutex
	reqs    []*http.Request
	forms   []map[string][]string
	bodies  []string
}

func newFake(t *testing.T, replies ...reply) (*fake, string) {
	f := &fake{t: t, replies: replies}
	srv := httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(srv.Close)
	return f, srv.URL
}

func (f *fake) serve(w http.ResponseWriter, r *http.Request) {
	n := int(f.calls.Add(1)) - 1
	var body strings.Builder
	if r.Header.Get("Content-Type") == "application/json" {
		buf := make([]byte, 1<<16)
		k, _ := r.Body.Read(buf)
		body.Write(buf[:k])
	} else {
		_ = r.ParseForm()
	}
	f.mu.Lock()
	f.reqs = append(f.reqs, r)
	f.forms = append(f.forms, r.Form)
	f.bodies = append(f.bodies, body.String())
	f.mu.Unlock()
	rp := f.replies[min(n, len(f.replies)-1)]
	if rp.delay > 0 {
		select {
		case <-time.After(rp.delay):
		case <-r.Context().Done():
			return
		}
	}
	for k, v := range rp.header {
		w.Header().Set(k, v)
	}
	st := rp.status
	if st == 0 {
		st = http.StatusOK
	}
	w.WriteHeader(st)
	_, _ = w.Write([]byte(rp.body))
}

// newExchanger builds the platform's exchanger against base.
func newExchanger(t *testing.T, name, base string) Exchanger {
	t.Helper()
	cfg := Config{Platform: name, BaseURL: base, AppID: testAppID, AppSecret: testSecret, Timeout: 500 * time.Millisecond}
	if name == Alipay {
		app, ali := rsaKeys(t)
		cfg.AlipayPrivateKey, cfg.AlipayPublicKey = app, &ali.PublicKey
	}
	x, err := New(cfg)
	if err != nil {
		t.Fatalf("New(%s): %v", name, err)
	}
	return x
}

func exchange(x Exchanger, code string, extra Extra) (*Session, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return x.Exchange(ctx, code, extra)
}

// The answers every platform must refuse with a clear error.
var (
	htmlBody     = "<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"
	garbageBody  = "\x00\x01\xff garbage"
	oversizeBody = `{"openid":"` + strings.Repeat("x", maxResponseBytes) + `"}`
)
