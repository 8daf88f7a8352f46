package token

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func TestNewConfigErrors(t *testing.T) {
	m := genKeys(t)
	ed := m.key(t, AlgEdDSA, "ed")
	verifyOnly, err := NewVerifyKey(m.ec.Public(), "ec")
	if err != nil {
		t.Fatal(err)
	}
	ok := func() Config {
		return Config{Keys: []*Key{ed}, Issuer: "iss", Audience: "aud", AccessTTL: time.Minute}
	}
	tests := []struct {
		name string
		mod  func(*Config)
		want error // errAny: an error without a sentinel
	}{
		{"no keys", func(c *Config) { c.Keys = nil }, ErrNoSigningKey},
		{"nil key", func(c *Config) { c.Keys = []*Key{ed, nil} }, ErrUnsupportedKey},
		{"verify-only first", func(c *Config) { c.Keys = []*Key{verifyOnly, ed} }, ErrNoSigningKey},
		{"duplicate kid", func(c *Config) { c.Keys = []*Key{ed, m.key(t, AlgHS256, "ed")} }, ErrDuplicateKID},
		{"no issuer", func(c *Config) { c.Issuer = "" }, errAny},
		{"no audience", func(c *Config) { c.Audience = "" }, errAny},
		{"zero TTL", func(c *Config) { c.AccessTTL = 0 }, errAny},
		{"negative TTL", func(c *Config) { c.AccessTTL = -time.Second }, errAny},
		{"negative leeway", func(c *Config) { c.Leeway = -time.Second }, errAny},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := ok()
			tt.mod(&cfg)
			_, err := New(cfg)
			checkErr(t, err, tt.want)
		})
	}
	s, err := New(ok())
	if err != nil {
		t.Fatalf("valid config refused: %v", err)
	}
	if s.AccessTTL() != time.Minute || s.Leeway() != 0 {
		t.Errorf("AccessTTL, Leeway = %v, %v", s.AccessTTL(), s.Leeway())
	}
}

// verifyEnv is a Service with EdDSA (signing), HS256 and RS256 keys, plus
// the private material, for crafting hostile tokens.
type verifyEnv struct {
	m     keyMaterial
	clock *testClock
	s     *Service
	ed    *Key
	hs    *Key
	rs    *Key
}

func newVerifyEnv(t *testing.T) *verifyEnv {
	t.Helper()
	e := &verifyEnv{m: genKeys(t), clock: newClock(t0)}
	e.ed = e.m.key(t, AlgEdDSA, "ed")
	e.hs = e.m.key(t, AlgHS256, "hs")
	e.rs = e.m.key(t, AlgRS256, "rs")
	e.s = newService(t, e.clock, []*Key{e.ed, e.hs, e.rs}, nil)
	return e
}

func (e *verifyEnv) header(kid string) map[string]any {
	alg := map[string]string{"ed": AlgEdDSA, "hs": AlgHS256, "rs": AlgRS256}[kid]
	return map[string]any{"alg": alg, "typ": "at+jwt", "kid": kid}
}

// signEd crafts a token signed by the configured EdDSA key.
func (e *verifyEnv) signEd(t *testing.T, header map[string]any, claims any) string {
	t.Helper()
	return craft(t, header, claims, jwt.SigningMethodEdDSA, e.m.ed)
}

