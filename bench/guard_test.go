package bench

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/golang-jwt/jwt/v5"
	"github.com/prometheus/client_golang/prometheus"

	wechatauth "github.com/wxauth/caddy-wechat-auth"
	"github.com/wxauth/caddy-wechat-auth/internal/handler"
	"github.com/wxauth/caddy-wechat-auth/internal/token"
	"github.com/wxauth/caddy-wechat-auth/internal/wechat"
	"github.com/wxauth/caddy-wechat-auth/store/bolt"
)

const (
	benchApp    = "wxbench00000000001"
	benchSecret = "bench-hs256-signing-key-0123456789abcdef"
)

// algCase is one signing algorithm: how to configure the module and a
// token service that signs what the module accepts.
type algCase struct {
	name   string
	module wechatauth.WeChatAuth // key fields only
	signer *token.Key
	verify any // the key a bare golang-jwt parse verifies with
}

func algCases(tb testing.TB) []algCase {
	tb.Helper()
	dir := tb.TempDir()
	writePEM := func(name string, priv crypto.Signer) string {
		der, err := x509.MarshalPKCS8PrivateKey(priv)
		if err != nil {
			tb.Fatal(err)
		}
		path := filepath.Join(dir, name+".pem")
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
			tb.Fatal(err)
		}
		return path
	}
	hs, err := token.NewHMACKey([]byte(benchSecret), "")
	if err != nil {
		tb.Fatal(err)
	}
	cases := []algCase{{
		name:   "HS256",
		module: wechatauth.WeChatAuth{SigningKey: benchSecret},
		signer: hs, verify: []byte(benchSecret),
	}}
	_, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	ecPriv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rsaPriv, _ := rsa.GenerateKey(rand.Reader, 2048)
	for _, c := range []struct {
		name string
		priv crypto.Signer
	}{{"EdDSA", edPriv}, {"ES256", ecPriv}, {"RS256", rsaPriv}} {
		k, err := token.NewSigningKey(c.priv, "")
		if err != nil {
			tb.Fatal(err)
		}
		cases = append(cases, algCase{
			name:   c.name,
			module: wechatauth.WeChatAuth{SigningKeyFiles: []wechatauth.KeyFile{{Path: writePEM(c.name, c.priv)}}},
			signer: k, verify: c.priv.Public(),
		})
	}
	return cases
}

// issue signs an access token the module accepts.
func issue(tb testing.TB, k *token.Key) string {
	tb.Helper()
	svc, err := token.New(token.Config{
		Keys: []*token.Key{k}, Issuer: handler.DefaultIssuer, Audience: benchApp,
		AccessTTL: handler.DefaultAccessTTL, Leeway: time.Minute,
	})
	if err != nil {
		tb.Fatal(err)
	}
	tok, _, err := svc.Issue(token.Subject{UserID: 42, SessionID: "sid-bench", OpenID: "o_bench", AppID: benchApp}, "jti-bench", time.Now())
	if err != nil {
		tb.Fatal(err)
	}
	return tok
}

// provision starts the module as Caddy would, with its store in a temp dir
// and metrics on (Caddy gives every config a metrics registry).
func provision(tb testing.TB, m wechatauth.WeChatAuth) *wechatauth.WeChatAuth {
	tb.Helper()
	mod, _ := provisionMetrics(tb, m, true)
	return mod
}

// provisionMetrics is provision with metrics on (a context with a
// registry, which it returns) or off (a context without one).
func provisionMetrics(tb testing.TB, m wechatauth.WeChatAuth, on bool) (*wechatauth.WeChatAuth, *prometheus.Registry) {
	tb.Helper()
	ctx := caddy.Context{Context: context.Background()}
	if on {
		var cancel context.CancelFunc
		ctx, cancel = caddy.NewContext(ctx)
		tb.Cleanup(cancel)
	}
	m.AppID, m.AppSecret = benchApp, "bench-app-secret"
	m.APIBase = "http://127.0.0.1:1" // never called by the guard
	m.DB = filepath.Join(tb.TempDir(), "bench.db")
	if err := m.Provision(ctx); err != nil {
		tb.Fatal(err)
	}
	if err := m.Validate(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = m.Cleanup() })
	return &m, ctx.GetMetricsRegistry()
}

// guardOK reads caddy_wechat_auth_guard_requests_total{result="ok"} of
// the bench app from reg.
func guardOK(tb testing.TB, reg *prometheus.Registry) float64 {
	tb.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		tb.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "caddy_wechat_auth_guard_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["app_id"] == benchApp && labels["result"] == "ok" {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// BenchmarkGuardMetrics is BenchmarkGuardServeHTTP with metrics off and
// on, side by side: counting a guard outcome must cost an atomic add and
// no allocation.
func BenchmarkGuardMetrics(b *testing.B) {
	for _, c := range algCases(b)[:2] { // HS256, EdDSA
		for _, on := range []bool{false, true} {
			name := c.name + "/metrics-off"
			if on {
				name = c.name + "/metrics-on"
			}
			b.Run(name, func(b *testing.B) {
				m, reg := provisionMetrics(b, c.module, on)
				r, rc := guardRequest(issue(b, c.signer))
				w := &discardWriter{h: http.Header{}}
				b.ReportAllocs()
				b.ResetTimer()
				for b.Loop() {
					rc.repl = requestReplacer()
					if err := m.ServeHTTP(w, r, nextOK); err != nil {
						b.Fatal(err)
					}
				}
				b.StopTimer()
				if on && guardOK(b, reg) < float64(b.N) {
					b.Fatalf("metrics on, but %v guard requests counted of at least %d", guardOK(b, reg), b.N)
				}
			})
		}
	}
}

type discardWriter struct{ h http.Header }

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (d *discardWriter) WriteHeader(int)             {}

var nextOK = caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { return nil })

