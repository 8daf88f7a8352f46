package token

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/wxauth/caddy-wechat-auth/internal/testclock"
)

// t0 is the fixed start time of the test clocks.
var t0 = time.Date(2025, 3, 14, 15, 9, 26, 0, time.UTC)

// testClock is the tests' injected clock.
type testClock = testclock.Clock

func newClock(t time.Time) *testClock { return testclock.New(t) }

// sharedRSAKey is generated once per test binary: RSA key generation takes up
// to a second under -race. It is only ever read.
var sharedRSAKey = sync.OnceValues(func() (*rsa.PrivateKey, error) {
	return rsa.GenerateKey(rand.Reader, 2048)
})

// keyMaterial holds freshly generated private keys of every supported type.
type keyMaterial struct {
	hmac []byte
	ed   ed25519.PrivateKey
	ec   *ecdsa.PrivateKey
	rsa  *rsa.PrivateKey
}

func genKeys(t testing.TB) keyMaterial {
	t.Helper()
	var m keyMaterial
	m.hmac = make([]byte, 32)
	if _, err := rand.Read(m.hmac); err != nil {
		t.Fatal(err)
	}
	var err error
	if _, m.ed, err = ed25519.GenerateKey(rand.Reader); err != nil {
		t.Fatal(err)
	}
	if m.ec, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		t.Fatal(err)
	}
	if m.rsa, err = sharedRSAKey(); err != nil {
		t.Fatal(err)
	}
	return m
}

// key returns the Key of algorithm alg built from m, with kid.
func (m keyMaterial) key(t testing.TB, alg, kid string) *Key {
	t.Helper()
	var (
		k   *Key
		err error
	)
	switch alg {
	case AlgHS256:
		k, err = NewHMACKey(m.hmac, kid)
	case AlgEdDSA:
		k, err = NewSigningKey(m.ed, kid)
	case AlgES256:
		k, err = NewSigningKey(m.ec, kid)
	case AlgRS256:
		k, err = NewSigningKey(m.rsa, kid)
	default:
		t.Fatalf("unknown alg %q", alg)
	}
	if err != nil {
		t.Fatalf("creating %s key: %v", alg, err)
	}
	return k
}

var allAlgs = []string{AlgHS256, AlgEdDSA, AlgES256, AlgRS256}

const (
	testIssuer   = "caddy-wechat-auth"
	testAudience = "wx0123456789abcdef"
	testTTL      = 15 * time.Minute
	testLeeway   = 30 * time.Second
)

// newService builds a Service over keys with the test defaults; mod may
// adjust the config.
func newService(t testing.TB, clock *testClock, keys []*Key, mod func(*Config)) *Service {
	t.Helper()
	cfg := Config{
		Keys:      keys,
		Issuer:    testIssuer,
		Audience:  testAudience,
		AccessTTL: testTTL,
		Leeway:    testLeeway,
		Now:       clock.Now,
	}
	if mod != nil {
		mod(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

var testSubject = Subject{
	UserID:    42,
	SessionID: "sess-1",
	OpenID:    "oAbCdEfGhIjKlMnOpQrStUvWxYz0",
	UnionID:   "uAbCdEf",
	AppID:     testAudience,
}

func issue(t testing.TB, s *Service, id string, at time.Time) string {
	t.Helper()
	tok, _, err := s.Issue(testSubject, id, at)
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}
	return tok
}

// baseClaims returns the claims Issue would write at iat, as a map that a
// test may change before crafting a token.
func baseClaims(iat time.Time) map[string]any {
	return map[string]any{
		"iss":     testIssuer,
		"sub":     "42",
		"aud":     []string{testAudience},
		"exp":     iat.Add(testTTL).Unix(),
		"iat":     iat.Unix(),
		"jti":     "jti-1",
		"sid":     "sess-1",
		"openid":  "oAbCdEfGhIjKlMnOpQrStUvWxYz0",
		"appid":   testAudience,
		"unionid": "uAbCdEf",
	}
}

// craft builds a compact JWS from an arbitrary header and claims, signed by
// method with key (no signature when method is nil).
func craft(t testing.TB, header map[string]any, claims any, method jwt.SigningMethod, key any) string {
	t.Helper()
	h, err := json.Marshal(header)
	if err != nil {
		t.Fatal(err)
	}
	c, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	enc := base64.RawURLEncoding
	input := enc.EncodeToString(h) + "." + enc.EncodeToString(c)
	if method == nil {
		return input + "."
	}
	sig, err := method.Sign(input, key)
	if err != nil {
		t.Fatalf("signing crafted token: %v", err)
	}
	return input + "." + enc.EncodeToString(sig)
}

// decodeSegment returns segment i of tok decoded into a map.
func decodeSegment(t testing.TB, tok string, i int) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d segments", len(parts))
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[i])
	if err != nil {
		t.Fatalf("decoding segment %d: %v", i, err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("unmarshalling segment %d: %v", i, err)
	}
	return m
}

// wantInvalid fails unless err wraps ErrInvalidToken and want.
func wantInvalid(t testing.TB, err, want error) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %v", want)
	}
	if !errors.Is(err, ErrInvalidToken) {
		t.Errorf("error %q does not wrap ErrInvalidToken", err)
	}
	if !errors.Is(err, want) {
		t.Errorf("error %q does not wrap %v", err, want)
	}
}