func TestVerifyRefuses(t *testing.T) {
	e := newVerifyEnv(t)
	good := e.signEd(t, e.header("ed"), baseClaims(t0))
	if _, err := e.s.Verify(good); err != nil {
		t.Fatalf("baseline token refused: %v", err)
	}
	parts := strings.Split(good, ".")

	withHeader := func(mod func(h map[string]any)) string {
		h := e.header("ed")
		mod(h)
		return e.signEd(t, h, baseClaims(t0))
	}
	withClaims := func(mod func(c map[string]any)) string {
		c := baseClaims(t0)
		mod(c)
		return e.signEd(t, e.header("ed"), c)
	}
	otherClaims := baseClaims(t0)
	otherClaims["sub"] = "43"
	tamperedPayload := strings.Split(e.signEd(t, e.header("ed"), otherClaims), ".")[1]
	sig := []byte(parts[2])
	// Change one character inside the signature to another valid base64url
	// character (flipping a bit could make it invalid: then the token is
	// malformed, not wrongly signed).
	if sig[10] == 'A' {
		sig[10] = 'B'
	} else {
		sig[10] = 'A'
	}
	rsaPubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: mustPKIX(t, e.m.rsa.Public())})

	tests := []struct {
		name string
		tok  string
		want error
	}{
		{"tampered payload", parts[0] + "." + tamperedPayload + "." + parts[2], ErrSignature},
		{"tampered signature", parts[0] + "." + parts[1] + "." + string(sig), ErrSignature},
		{"signature removed", parts[0] + "." + parts[1] + ".", ErrSignature},
		{"signature from other key", craft(t, e.header("ed"), baseClaims(t0), jwt.SigningMethodEdDSA, genKeys(t).ed), ErrSignature},
		{"alg none", craft(t, map[string]any{"alg": "none", "typ": "at+jwt", "kid": "ed"}, baseClaims(t0), nil, nil), ErrAlgorithm},
		{"alg none unsigned with HS kid", craft(t, map[string]any{"alg": "none", "typ": "at+jwt", "kid": "hs"}, baseClaims(t0), nil, nil), ErrAlgorithm},
		{"RS256 public key as HS256 secret", craft(t, map[string]any{"alg": "HS256", "typ": "at+jwt", "kid": "rs"}, baseClaims(t0), jwt.SigningMethodHS256, rsaPubPEM), ErrAlgorithm},
		{"RS256 public key DER as HS256 secret", craft(t, map[string]any{"alg": "HS256", "typ": "at+jwt", "kid": "rs"}, baseClaims(t0), jwt.SigningMethodHS256, mustPKIX(t, e.m.rsa.Public())), ErrAlgorithm},
		{"HMAC kid but RS256", craft(t, map[string]any{"alg": "RS256", "typ": "at+jwt", "kid": "hs"}, baseClaims(t0), jwt.SigningMethodRS256, e.m.rsa), ErrAlgorithm},
		{"EdDSA kid but ES256", craft(t, map[string]any{"alg": "ES256", "typ": "at+jwt", "kid": "ed"}, baseClaims(t0), jwt.SigningMethodES256, e.m.ec), ErrAlgorithm},
		{"unknown alg", withHeader(func(h map[string]any) { h["alg"] = "HS999" }), ErrAlgorithm},
		{"alg missing", withHeader(func(h map[string]any) { delete(h, "alg") }), ErrAlgorithm},
		{"unknown kid", withHeader(func(h map[string]any) { h["kid"] = "nope" }), ErrUnknownKey},
		{"kid missing", withHeader(func(h map[string]any) { delete(h, "kid") }), ErrUnknownKey},
		{"kid not a string", withHeader(func(h map[string]any) { h["kid"] = 7 }), ErrUnknownKey},
		{"embedded jwk", withHeader(func(h map[string]any) { h["jwk"] = map[string]any{"kty": "OKP", "crv": "Ed25519", "x": "AAAA"} }), ErrUnknownKey},
		{"jku", withHeader(func(h map[string]any) { h["jku"] = "https://evil.example/jwks.json" }), ErrUnknownKey},
		{"x5u", withHeader(func(h map[string]any) { h["x5u"] = "https://evil.example/cert.pem" }), ErrUnknownKey},
		{"x5c", withHeader(func(h map[string]any) { h["x5c"] = []string{"MIIB"} }), ErrUnknownKey},
		{"jku without kid", withHeader(func(h map[string]any) { delete(h, "kid"); h["jku"] = "https://evil.example/" }), ErrUnknownKey},
		{"crit", withHeader(func(h map[string]any) { h["crit"] = []string{"exp"} }), ErrMalformed},
		{"typ JWT", withHeader(func(h map[string]any) { h["typ"] = "JWT" }), ErrType},
		{"typ missing", withHeader(func(h map[string]any) { delete(h, "typ") }), ErrType},
		{"typ not a string", withHeader(func(h map[string]any) { h["typ"] = 1 }), ErrType},
		{"typ prefix only", withHeader(func(h map[string]any) { h["typ"] = "application/" }), ErrType},
		{"typ refresh", withHeader(func(h map[string]any) { h["typ"] = "rt+jwt" }), ErrType},
		{"wrong iss", withClaims(func(c map[string]any) { c["iss"] = "someone-else" }), ErrIssuer},
		{"iss missing", withClaims(func(c map[string]any) { delete(c, "iss") }), ErrIssuer},
		{"iss case", withClaims(func(c map[string]any) { c["iss"] = strings.ToUpper(testIssuer) }), ErrIssuer},
		{"wrong aud", withClaims(func(c map[string]any) { c["aud"] = "wx-other" }), ErrAudience},
		{"wrong aud array", withClaims(func(c map[string]any) { c["aud"] = []string{"a", "b"} }), ErrAudience},
		{"aud missing", withClaims(func(c map[string]any) { delete(c, "aud") }), ErrAudience},
		{"expired beyond leeway", withClaims(func(c map[string]any) { c["exp"] = t0.Add(-testLeeway - time.Second).Unix() }), ErrExpired},
		{"expired exactly at leeway", withClaims(func(c map[string]any) { c["exp"] = t0.Add(-testLeeway).Unix() }), ErrExpired},
		{"exp missing", withClaims(func(c map[string]any) { delete(c, "exp") }), ErrClaims},
		{"iat missing", withClaims(func(c map[string]any) { delete(c, "iat") }), ErrClaims},
		{"iat in the future", withClaims(func(c map[string]any) { c["iat"] = t0.Add(testLeeway + time.Second).Unix() }), ErrNotYetValid},
		{"nbf in the future", withClaims(func(c map[string]any) { c["nbf"] = t0.Add(time.Hour).Unix() }), ErrNotYetValid},
		{"sub zero", withClaims(func(c map[string]any) { c["sub"] = "0" }), ErrClaims},
		{"sub negative", withClaims(func(c map[string]any) { c["sub"] = "-1" }), ErrClaims},
		{"sub plus", withClaims(func(c map[string]any) { c["sub"] = "+42" }), ErrClaims},
		{"sub leading zero", withClaims(func(c map[string]any) { c["sub"] = "042" }), ErrClaims},
		{"sub letters", withClaims(func(c map[string]any) { c["sub"] = "42a" }), ErrClaims},
		{"sub overflow", withClaims(func(c map[string]any) { c["sub"] = "18446744073709551616" }), ErrClaims},
		{"sub empty", withClaims(func(c map[string]any) { c["sub"] = "" }), ErrClaims},
		{"sub missing", withClaims(func(c map[string]any) { delete(c, "sub") }), ErrClaims},
		{"sub number", withClaims(func(c map[string]any) { c["sub"] = 42 }), ErrMalformed},
		{"sid missing", withClaims(func(c map[string]any) { delete(c, "sid") }), ErrClaims},
		{"openid empty", withClaims(func(c map[string]any) { c["openid"] = "" }), ErrClaims},
		{"appid missing", withClaims(func(c map[string]any) { delete(c, "appid") }), ErrClaims},
		{"exp a string", withClaims(func(c map[string]any) { c["exp"] = "soon" }), ErrMalformed},
		{"oversize", good + strings.Repeat("A", MaxTokenSize+1-len(good)), ErrTooLarge},
		{"huge", strings.Repeat("A", 1<<20), ErrTooLarge},
		{"empty", "", ErrMalformed},
		{"one segment", "abc", ErrMalformed},
		{"two segments", parts[0] + "." + parts[1], ErrMalformed},
		{"four segments", good + ".x", ErrMalformed},
		{"bad base64 header", "!!!." + parts[1] + "." + parts[2], ErrMalformed},
		{"padded header", parts[0] + "==." + parts[1] + "." + parts[2], ErrMalformed},
		{"header not JSON", "bm90LWpzb24." + parts[1] + "." + parts[2], ErrMalformed},
		{"claims not JSON", parts[0] + ".bm90LWpzb24." + parts[2], ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := e.s.Verify(tt.tok)
			if c != nil {
				t.Errorf("Verify returned claims with an error")
			}
			wantInvalid(t, err, tt.want)
			if len(tt.tok) > 20 && strings.Contains(err.Error(), tt.tok[len(tt.tok)-20:]) {
				t.Errorf("error %q quotes the token", err)
			}
		})
	}
}

