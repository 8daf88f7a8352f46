package token

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"io"
	"math/big"
	"strings"
	"testing"
)

func TestEachKeyTypeSignsAndVerifies(t *testing.T) {
	m := genKeys(t)
	for _, alg := range allAlgs {
		t.Run(alg, func(t *testing.T) {
			k := m.key(t, alg, "")
			if k.Alg() != alg {
				t.Errorf("Alg() = %q, want %q", k.Alg(), alg)
			}
			if !k.CanSign() {
				t.Error("CanSign() = false for a signing key")
			}
			if got, want := k.Symmetric(), alg == AlgHS256; got != want {
				t.Errorf("Symmetric() = %v, want %v", got, want)
			}
			clock := newClock(t0)
			s := newService(t, clock, []*Key{k}, nil)
			tok, exp, err := s.Issue(testSubject, "jti-1", t0)
			if err != nil {
				t.Fatalf("Issue: %v", err)
			}
			if !exp.Equal(t0.Add(testTTL)) {
				t.Errorf("exp = %v, want %v", exp, t0.Add(testTTL))
			}
			h := decodeSegment(t, tok, 0)
			if h["alg"] != alg || h["typ"] != "at+jwt" || h["kid"] != k.ID() || len(h) != 3 {
				t.Errorf("header = %v, want alg %s, typ at+jwt, kid %s and nothing else", h, alg, k.ID())
			}
			c, err := s.Verify(tok)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if c.UserID != 42 || c.Subject != "42" || c.SessionID != testSubject.SessionID ||
				c.OpenID != testSubject.OpenID || c.UnionID != testSubject.UnionID || c.AppID != testSubject.AppID ||
				c.ID != "jti-1" || c.Issuer != testIssuer || !c.ExpiresAt.Equal(exp) || !c.IssuedAt.Equal(t0) {
				t.Errorf("claims = %+v", c)
			}
		})
	}
}

func TestNewHMACKey(t *testing.T) {
	secret := []byte(strings.Repeat("k", 32))
	sum := sha256.Sum256(secret)
	tests := []struct {
		name    string
		secret  []byte
		kid     string
		wantKID string
		wantErr error
	}{
		{name: "default kid", secret: secret, wantKID: "hs-" + hex.EncodeToString(sum[:8])},
		{name: "explicit kid", secret: secret, kid: "main-2025", wantKID: "main-2025"},
		{name: "31 bytes", secret: secret[:31], wantErr: ErrWeakKey},
		{name: "empty", secret: nil, wantErr: ErrWeakKey},
		{name: "kid with space", secret: secret, kid: "a b", wantErr: errAny},
		{name: "kid with control", secret: secret, kid: "a\nb", wantErr: errAny},
		{name: "kid too long", secret: secret, kid: strings.Repeat("x", 129), wantErr: errAny},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := NewHMACKey(tt.secret, tt.kid)
			if tt.wantErr != nil {
				checkErr(t, err, tt.wantErr)
				if err != nil && len(tt.secret) > 0 && strings.Contains(err.Error(), string(tt.secret)) {
					t.Errorf("error %q contains the secret", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if k.ID() != tt.wantKID || k.Alg() != AlgHS256 || !k.Symmetric() || !k.CanSign() {
				t.Errorf("key = id %q alg %q sym %v sign %v", k.ID(), k.Alg(), k.Symmetric(), k.CanSign())
			}
		})
	}
}

func TestHMACKeyCopiesSecret(t *testing.T) {
	secret := []byte(strings.Repeat("s", 32))
	clock := newClock(t0)
	k, err := NewHMACKey(secret, "")
	if err != nil {
		t.Fatal(err)
	}
	s := newService(t, clock, []*Key{k}, nil)
	tok := issue(t, s, "a", t0)
	secret[0] = 'X' // the caller reuses its buffer
	if _, err := s.Verify(tok); err != nil {
		t.Fatalf("key changed with the caller's buffer: %v", err)
	}
}

// errAny matches any non-nil error in table tests.
var errAny = errors.New("any error")

func checkErr(t *testing.T, err, want error) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %v", want)
	}
	if want != errAny && !errors.Is(err, want) {
		t.Fatalf("error %q does not wrap %v", err, want)
	}
}

