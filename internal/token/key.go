package token

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"

	"github.com/golang-jwt/jwt/v5"
)

// Algorithm names as they appear in the JWS "alg" header and in JWKs.
const (
	AlgHS256 = "HS256" // HMAC-SHA256 with a shared secret
	AlgEdDSA = "EdDSA" // Ed25519
	AlgES256 = "ES256" // ECDSA on P-256 with SHA-256
	AlgRS256 = "RS256" // RSASSA-PKCS1-v1_5 with SHA-256
)

const (
	// MinHMACKeySize is the shortest HS256 secret accepted, in bytes.
	MinHMACKeySize = 32
	// MinRSABits is the smallest RSA modulus accepted, in bits.
	MinRSABits = 2048
	// maxKIDLen bounds a key id; kids travel in every token header.
	maxKIDLen = 128
)

// Key is one signing or verification key with its key id and algorithm.
// A Key is immutable and safe for concurrent use. Create one with
// NewHMACKey, NewSigningKey, NewVerifyKey, NewEd25519Key or ParsePEM.
type Key struct {
	id     string
	alg    string
	method jwt.SigningMethod
	// signKey is what golang-jwt's Sign expects: []byte, ed25519.PrivateKey,
	// *ecdsa.PrivateKey or *rsa.PrivateKey. nil for a verify-only key.
	signKey any
	// verifyKey is what golang-jwt's Verify expects: []byte,
	// ed25519.PublicKey, *ecdsa.PublicKey or *rsa.PublicKey. It is boxed
	// once here so handing it to the parser does not allocate.
	verifyKey any
	// public is the public key; nil for HMAC keys.
	public crypto.PublicKey
}

// ID returns the key id, sent as the "kid" header of every token the key
// signs and used to select the key when verifying.
func (k *Key) ID() string { return k.id }

// Alg returns the key's JWS algorithm: "HS256", "EdDSA", "ES256" or "RS256".
// Tokens are verified with a key only if their alg header equals it.
func (k *Key) Alg() string { return k.alg }

// CanSign reports whether the key holds private (or secret) material and can
// therefore sign tokens.
func (k *Key) CanSign() bool { return k.signKey != nil }

// Symmetric reports whether the key is a shared HMAC secret. Symmetric keys
// are never published in the JWK Set.
func (k *Key) Symmetric() bool { return k.public == nil }

// NewHMACKey returns an HS256 key for secret, which must be at least
// MinHMACKeySize (32) bytes, else the error wraps ErrWeakKey. The secret is
// copied. An empty kid defaults to "hs-" followed by the hex of the first 8
// bytes of SHA-256(secret), so the same secret always gets the same kid.
func NewHMACKey(secret []byte, kid string) (*Key, error) {
	if len(secret) < MinHMACKeySize {
		return nil, fmt.Errorf("creating HS256 key: secret is shorter than %d bytes: %w", MinHMACKeySize, ErrWeakKey)
	}
	if kid == "" {
		sum := sha256.Sum256(secret)
		kid = "hs-" + hex.EncodeToString(sum[:8])
	}
	if err := checkKID(kid); err != nil {
		return nil, fmt.Errorf("creating HS256 key: %w", err)
	}
	s := make([]byte, len(secret))
	copy(s, secret)
	return &Key{
		id:        kid,
		alg:       AlgHS256,
		method:    jwt.SigningMethodHS256,
		signKey:   s,
		verifyKey: s,
	}, nil
}

// NewSigningKey returns a signing key for priv: an ed25519.PrivateKey gives
// EdDSA, an *ecdsa.PrivateKey on P-256 gives ES256 and an *rsa.PrivateKey of
// at least 2048 bits gives RS256. Other types and curves are refused with
// ErrUnsupportedKey, short RSA keys with ErrWeakKey. Opaque signers (HSM,
// KMS) are not supported. An empty kid defaults to the RFC 7638 thumbprint
// of the public key.
func NewSigningKey(priv crypto.Signer, kid string) (*Key, error) {
	var k *Key
	switch p := priv.(type) {
	case ed25519.PrivateKey:
		if len(p) != ed25519.PrivateKeySize {
			return nil, fmt.Errorf("creating EdDSA signing key: private key has the wrong length: %w", ErrUnsupportedKey)
		}
		// Rebuild from the seed: a copy the caller cannot change, and a
		// check that the public half really belongs to the seed.
		own := ed25519.NewKeyFromSeed(p.Seed())
		if subtle.ConstantTimeCompare(own[ed25519.SeedSize:], p[ed25519.SeedSize:]) != 1 {
			return nil, fmt.Errorf("creating EdDSA signing key: public half does not match the seed: %w", ErrUnsupportedKey)
		}
		pub := own.Public().(ed25519.PublicKey)
		k = &Key{alg: AlgEdDSA, method: jwt.SigningMethodEdDSA, signKey: own, verifyKey: pub, public: pub}
	case *ed25519.PrivateKey:
		if p == nil {
			return nil, fmt.Errorf("creating signing key: nil private key: %w", ErrUnsupportedKey)
		}
		return NewSigningKey(*p, kid)
	case *ecdsa.PrivateKey:
		if p == nil {
			return nil, fmt.Errorf("creating signing key: nil private key: %w", ErrUnsupportedKey)
		}
		if err := checkECDSA(&p.PublicKey); err != nil {
			return nil, fmt.Errorf("creating ES256 signing key: %w", err)
		}
		pub := &p.PublicKey
		k = &Key{alg: AlgES256, method: jwt.SigningMethodES256, signKey: p, verifyKey: pub, public: pub}
	case *rsa.PrivateKey:
		if p == nil {
			return nil, fmt.Errorf("creating signing key: nil private key: %w", ErrUnsupportedKey)
		}
		if err := checkRSA(&p.PublicKey); err != nil {
			return nil, fmt.Errorf("creating RS256 signing key: %w", err)
		}
		if err := p.Validate(); err != nil {
			return nil, fmt.Errorf("creating RS256 signing key: inconsistent private key: %w", ErrUnsupportedKey)
		}
		pub := &p.PublicKey
		k = &Key{alg: AlgRS256, method: jwt.SigningMethodRS256, signKey: p, verifyKey: pub, public: pub}
	case nil:
		return nil, fmt.Errorf("creating signing key: nil private key: %w", ErrUnsupportedKey)
	default:
		return nil, fmt.Errorf("creating signing key: private key type %T: %w", priv, ErrUnsupportedKey)
	}
	return k.withID(kid)
}