func TestMissingKIDRefusedWithSingleKey(t *testing.T) {
	m := genKeys(t)
	for _, alg := range []string{AlgHS256, AlgEdDSA} {
		t.Run(alg, func(t *testing.T) {
			s := newService(t, newClock(t0), []*Key{m.key(t, alg, "")}, nil)
			var method jwt.SigningMethod = jwt.SigningMethodEdDSA
			var key any = m.ed
			if alg == AlgHS256 {
				method, key = jwt.SigningMethodHS256, m.hmac
			}
			tok := craft(t, map[string]any{"alg": alg, "typ": "at+jwt"}, baseClaims(t0), method, key)
			_, err := s.Verify(tok)
			wantInvalid(t, err, ErrUnknownKey)
		})
	}
}

func mustPKIX(t *testing.T, pub any) []byte {
	t.Helper()
	b, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestVerifyAccepts(t *testing.T) {
	e := newVerifyEnv(t)
	withHeader := func(mod func(h map[string]any)) string {
		h := e.header("ed")
		mod(h)
		return e.signEd(t, h, baseClaims(t0))
	}
	withClaims := func(mod func(c map[string]any)) string {
		c := baseClaims(t0)
		mod(c)
		return e.signEd(t, e.header("ed"), c)
	}
	tests := []struct {
		name string
		tok  string
	}{
		{"issued by the service", issue(t, e.s, "j", t0)},
		{"HS256 key", craft(t, e.header("hs"), baseClaims(t0), jwt.SigningMethodHS256, e.m.hmac)},
		{"RS256 key", craft(t, e.header("rs"), baseClaims(t0), jwt.SigningMethodRS256, e.m.rsa)},
		{"aud as string", withClaims(func(c map[string]any) { c["aud"] = testAudience })},
		{"aud array containing it", withClaims(func(c map[string]any) { c["aud"] = []string{"other", testAudience} })},
		{"expired within leeway", withClaims(func(c map[string]any) { c["exp"] = t0.Add(-testLeeway + time.Second).Unix() })},
		{"iat in the future within leeway", withClaims(func(c map[string]any) { c["iat"] = t0.Add(testLeeway).Unix() })},
		{"nbf now", withClaims(func(c map[string]any) { c["nbf"] = t0.Unix() })},
		{"no unionid", withClaims(func(c map[string]any) { delete(c, "unionid") })},
		{"no jti", withClaims(func(c map[string]any) { delete(c, "jti") })},
		{"extra claim", withClaims(func(c map[string]any) { c["scope"] = "x" })},
		{"max user id", withClaims(func(c map[string]any) { c["sub"] = "18446744073709551615" })},
		{"typ application/at+jwt", withHeader(func(h map[string]any) { h["typ"] = "application/at+jwt" })},
		{"typ upper case", withHeader(func(h map[string]any) { h["typ"] = "AT+JWT" })},
		{"harmless extra header", withHeader(func(h map[string]any) { h["cty"] = "x" })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := e.s.Verify(tt.tok)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if c.UserID == 0 || c.SessionID == "" {
				t.Errorf("claims = %+v", c)
			}
		})
	}
}

