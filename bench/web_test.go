package bench

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	wechatauth "github.com/wxauth/caddy-wechat-auth"
	"github.com/wxauth/caddy-wechat-auth/internal/handler"
	"github.com/wxauth/caddy-wechat-auth/internal/token"
	"github.com/wxauth/caddy-wechat-auth/internal/websession"
	"github.com/wxauth/caddy-wechat-auth/internal/wechat"
	"github.com/wxauth/caddy-wechat-auth/store"
	"github.com/wxauth/caddy-wechat-auth/store/bolt"
)

// BenchmarkWebGuardCookieVsHeader measures, in one run and on one route
// of one module with browser sessions on, the guard with the access token
// in the access cookie (next to another cookie of the site, which the
// upstream keeps) and with it in the Authorization header. It reports
// both ns/op and cookie_vs_header, the cookie path's throughput as a
// fraction of the header path's (goal ≥ 0.95). One op is a request of
// each path, so ns/op and allocs/op are the pair's.
func BenchmarkWebGuardCookieVsHeader(b *testing.B) {
	for _, c := range algCases(b)[:2] { // HS256 and EdDSA (the generated default)
		b.Run(c.name, func(b *testing.B) {
			mod := c.module
			mod.Web = &wechatauth.WebConfig{}
			m := provision(b, mod)
			tok := issue(b, c.signer)
			hr, hrc := guardRequest(tok)
			cr, crc := guardRequest("")
			cr.Header.Del("Authorization")
			cookie := "theme=dark; wechat_auth=" + tok
			w := &discardWriter{h: http.Header{}}
			runHeader := func() {
				hrc.repl = requestReplacer()
				if err := m.ServeHTTP(w, hr, nextOK); err != nil {
					b.Fatal(err)
				}
			}
			cookies := make([]string, 1)
			runCookie := func() {
				crc.repl = requestReplacer()
				// As each request arrives with it (the guard rewrites the
				// header's value in place).
				cookies[0] = cookie
				cr.Header["Cookie"] = cookies
				if err := m.ServeHTTP(w, cr, nextOK); err != nil {
					b.Fatal(err)
				}
			}
			runCookie()
			if cr.Header.Get("X-WeChat-User-ID") != "42" || cr.Header.Get("Cookie") != "theme=dark" {
				b.Fatalf("cookie request: %v", cr.Header)
			}
			b.ReportAllocs()
			// Each iteration is one request of each path, each timed on
			// its own (the clock's cost is the same for both), so a busy
			// machine slows both alike.
			var header, cookieT time.Duration
			n := 0
			for b.Loop() {
				// Alternate which path goes first, so neither always runs
				// in the other's wake (caches, GC assists).
				if n%4 == 0 {
					t0 := time.Now()
					runHeader()
					t1 := time.Now()
					runCookie()
					cookieT += time.Since(t1)
					header += t1.Sub(t0)
				} else {
					t0 := time.Now()
					runCookie()
					t1 := time.Now()
					runHeader()
					header += time.Since(t1)
					cookieT += t1.Sub(t0)
				}
				n += 2
			}
			if header > 0 && cookieT > 0 {
				half := float64(n) / 2
				b.ReportMetric(float64(header.Nanoseconds())/half, "header_ns/op")
				b.ReportMetric(float64(cookieT.Nanoseconds())/half, "cookie_ns/op")
				b.ReportMetric(float64(header)/float64(cookieT), "cookie_vs_header")
			}
		})
	}
}

