package token

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
)

// jwk is one public key in a JWK Set (RFC 7517), with the members RFC 7518
// and RFC 8037 define for the key types this package supports. It never has
// private members such as "d".
type jwk struct {
	Kty string `json:"kty"`
	Use string `json:"use"`
	Alg string `json:"alg"`
	Kid string `json:"kid"`
	Crv string `json:"crv,omitempty"`
	X   string `json:"x,omitempty"`
	Y   string `json:"y,omitempty"`
	N   string `json:"n,omitempty"`
	E   string `json:"e,omitempty"`
}

// jwkSet is a JWK Set document.
type jwkSet struct {
	Keys []jwk `json:"keys"`
}

// publicJWK fills the key-type members (kty, crv, x, y, n, e) of pub. A
// crypto.Signer is accepted and reduced to its public key.
func publicJWK(pub crypto.PublicKey) (jwk, error) {
	if s, ok := pub.(crypto.Signer); ok {
		pub = s.Public()
	}
	enc := base64.RawURLEncoding
	switch p := pub.(type) {
	case ed25519.PublicKey:
		if len(p) != ed25519.PublicKeySize {
			return jwk{}, fmt.Errorf("ed25519 public key has the wrong length: %w", ErrUnsupportedKey)
		}
		return jwk{Kty: "OKP", Crv: "Ed25519", X: enc.EncodeToString(p)}, nil
	case *ecdsa.PublicKey:
		if p == nil {
			return jwk{}, fmt.Errorf("nil ECDSA public key: %w", ErrUnsupportedKey)
		}
		if err := checkECDSA(p); err != nil {
			return jwk{}, err
		}
		b, err := p.Bytes() // 0x04 || X || Y, each 32 bytes on P-256
		if err != nil || len(b) != 65 {
			return jwk{}, fmt.Errorf("encoding P-256 public key: %w", ErrUnsupportedKey)
		}
		return jwk{Kty: "EC", Crv: "P-256", X: enc.EncodeToString(b[1:33]), Y: enc.EncodeToString(b[33:])}, nil
	case *rsa.PublicKey:
		if p == nil || p.N == nil || p.E <= 0 {
			return jwk{}, fmt.Errorf("incomplete RSA public key: %w", ErrUnsupportedKey)
		}
		e := big.NewInt(int64(p.E)).Bytes()
		return jwk{Kty: "RSA", N: enc.EncodeToString(p.N.Bytes()), E: enc.EncodeToString(e)}, nil
	case nil:
		return jwk{}, fmt.Errorf("nil public key: %w", ErrUnsupportedKey)
	default:
		return jwk{}, fmt.Errorf("public key type %T: %w", pub, ErrUnsupportedKey)
	}
}

// Thumbprint returns the RFC 7638 JWK thumbprint of pub: the base64url
// (unpadded) SHA-256 of the key's required JWK members in lexicographic
// order, without whitespace. pub may be an ed25519.PublicKey, an
// *ecdsa.PublicKey on P-256 or an *rsa.PublicKey (or a private key of those
// types). It is the default key id of asymmetric keys.
func Thumbprint(pub crypto.PublicKey) (string, error) {
	j, err := publicJWK(pub)
	if err != nil {
		return "", fmt.Errorf("computing JWK thumbprint: %w", err)
	}
	// The member values are base64url or fixed names, so they need no JSON
	// escaping and can be written directly.
	var canon string
	switch j.Kty {
	case "OKP":
		canon = `{"crv":"` + j.Crv + `","kty":"OKP","x":"` + j.X + `"}`
	case "EC":
		canon = `{"crv":"` + j.Crv + `","kty":"EC","x":"` + j.X + `","y":"` + j.Y + `"}`
	case "RSA":
		canon = `{"e":"` + j.E + `","kty":"RSA","n":"` + j.N + `"}`
	}
	sum := sha256.Sum256([]byte(canon))
	return base64.RawURLEncoding.EncodeToString(sum[:]), nil
}

// buildJWKS returns the JWK Set JSON of the asymmetric keys, in configured
// order, or nil when every key is symmetric.
func buildJWKS(keys []*Key) ([]byte, error) {
	var set jwkSet
	for _, k := range keys {
		if k.Symmetric() {
			continue
		}
		j, err := publicJWK(k.public)
		if err != nil {
			return nil, fmt.Errorf("building JWK for key %q: %w", k.id, err)
		}
		j.Use = "sig"
		j.Alg = k.alg
		j.Kid = k.id
		set.Keys = append(set.Keys, j)
	}
	if len(set.Keys) == 0 {
		return nil, nil
	}
	b, err := json.Marshal(set)
	if err != nil {
		return nil, fmt.Errorf("encoding JWK Set: %w", err)
	}
	return b, nil
}
