package token

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

// rebuildJWK turns a JWK back into a public key by hand, from kty, crv, x, y,
// n and e only, independently of this package's encoder.
func rebuildJWK(t *testing.T, j map[string]any) any {
	t.Helper()
	b64 := func(name string) []byte {
		s, ok := j[name].(string)
		if !ok {
			t.Fatalf("JWK member %q missing or not a string: %v", name, j)
		}
		b, err := base64.RawURLEncoding.DecodeString(s)
		if err != nil {
			t.Fatalf("JWK member %q is not base64url: %v", name, err)
		}
		return b
	}
	switch j["kty"] {
	case "OKP":
		if j["crv"] != "Ed25519" {
			t.Fatalf("OKP crv = %v", j["crv"])
		}
		return ed25519.PublicKey(b64("x"))
	case "EC":
		if j["crv"] != "P-256" {
			t.Fatalf("EC crv = %v", j["crv"])
		}
		x, y := b64("x"), b64("y")
		if len(x) != 32 || len(y) != 32 {
			t.Fatalf("EC coordinates are %d and %d bytes, want 32", len(x), len(y))
		}
		pt := append(append([]byte{4}, x...), y...)
		pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), pt)
		if err != nil {
			t.Fatalf("EC point: %v", err)
		}
		return pub
	case "RSA":
		e := new(big.Int).SetBytes(b64("e"))
		if !e.IsInt64() {
			t.Fatal("RSA e too large")
		}
		return &rsa.PublicKey{N: new(big.Int).SetBytes(b64("n")), E: int(e.Int64())}
	}
	t.Fatalf("unexpected kty %v", j["kty"])
	return nil
}

func TestJWKSIndependentlyParsed(t *testing.T) {
	m := genKeys(t)
	clock := newClock(t0)
	signers := map[string]*Key{
		AlgEdDSA: m.key(t, AlgEdDSA, ""),
		AlgES256: m.key(t, AlgES256, ""),
		AlgRS256: m.key(t, AlgRS256, "rsa-2025"),
	}
	hs := m.key(t, AlgHS256, "")
	other := genKeys(t)
	verifyOnly, err := NewVerifyKey(other.ed.Public(), "retired")
	if err != nil {
		t.Fatal(err)
	}
	keys := []*Key{signers[AlgEdDSA], hs, signers[AlgES256], signers[AlgRS256], verifyOnly}
	s := newService(t, clock, keys, nil)

	raw := s.JWKS()
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("JWKS is not JSON: %v", err)
	}
	if len(doc) != 1 {
		t.Errorf("JWKS has members other than keys: %s", raw)
	}
	var set []map[string]any
	if err := json.Unmarshal(doc["keys"], &set); err != nil {
		t.Fatalf("keys: %v", err)
	}
	if len(set) != 4 {
		t.Fatalf("JWKS has %d keys, want 4 (HMAC never published): %s", len(set), raw)
	}
	byKID := map[string]map[string]any{}
	for _, j := range set {
		for _, private := range []string{"d", "p", "q", "dp", "dq", "qi", "oth", "k"} {
			if _, ok := j[private]; ok {
				t.Errorf("JWK %v has private member %q", j["kid"], private)
			}
		}
		if j["use"] != "sig" {
			t.Errorf("JWK %v use = %v, want sig", j["kid"], j["use"])
		}
		kid, _ := j["kid"].(string)
		byKID[kid] = j
	}
	if _, ok := byKID[hs.ID()]; ok {
		t.Error("HMAC key published")
	}
	if j := byKID["retired"]; j == nil || j["alg"] != AlgEdDSA {
		t.Errorf("verify-only key missing or wrong: %v", j)
	}

	for alg, k := range signers {
		t.Run(alg, func(t *testing.T) {
			j := byKID[k.ID()]
			if j == nil {
				t.Fatalf("kid %q not in JWKS", k.ID())
			}
			if j["alg"] != alg {
				t.Errorf("alg = %v, want %s", j["alg"], alg)
			}
			pub := rebuildJWK(t, j)
			// Issue with a service whose first key is k, then verify with
			// plain golang-jwt and only the rebuilt key.
			rest := []*Key{k}
			for _, o := range keys {
				if o != k {
					rest = append(rest, o)
				}
			}
			tok := issue(t, newService(t, clock, rest, nil), "jwks", t0)
			parsed, err := jwt.ParseWithClaims(tok, &jwt.RegisteredClaims{}, func(tk *jwt.Token) (any, error) {
				if tk.Header["kid"] != j["kid"] {
					t.Errorf("token kid %v, JWK kid %v", tk.Header["kid"], j["kid"])
				}
				return pub, nil
			}, jwt.WithValidMethods([]string{alg}), jwt.WithTimeFunc(clock.Now), jwt.WithIssuer(testIssuer), jwt.WithAudience(testAudience))
			if err != nil || !parsed.Valid {
				t.Fatalf("golang-jwt with the rebuilt key: %v", err)
			}
		})
	}

	// A fresh copy each time.
	raw[0] = 'X'
	if again := s.JWKS(); again[0] != '{' {
		t.Error("JWKS returned shared, mutable bytes")
	}
}

func TestJWKSNilForSymmetricOnly(t *testing.T) {
	m := genKeys(t)
	s := newService(t, newClock(t0), []*Key{m.key(t, AlgHS256, "a"), m.key(t, AlgHS256, "b")}, nil)
	if b := s.JWKS(); b != nil {
		t.Errorf("JWKS = %s, want nil", b)
	}
}