func TestVerifyUsesInjectedClockAndLeeway(t *testing.T) {
	m := genKeys(t)
	for _, alg := range []string{AlgHS256, AlgEdDSA} {
		t.Run(alg, func(t *testing.T) {
			clock := newClock(t0)
			// No cache, so every call is a full verification.
			s := newService(t, clock, []*Key{m.key(t, alg, "")}, func(c *Config) { c.CacheSize = -1 })
			tok := issue(t, s, "j", t0)
			steps := []struct {
				at   time.Time
				want error
			}{
				{t0.Add(-testLeeway - time.Second), ErrNotYetValid},
				{t0.Add(-testLeeway), nil},
				{t0.Add(testTTL - time.Second), nil},
				{t0.Add(testTTL + testLeeway - time.Second), nil},
				{t0.Add(testTTL + testLeeway), ErrExpired},
				{t0.Add(24 * time.Hour), ErrExpired},
			}
			for _, st := range steps {
				clock.Set(st.at)
				_, err := s.Verify(tok)
				if st.want == nil {
					if err != nil {
						t.Errorf("at %v: %v", st.at.Sub(t0), err)
					}
					continue
				}
				if !errors.Is(err, st.want) || !errors.Is(err, ErrInvalidToken) {
					t.Errorf("at %v: err = %v, want %v", st.at.Sub(t0), err, st.want)
				}
			}
		})
	}
}