// replCtx is a request context whose replacer can be swapped without
// allocating a new request: Caddy gives every request a fresh replacer,
// and the benchmarks must too (placeholders add to it).
type replCtx struct {
	context.Context
	repl *caddy.Replacer
}

func (c *replCtx) Value(k any) any {
	if k == caddy.ReplacerCtxKey {
		return c.repl
	}
	return c.Context.Value(k)
}

// requestReplacer is a replacer as Caddy's HTTP server makes one for each
// request: the global providers plus the http.* provider.
func requestReplacer() *caddy.Replacer {
	repl := caddy.NewReplacer()
	repl.Map(func(string) (any, bool) { return nil, false })
	return repl
}

// guardRequest is a request as Caddy hands it to the module.
func guardRequest(tok string) (*http.Request, *replCtx) {
	r := httptest.NewRequest("GET", "/api/orders", nil)
	r.Header.Set("Authorization", "Bearer "+tok)
	r.Header.Set("User-Agent", "Mozilla/5.0 MicroMessenger/8.0")
	r.Header.Set("Accept", "application/json")
	rc := &replCtx{Context: r.Context(), repl: requestReplacer()}
	return r.WithContext(rc), rc
}

// BenchmarkRequestReplacer is what Caddy spends on each request's fresh
// replacer anyway; BenchmarkGuardServeHTTP includes it, subtract it to see
// the guard alone.
func BenchmarkRequestReplacer(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_ = requestReplacer()
	}
}

// BenchmarkGuardServeHTTP is the guard as Caddy runs it, on a valid token:
// strip identity headers, verify, check revocation, set headers and
// placeholders, call next.
func BenchmarkGuardServeHTTP(b *testing.B) {
	for _, c := range algCases(b) {
		b.Run(c.name, func(b *testing.B) {
			m := provision(b, c.module)
			r, rc := guardRequest(issue(b, c.signer))
			w := &discardWriter{h: http.Header{}}
			if err := m.ServeHTTP(w, r, nextOK); err != nil || r.Header.Get("X-WeChat-User-ID") != "42" {
				b.Fatalf("guard refused the token: %v %v", err, r.Header)
			}
			if id, _ := rc.repl.GetString("http.auth.user.id"); id != "42" {
				b.Fatalf("placeholder http.auth.user.id = %q", id)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				rc.repl = requestReplacer()
				if err := m.ServeHTTP(w, r, nextOK); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkGuardNoCache is the handler-level guard with the verified-token
// cache off, to show what the cache saves for asymmetric keys.
func BenchmarkGuardNoCache(b *testing.B) {
	for _, c := range algCases(b) {
		for _, size := range []int{-1, 0} {
			name := c.name + "/cache"
			if size < 0 {
				name = c.name + "/nocache"
			}
			b.Run(name, func(b *testing.B) {
				svc, err := token.New(token.Config{
					Keys: []*token.Key{c.signer}, Issuer: handler.DefaultIssuer, Audience: benchApp,
					AccessTTL: handler.DefaultAccessTTL, Leeway: time.Minute, CacheSize: size,
				})
				if err != nil {
					b.Fatal(err)
				}
				h := guardHandler(b, svc, handler.NewRevocations())
				r, _ := guardRequest(issue(b, c.signer))
				b.ReportAllocs()
				b.ResetTimer()
				for b.Loop() {
					if res, _, _ := h.Serve(nil, r); res != handler.ResultOK {
						b.Fatal(res)
					}
				}
			})
		}
	}
}

// BenchmarkBareParse is the baseline: one plain golang-jwt parse and
// signature check of the same token, nothing else.
func BenchmarkBareParse(b *testing.B) {
	for _, c := range algCases(b) {
		b.Run(c.name, func(b *testing.B) {
			tok := issue(b, c.signer)
			key := c.verify
			keyFunc := func(*jwt.Token) (any, error) { return key, nil }
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, err := jwt.ParseWithClaims(tok, &jwt.RegisteredClaims{}, keyFunc); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRevocationCheck is the per-request revocation lookup, with an
// empty list and with 100 000 revoked sessions.
func BenchmarkRevocationCheck(b *testing.B) {
	for _, n := range []int{0, 100_000} {
		b.Run("revoked="+strconv.Itoa(n), func(b *testing.B) {
			revs := handler.NewRevocations()
			revs.Widen(time.Hour)
			now := time.Now()
			for i := range n {
				revs.Add(fmt.Sprintf("sid-%d", i), now, now)
			}
			sid := "a-live-session-id-0000"
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if revs.Revoked(sid) {
					b.Fatal("live session reported revoked")
				}
			}
		})
	}
}

func guardHandler(tb testing.TB, svc *token.Service, revs *handler.Revocations) *handler.Handler {
	tb.Helper()
	sealer, err := handler.NewSealer("bench-app-secret")
	if err != nil {
		tb.Fatal(err)
	}
	st, err := bolt.Open(filepath.Join(tb.TempDir(), "guard.db"), bolt.Options{NoSync: true})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = st.Close() })
	// The guard calls neither the store nor WeChat; the endpoints would.
	wx, err := wechat.New(wechat.Config{BaseURL: "http://127.0.0.1:1", AppID: benchApp, AppSecret: "bench-app-secret"})
	if err != nil {
		tb.Fatal(err)
	}
	h, err := handler.New(handler.Config{
		AppID: benchApp, Store: st, Tokens: svc, WeChat: wx, Sealer: sealer,
		Revocations: revs, RefreshSecret: []byte(benchSecret),
	})
	if err != nil {
		tb.Fatal(err)
	}
	return h
}
