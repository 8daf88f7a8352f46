package token

import (
	"crypto/rsa"
	"errors"
	"math/big"
	"strings"
	"testing"
)

// sizedToken issues, under an HS256 key, a token exactly size bytes long,
// varying the kid and the openid lengths until one fits. It returns the
// token and the Service that verifies it.
func sizedToken(t *testing.T, size int) (string, *Service) {
	t.Helper()
	clock := newClock(t0)
	m := genKeys(t)
	// The payload's base64 length never takes some residues mod 4, so the
	// kid (in the header) moves the total by one where the openid cannot.
	for kidLen := 8; kidLen < 16; kidLen++ {
		k, err := NewHMACKey(m.hmac, strings.Repeat("k", kidLen))
		if err != nil {
			t.Fatal(err)
		}
		s := newService(t, clock, []*Key{k}, nil)
		for n := 2600; n < 3100; n++ {
			sub := testSubject
			sub.OpenID = strings.Repeat("o", n)
			tok, _, err := s.Issue(sub, "jti-1", t0)
			if err != nil {
				break // over the limit: the next kid length
			}
			if len(tok) == size {
				return tok, s
			}
			if len(tok) > size {
				break
			}
		}
	}
	t.Fatalf("found no token of exactly %d bytes", size)
	return "", nil
}

// TestTokenOfExactlyMaxSize: the 4096-byte limit is inclusive on both
// sides: Issue hands out and Verify accepts a token of exactly 4096 bytes,
// and one byte more is refused before any decoding.
func TestTokenOfExactlyMaxSize(t *testing.T) {
	tok, s := sizedToken(t, MaxTokenSize)
	c, err := s.Verify(tok)
	if err != nil {
		t.Fatalf("Verify of a %d-byte token: %v", len(tok), err)
	}
	if c.UserID != testSubject.UserID {
		t.Fatalf("user id %d, want %d", c.UserID, testSubject.UserID)
	}
	_, err = s.Verify(tok + "A")
	wantInvalid(t, err, ErrTooLarge)
}

// TestIssueRefusesOverMaxSize: Issue never hands out a token that Verify
// would refuse as too large.
func TestIssueRefusesOverMaxSize(t *testing.T) {
	tok, s := sizedToken(t, MaxTokenSize)
	// The same claims with a longer openid: find one that is over the limit
	// by a few bytes and check that Issue refuses it.
	c, err := s.Verify(tok)
	if err != nil {
		t.Fatal(err)
	}
	sub := testSubject
	sub.OpenID = c.OpenID + "oo"
	if tok, _, err := s.Issue(sub, "jti-1", t0); !errors.Is(err, ErrClaims) {
		t.Fatalf("Issue of a %d-byte token: err = %v, want ErrClaims", len(tok), err)
	}
}

// TestKIDBoundaries: a kid is 1 to 128 printable ASCII characters without
// spaces; '!' and '~' are the ends of that range.
func TestKIDBoundaries(t *testing.T) {
	secret := []byte(strings.Repeat("s", MinHMACKeySize))
	tests := []struct {
		name string
		kid  string
		ok   bool
	}{
		{"128 characters", strings.Repeat("a", maxKIDLen), true},
		{"129 characters", strings.Repeat("a", maxKIDLen+1), false},
		{"tilde", "a~b", true},
		{"exclamation mark", "!a", true},
		{"DEL", "a\x7f", false},
		{"space", "a b", false},
		{"control", "a\x1f", false},
		{"non-ASCII", "a\xc3\xa9", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := NewHMACKey(secret, tt.kid)
			if tt.ok {
				if err != nil {
					t.Fatalf("kid %q refused: %v", tt.kid, err)
				}
				if k.ID() != tt.kid {
					t.Fatalf("kid %q, want %q", k.ID(), tt.kid)
				}
				return
			}
			if err == nil {
				t.Fatalf("kid %q accepted", tt.kid)
			}
		})
	}
}

// TestRSAPublicKeyChecks: the RSA checks on verify keys and thumbprints,
// at their boundaries: the smallest valid exponent 3 passes, 1, 2 and even
// exponents do not; a zero modulus is refused as unsupported, not merely
// weak.
func TestRSAPublicKeyChecks(t *testing.T) {
	priv, err := sharedRSAKey()
	if err != nil {
		t.Fatal(err)
	}
	n := priv.N
	tests := []struct {
		name string
		pub  *rsa.PublicKey
		want error // nil: accepted
	}{
		{"exponent 3", &rsa.PublicKey{N: n, E: 3}, nil},
		{"exponent 65537", &rsa.PublicKey{N: n, E: 65537}, nil},
		{"exponent 2", &rsa.PublicKey{N: n, E: 2}, ErrUnsupportedKey},
		{"exponent 1", &rsa.PublicKey{N: n, E: 1}, ErrUnsupportedKey},
		{"exponent 4", &rsa.PublicKey{N: n, E: 4}, ErrUnsupportedKey},
		{"exponent 0", &rsa.PublicKey{N: n, E: 0}, ErrUnsupportedKey},
		{"zero modulus", &rsa.PublicKey{N: big.NewInt(0), E: 65537}, ErrUnsupportedKey},
		{"negative modulus", &rsa.PublicKey{N: big.NewInt(-7), E: 65537}, ErrUnsupportedKey},
		{"1024-bit modulus", &rsa.PublicKey{N: new(big.Int).Rsh(n, 1024), E: 65537}, ErrWeakKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewVerifyKey(tt.pub, "rsa-test")
			if tt.want == nil {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

// TestThumbprintRefusesBadRSAExponent: Thumbprint, which takes any public
// key, refuses an RSA key without a positive exponent instead of hashing a
// JWK with an empty "e".
func TestThumbprintRefusesBadRSAExponent(t *testing.T) {
	priv, err := sharedRSAKey()
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range []int{0, -3} {
		if tp, err := Thumbprint(&rsa.PublicKey{N: priv.N, E: e}); !errors.Is(err, ErrUnsupportedKey) {
			t.Errorf("E=%d: thumbprint %q, err = %v, want ErrUnsupportedKey", e, tp, err)
		}
	}
	if _, err := Thumbprint(&rsa.PublicKey{N: priv.N, E: 1}); err != nil {
		t.Errorf("E=1: %v (a thumbprint only encodes the key)", err)
	}
}