func TestIssueDeterministic(t *testing.T) {
	m := genKeys(t)
	for _, alg := range allAlgs {
		t.Run(alg, func(t *testing.T) {
			s := newService(t, newClock(t0), []*Key{m.key(t, alg, "")}, nil)
			at := t0.Add(1500 * time.Millisecond) // sub-second part is dropped
			a, expA, err := s.Issue(testSubject, "same", at)
			if err != nil {
				t.Fatal(err)
			}
			b, expB, err := s.Issue(testSubject, "same", at.Add(-500*time.Millisecond))
			if err != nil {
				t.Fatal(err)
			}
			if !expA.Equal(expB) || !expA.Equal(t0.Add(time.Second+testTTL)) {
				t.Errorf("exp = %v, %v", expA, expB)
			}
			pa, pb := strings.Split(a, "."), strings.Split(b, ".")
			if pa[0] != pb[0] || pa[1] != pb[1] {
				t.Errorf("header or claims differ between identical issues")
			}
			deterministic := alg == AlgHS256 || alg == AlgEdDSA || alg == AlgRS256
			if deterministic && a != b {
				t.Errorf("%s tokens differ for identical inputs", alg)
			}
			c := decodeSegment(t, a, 1)
			want := map[string]any{
				"iss": testIssuer, "sub": "42", "jti": "same", "sid": testSubject.SessionID,
				"openid": testSubject.OpenID, "unionid": testSubject.UnionID, "appid": testSubject.AppID,
				"iat": float64(t0.Unix() + 1), "exp": float64(t0.Add(testTTL).Unix() + 1),
			}
			for k, v := range want {
				if c[k] != v {
					t.Errorf("claim %s = %v, want %v", k, c[k], v)
				}
			}
			if aud, ok := c["aud"].([]any); !ok || len(aud) != 1 || aud[0] != testAudience {
				t.Errorf("aud = %v", c["aud"])
			}
			if len(c) != len(want)+1 {
				t.Errorf("claims have extra members: %v", c)
			}
		})
	}
	// Different ids give different tokens.
	s := newService(t, newClock(t0), []*Key{m.key(t, AlgHS256, "")}, nil)
	if issue(t, s, "a", t0) == issue(t, s, "b", t0) {
		t.Error("tokens with different jti are equal")
	}
}

func TestIssueOmitsEmptyUnionID(t *testing.T) {
	m := genKeys(t)
	s := newService(t, newClock(t0), []*Key{m.key(t, AlgHS256, "")}, nil)
	sub := testSubject
	sub.UnionID = ""
	tok, _, err := s.Issue(sub, "j", t0)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := decodeSegment(t, tok, 1)["unionid"]; ok {
		t.Error("empty unionid written")
	}
	c, err := s.Verify(tok)
	if err != nil || c.UnionID != "" {
		t.Errorf("Verify: %v, %+v", err, c)
	}
}