// webHandler is a handler with browser sessions on a durable bbolt store,
// and a session of one user whose refresh token it returns.
func webHandler(tb testing.TB) (*handler.Handler, string) {
	tb.Helper()
	hs, err := token.NewHMACKey([]byte(benchSecret), "")
	if err != nil {
		tb.Fatal(err)
	}
	svc, err := token.New(token.Config{Keys: []*token.Key{hs}, Issuer: handler.DefaultIssuer, Audience: benchApp,
		AccessTTL: handler.DefaultAccessTTL, Leeway: time.Minute})
	if err != nil {
		tb.Fatal(err)
	}
	st, err := bolt.Open(filepath.Join(tb.TempDir(), "web.db"), bolt.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = st.Close() })
	sealer, err := handler.NewSealer("bench-app-secret")
	if err != nil {
		tb.Fatal(err)
	}
	wx, err := wechat.New(wechat.Config{BaseURL: "http://127.0.0.1:1", AppID: benchApp, AppSecret: "bench-app-secret"})
	if err != nil {
		tb.Fatal(err)
	}
	state, err := websession.NewStateSealer(bytes.Repeat([]byte{1}, 32))
	if err != nil {
		tb.Fatal(err)
	}
	h, err := handler.New(handler.Config{
		AppID: benchApp, Store: st, Tokens: svc, WeChat: wx, Sealer: sealer,
		Revocations: handler.NewRevocations(), RefreshSecret: []byte(benchSecret),
		Paths: handler.Paths{Refresh: "/wx/refresh"},
		Web:   &handler.WebConfig{Path: "/wx/web", Cookies: websession.Cookies{Name: "wa"}, State: state, Tickets: st},
	})
	if err != nil {
		tb.Fatal(err)
	}
	now := time.Now()
	refresh, err := token.NewRefreshToken()
	if err != nil {
		tb.Fatal(err)
	}
	sess := store.Session{ID: "sid-web-bench", AppID: benchApp, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
	rt := store.RefreshToken{Hash: token.HashRefreshToken(refresh), SessionID: sess.ID, IssuedAt: now,
		ExpiresAt: sess.ExpiresAt, AccessID: "jti-0", AccessIssuedAt: now}
	if _, _, _, err := st.Login(context.Background(), benchApp, store.NewUser{OpenID: "o-web-bench"}, sess, rt, now); err != nil {
		tb.Fatal(err)
	}
	return h, refresh
}

// BenchmarkWebInlineRefreshVsEndpoint measures sessions rotated per
// second, one after another on a durable store: inline by the cookie
// guard (a page load with only the refresh cookie) and by POST
// /wx/refresh, interleaved in one run. It reports refreshes/s of each and
// inline_vs_endpoint (goal: about 1; both are one Rotate, a durable
// write).
func BenchmarkWebInlineRefreshVsEndpoint(b *testing.B) {
	hInline, rInline := webHandler(b)
	hEndpoint, rEndpoint := webHandler(b)
	var inline, endpoint time.Duration
	n := 0
	for b.Loop() {
		n++
		if n%2 == 0 {
			r := httptest.NewRequest("GET", "/page", nil)
			r.Header.Set("Accept", "text/html")
			r.Header.Set("Cookie", "wa_refresh="+rInline)
			w := httptest.NewRecorder()
			t0 := time.Now()
			res, _, _ := hInline.Serve(w, r)
			inline += time.Since(t0)
			if res != handler.ResultOK {
				b.Fatalf("inline rotation: %v %d %s", res, w.Code, w.Body)
			}
			rInline = cookieValue(b, w.Result().Cookies(), "wa_refresh")
		} else {
			r := httptest.NewRequest("POST", "/wx/refresh", strings.NewReader(`{"refresh_token":"`+rEndpoint+`"}`))
			r.Header.Set("Content-Type", "application/json")
			w := httptest.NewRecorder()
			t0 := time.Now()
			hEndpoint.Serve(w, r)
			endpoint += time.Since(t0)
			if w.Code != 200 {
				b.Fatalf("refresh endpoint: %d %s", w.Code, w.Body)
			}
			i := strings.Index(w.Body.String(), `"refresh_token":"`)
			rest := w.Body.String()[i+len(`"refresh_token":"`):]
			rEndpoint = rest[:strings.IndexByte(rest, '"')]
		}
	}
	if inline > 0 && endpoint > 0 {
		half := float64(n) / 2
		b.ReportMetric(half/inline.Seconds(), "inline_refreshes/s")
		b.ReportMetric(half/endpoint.Seconds(), "endpoint_refreshes/s")
		b.ReportMetric(endpoint.Seconds()/inline.Seconds(), "inline_vs_endpoint")
	}
}

func cookieValue(tb testing.TB, cs []*http.Cookie, name string) string {
	tb.Helper()
	for _, c := range cs {
		if c.Name == name && c.Value != "" {
			return c.Value
		}
	}
	tb.Fatalf("no %s cookie in the answer", name)
	return ""
}
