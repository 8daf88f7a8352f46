package handler

import (
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/wxauth/caddy-wechat-auth/internal/token"
)

// TestJWKSEndpoint: with a public key the JWK Set is served at its path
// (GET with the body, HEAD without, anything else 405 with Allow); with
// symmetric keys only the path is no endpoint and falls to the guard.
func TestJWKSEndpoint(t *testing.T) {
	t.Run("public key", func(t *testing.T) {
		hs := newHarness(t)
		ed, err := token.NewEd25519Key([]byte(strings.Repeat("e", 32)), "ed-1")
		if err != nil {
			t.Fatal(err)
		}
		tokens, err := token.New(token.Config{Keys: []*token.Key{ed}, Issuer: "caddy-wechat-auth",
			Audience: testApp, AccessTTL: 15 * time.Minute, Now: hs.clock.Now})
		if err != nil {
			t.Fatal(err)
		}
		cfg := hs.h.cfg
		cfg.Tokens = tokens
		if hs.h, err = New(cfg); err != nil {
			t.Fatal(err)
		}

		r := hs.call("GET", "/jwks", "")
		want(t, r, 200, "")
		if ct := r.header.Get("Content-Type"); ct != "application/jwk-set+json" {
			t.Fatalf("Content-Type %q", ct)
		}
		if cc := r.header.Get("Cache-Control"); cc != "public, max-age=300" {
			t.Fatalf("Cache-Control %q", cc)
		}
		var set struct {
			Keys []struct {
				Kid, Kty, Alg string
				D             string `json:"d"`
			} `json:"keys"`
		}
		if err := json.Unmarshal([]byte(r.raw), &set); err != nil {
			t.Fatalf("JWK Set %q: %v", r.raw, err)
		}
		if len(set.Keys) != 1 || set.Keys[0].Kid != "ed-1" || set.Keys[0].Alg != token.AlgEdDSA || set.Keys[0].D != "" {
			t.Fatalf("JWK Set %s", r.raw)
		}

		w := httptest.NewRecorder()
		if res, _, _ := hs.h.Serve(w, httptest.NewRequest("HEAD", "/jwks", nil)); res != ResultEndpoint || w.Code != 200 || w.Body.Len() != 0 {
			t.Fatalf("HEAD: result %v, %d, %d bytes", res, w.Code, w.Body.Len())
		}

		r = hs.call("POST", "/jwks", `{}`)
		want(t, r, 405, CodeMethodNotAllowed)
		if a := r.header.Get("Allow"); a != "GET, HEAD" {
			t.Fatalf("Allow %q", a)
		}
	})
	t.Run("symmetric only", func(t *testing.T) {
		hs := newHarness(t)
		r := hs.call("GET", "/jwks", "")
		want(t, r, 401, CodeInvalidToken)
		if r.header.Get("WWW-Authenticate") != `Bearer realm="wechat_auth"` {
			t.Fatalf("challenge %q", r.header.Get("WWW-Authenticate"))
		}
	})
}