func TestIssueRefusesIncompleteSubject(t *testing.T) {
	m := genKeys(t)
	s := newService(t, newClock(t0), []*Key{m.key(t, AlgHS256, "")}, nil)
	tests := []struct {
		name string
		mod  func(*Subject)
		id   string
		at   time.Time
	}{
		{"user id 0", func(s *Subject) { s.UserID = 0 }, "j", t0},
		{"no session", func(s *Subject) { s.SessionID = "" }, "j", t0},
		{"no openid", func(s *Subject) { s.OpenID = "" }, "j", t0},
		{"no appid", func(s *Subject) { s.AppID = "" }, "j", t0},
		{"no id", func(*Subject) {}, "", t0},
		{"zero time", func(*Subject) {}, "j", time.Time{}},
		{"too large", func(s *Subject) { s.OpenID = strings.Repeat("o", MaxTokenSize) }, "j", t0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sub := testSubject
			tt.mod(&sub)
			tok, _, err := s.Issue(sub, tt.id, tt.at)
			if !errors.Is(err, ErrClaims) || tok != "" {
				t.Errorf("Issue = %q, %v; want ErrClaims", tok, err)
			}
		})
	}
}

func TestRotation(t *testing.T) {
	m, m2 := genKeys(t), genKeys(t)
	clock := newClock(t0)
	for _, algs := range [][2]string{{AlgEdDSA, AlgEdDSA}, {AlgES256, AlgHS256}, {AlgHS256, AlgRS256}} {
		t.Run(algs[0]+"_over_"+algs[1], func(t *testing.T) {
			oldKey := m.key(t, algs[1], "old")
			newKey := m2.key(t, algs[0], "new")
			before := newService(t, clock, []*Key{oldKey}, nil)
			after := newService(t, clock, []*Key{newKey, oldKey}, nil)

			oldTok := issue(t, before, "o", t0)
			if _, err := after.Verify(oldTok); err != nil {
				t.Fatalf("token of the old key refused after rotation: %v", err)
			}
			newTok := issue(t, after, "n", t0)
			if h := decodeSegment(t, newTok, 0); h["kid"] != "new" || h["alg"] != algs[0] {
				t.Errorf("rotated service signs with %v, want kid new", h)
			}
			if _, err := after.Verify(newTok); err != nil {
				t.Fatalf("new token refused: %v", err)
			}
			_, err := before.Verify(newTok)
			wantInvalid(t, err, ErrUnknownKey)

			// Retiring the old key: keep only its public half (if it has one).
			if !oldKey.Symmetric() {
				pub, err := NewVerifyKey(oldKey.public, "old")
				if err != nil {
					t.Fatal(err)
				}
				retired := newService(t, clock, []*Key{newKey, pub}, nil)
				if _, err := retired.Verify(oldTok); err != nil {
					t.Errorf("verify-only old key refuses its token: %v", err)
				}
			}
		})
	}
}

// FuzzVerify checks that no input makes Verify panic or accept a token it
// did not issue.
func FuzzVerify(f *testing.F) {
	m := genKeys(f)
	clock := newClock(t0)
	s := newService(f, clock, []*Key{m.key(f, AlgEdDSA, "ed"), m.key(f, AlgHS256, "hs")}, nil)
	good := issue(f, s, "j", t0)
	f.Add(good)
	f.Add(good[:len(good)-3])
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Add("..")
	f.Add("a.b.c")
	f.Fuzz(func(t *testing.T, tok string) {
		c, err := s.Verify(tok)
		if err == nil && tok != good {
			// Only canonical re-encodings of the real token may pass; any
			// other accepted token must carry its exact claims.
			if c.UserID != 42 || c.SessionID != testSubject.SessionID {
				t.Fatalf("accepted a forged token: %+v", c)
			}
		}
		if err != nil && !errors.Is(err, ErrInvalidToken) {
			t.Fatalf("error %v does not wrap ErrInvalidToken", err)
		}
	})
}

func TestNewRefusesZeroKey(t *testing.T) {
	_, err := New(Config{Keys: []*Key{{}}, Issuer: "i", Audience: "a", AccessTTL: time.Minute})
	checkErr(t, err, ErrUnsupportedKey)
}