// opaqueSigner is a crypto.Signer of no supported concrete type (like an HSM).
type opaqueSigner struct{ pub crypto.PublicKey }

func (o opaqueSigner) Public() crypto.PublicKey { return o.pub }
func (o opaqueSigner) Sign(io.Reader, []byte, crypto.SignerOpts) ([]byte, error) {
	return nil, errors.New("not implemented")
}

func TestNewSigningKeyRefuses(t *testing.T) {
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rsa1024, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	m := genKeys(t)
	badEd := make(ed25519.PrivateKey, ed25519.PrivateKeySize)
	copy(badEd, m.ed)
	badEd[40] ^= 1 // public half no longer matches the seed
	tests := []struct {
		name string
		priv crypto.Signer
		want error
	}{
		{"P-384", p384, ErrUnsupportedKey},
		{"RSA 1024", rsa1024, ErrWeakKey},
		{"nil interface", nil, ErrUnsupportedKey},
		{"nil ecdsa", (*ecdsa.PrivateKey)(nil), ErrUnsupportedKey},
		{"nil rsa", (*rsa.PrivateKey)(nil), ErrUnsupportedKey},
		{"short ed25519", ed25519.PrivateKey(m.ed[:10]), ErrUnsupportedKey},
		{"mismatched ed25519", badEd, ErrUnsupportedKey},
		{"opaque signer", opaqueSigner{pub: m.ed.Public()}, ErrUnsupportedKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewSigningKey(tt.priv, "")
			checkErr(t, err, tt.want)
		})
	}
}

func TestNewVerifyKey(t *testing.T) {
	m := genKeys(t)
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		pub     crypto.PublicKey
		wantAlg string
		wantErr error
	}{
		{name: "ed25519", pub: m.ed.Public(), wantAlg: AlgEdDSA},
		{name: "P-256", pub: m.ec.Public(), wantAlg: AlgES256},
		{name: "RSA", pub: m.rsa.Public(), wantAlg: AlgRS256},
		{name: "P-384", pub: p384.Public(), wantErr: ErrUnsupportedKey},
		{name: "RSA small", pub: &rsa.PublicKey{N: big.NewInt(0).Lsh(big.NewInt(1), 1023), E: 65537}, wantErr: ErrWeakKey},
		{name: "RSA no modulus", pub: &rsa.PublicKey{E: 65537}, wantErr: ErrUnsupportedKey},
		{name: "RSA even exponent", pub: &rsa.PublicKey{N: m.rsa.N, E: 65536}, wantErr: ErrUnsupportedKey},
		{name: "short ed25519", pub: ed25519.PublicKey{1, 2, 3}, wantErr: ErrUnsupportedKey},
		{name: "HMAC bytes", pub: []byte(strings.Repeat("x", 32)), wantErr: ErrUnsupportedKey},
		{name: "private key", pub: m.ed, wantErr: ErrUnsupportedKey},
		{name: "nil", pub: nil, wantErr: ErrUnsupportedKey},
		{name: "off-curve point", pub: &ecdsa.PublicKey{Curve: elliptic.P256(), X: big.NewInt(1), Y: big.NewInt(1)}, wantErr: ErrUnsupportedKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := NewVerifyKey(tt.pub, "")
			if tt.wantErr != nil {
				checkErr(t, err, tt.wantErr)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tp, err := Thumbprint(tt.pub)
			if err != nil {
				t.Fatal(err)
			}
			if k.Alg() != tt.wantAlg || k.CanSign() || k.Symmetric() || k.ID() != tp {
				t.Errorf("key = id %q alg %q sign %v sym %v; want id %q alg %q verify-only", k.ID(), k.Alg(), k.CanSign(), k.Symmetric(), tp, tt.wantAlg)
			}
		})
	}
}