// NewVerifyKey returns a verify-only key for pub: an ed25519.PublicKey
// (EdDSA), an *ecdsa.PublicKey on P-256 (ES256) or an *rsa.PublicKey of at
// least 2048 bits (RS256). Use it to keep accepting tokens signed by a key
// whose private half is gone (rotation). An empty kid defaults to the RFC
// 7638 thumbprint.
func NewVerifyKey(pub crypto.PublicKey, kid string) (*Key, error) {
	var k *Key
	switch p := pub.(type) {
	case ed25519.PublicKey:
		if len(p) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("creating EdDSA verify key: public key has the wrong length: %w", ErrUnsupportedKey)
		}
		c := make(ed25519.PublicKey, ed25519.PublicKeySize)
		copy(c, p)
		k = &Key{alg: AlgEdDSA, method: jwt.SigningMethodEdDSA, verifyKey: c, public: c}
	case *ecdsa.PublicKey:
		if p == nil {
			return nil, fmt.Errorf("creating verify key: nil public key: %w", ErrUnsupportedKey)
		}
		if err := checkECDSA(p); err != nil {
			return nil, fmt.Errorf("creating ES256 verify key: %w", err)
		}
		k = &Key{alg: AlgES256, method: jwt.SigningMethodES256, verifyKey: p, public: p}
	case *rsa.PublicKey:
		if p == nil {
			return nil, fmt.Errorf("creating verify key: nil public key: %w", ErrUnsupportedKey)
		}
		if err := checkRSA(p); err != nil {
			return nil, fmt.Errorf("creating RS256 verify key: %w", err)
		}
		k = &Key{alg: AlgRS256, method: jwt.SigningMethodRS256, verifyKey: p, public: p}
	case nil:
		return nil, fmt.Errorf("creating verify key: nil public key: %w", ErrUnsupportedKey)
	default:
		return nil, fmt.Errorf("creating verify key: public key type %T: %w", pub, ErrUnsupportedKey)
	}
	return k.withID(kid)
}

// NewEd25519Key returns an EdDSA signing key derived from a 32-byte seed
// (RFC 8032 private key). This is how a generated default key is stored. An
// empty kid defaults to the RFC 7638 thumbprint.
func NewEd25519Key(seed []byte, kid string) (*Key, error) {
	if len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("creating EdDSA key: seed must be %d bytes: %w", ed25519.SeedSize, ErrUnsupportedKey)
	}
	return NewSigningKey(ed25519.NewKeyFromSeed(seed), kid)
}

// withID sets the key id, defaulting to the public key's thumbprint.
func (k *Key) withID(kid string) (*Key, error) {
	if kid == "" {
		tp, err := Thumbprint(k.public)
		if err != nil {
			return nil, fmt.Errorf("computing key id: %w", err)
		}
		kid = tp
	}
	if err := checkKID(kid); err != nil {
		return nil, fmt.Errorf("creating %s key: %w", k.alg, err)
	}
	k.id = kid
	return k, nil
}

// checkKID accepts 1 to 128 printable ASCII characters without spaces.
func checkKID(kid string) error {
	if kid == "" || len(kid) > maxKIDLen {
		return fmt.Errorf("key id must be 1 to %d characters", maxKIDLen)
	}
	for i := 0; i < len(kid); i++ {
		if c := kid[i]; c <= ' ' || c > '~' {
			return fmt.Errorf("key id %q must be printable ASCII without spaces", kid)
		}
	}
	return nil
}

// checkECDSA accepts only valid points on P-256.
func checkECDSA(p *ecdsa.PublicKey) error {
	if p.Curve != elliptic.P256() {
		name := "unknown"
		if p.Curve != nil && p.Curve.Params() != nil {
			name = p.Curve.Params().Name
		}
		return fmt.Errorf("curve %s is not supported, only P-256: %w", name, ErrUnsupportedKey)
	}
	if _, err := p.Bytes(); err != nil {
		return fmt.Errorf("invalid P-256 public key: %w", ErrUnsupportedKey)
	}
	return nil
}

// checkRSA accepts moduli of at least MinRSABits bits with a sane exponent.
func checkRSA(p *rsa.PublicKey) error {
	if p.N == nil || p.N.Sign() <= 0 {
		return fmt.Errorf("RSA public key has no modulus: %w", ErrUnsupportedKey)
	}
	if bits := p.N.BitLen(); bits < MinRSABits {
		return fmt.Errorf("RSA key is %d bits, need at least %d: %w", bits, MinRSABits, ErrWeakKey)
	}
	if p.E < 3 || p.E%2 == 0 {
		return fmt.Errorf("RSA public exponent is invalid: %w", ErrUnsupportedKey)
	}
	return nil
}