func TestNewEd25519Key(t *testing.T) {
	seed := make([]byte, ed25519.SeedSize)
	if _, err := rand.Read(seed); err != nil {
		t.Fatal(err)
	}
	a, err := NewEd25519Key(seed, "")
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewEd25519Key(seed, "")
	if err != nil {
		t.Fatal(err)
	}
	if a.ID() != b.ID() || a.Alg() != AlgEdDSA || !a.CanSign() {
		t.Errorf("keys from one seed: ids %q, %q; alg %q", a.ID(), b.ID(), a.Alg())
	}
	want, err := Thumbprint(ed25519.NewKeyFromSeed(seed).Public())
	if err != nil {
		t.Fatal(err)
	}
	if a.ID() != want {
		t.Errorf("kid = %q, want thumbprint %q", a.ID(), want)
	}
	// A key restored from the seed verifies tokens of the first one.
	clock := newClock(t0)
	tok := issue(t, newService(t, clock, []*Key{a}, nil), "x", t0)
	if _, err := newService(t, clock, []*Key{b}, nil).Verify(tok); err != nil {
		t.Errorf("restored key does not verify: %v", err)
	}
	for _, n := range []int{0, 16, 31, 33, 64} {
		_, err := NewEd25519Key(make([]byte, n), "")
		if !errors.Is(err, ErrUnsupportedKey) {
			t.Errorf("seed of %d bytes: err = %v, want ErrUnsupportedKey", n, err)
		}
	}
}

func TestThumbprintRFC7638Example(t *testing.T) {
	// RFC 7638 §3.1.
	const n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
	nb, err := base64.RawURLEncoding.DecodeString(n)
	if err != nil {
		t.Fatal(err)
	}
	pub := &rsa.PublicKey{N: new(big.Int).SetBytes(nb), E: 65537}
	got, err := Thumbprint(pub)
	if err != nil {
		t.Fatal(err)
	}
	if want := "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"; got != want {
		t.Errorf("Thumbprint = %q, want %q", got, want)
	}
	k, err := NewVerifyKey(pub, "")
	if err != nil {
		t.Fatal(err)
	}
	if k.ID() != got {
		t.Errorf("default kid = %q, want the thumbprint", k.ID())
	}
}

func TestThumbprintCanonicalForms(t *testing.T) {
	m := genKeys(t)
	enc := base64.RawURLEncoding
	pt, err := m.ec.PublicKey.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	edPub := m.ed.Public().(ed25519.PublicKey)
	tests := []struct {
		name  string
		key   crypto.PublicKey
		canon string
	}{
		{"OKP", edPub, `{"crv":"Ed25519","kty":"OKP","x":"` + enc.EncodeToString(edPub) + `"}`},
		{"OKP from private", m.ed, `{"crv":"Ed25519","kty":"OKP","x":"` + enc.EncodeToString(edPub) + `"}`},
		{"EC", &m.ec.PublicKey, `{"crv":"P-256","kty":"EC","x":"` + enc.EncodeToString(pt[1:33]) + `","y":"` + enc.EncodeToString(pt[33:]) + `"}`},
		{"RSA", &m.rsa.PublicKey, `{"e":"AQAB","kty":"RSA","n":"` + enc.EncodeToString(m.rsa.N.Bytes()) + `"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Thumbprint(tt.key)
			if err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256([]byte(tt.canon))
			if want := enc.EncodeToString(sum[:]); got != want {
				t.Errorf("Thumbprint = %q, want %q", got, want)
			}
		})
	}
	if _, err := Thumbprint([]byte("secret")); !errors.Is(err, ErrUnsupportedKey) {
		t.Errorf("Thumbprint of []byte: err = %v, want ErrUnsupportedKey", err)
	}
}
