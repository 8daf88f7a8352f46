package token

import (
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"fmt"
)

// ParsePEM returns the key in the first PEM block of data:
//
//   - "PRIVATE KEY" (PKCS#8: Ed25519, P-256 or RSA), "EC PRIVATE KEY" (SEC 1)
//     and "RSA PRIVATE KEY" (PKCS#1) give a signing key;
//   - "PUBLIC KEY" (PKIX) gives a verify-only key.
//
// Encrypted PEM, other block types, curves and key types are refused with an
// error wrapping ErrUnsupportedKey (or ErrWeakKey for short RSA keys). Errors
// name the block type and what is wrong; they never contain key material.
// Anything after the first block is ignored. An empty kid defaults to the
// RFC 7638 thumbprint of the public key.
func ParsePEM(data []byte, kid string) (*Key, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("parsing PEM key: no PEM block found: %w", ErrUnsupportedKey)
	}
	typ := block.Type
	if len(typ) > 40 {
		typ = typ[:40] + "..."
	}
	if _, ok := block.Headers["Proc-Type"]; ok || typ == "ENCRYPTED PRIVATE KEY" {
		return nil, fmt.Errorf("parsing PEM block %q: encrypted keys are not supported: %w", typ, ErrUnsupportedKey)
	}
	var (
		priv any
		err  error
	)
	switch typ {
	case "PRIVATE KEY":
		priv, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parsing PEM block %q as PKCS#8: %v: %w", typ, err, ErrUnsupportedKey)
		}
	case "EC PRIVATE KEY":
		priv, err = x509.ParseECPrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parsing PEM block %q as SEC 1: %v: %w", typ, err, ErrUnsupportedKey)
		}
	case "RSA PRIVATE KEY":
		priv, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parsing PEM block %q as PKCS#1: %v: %w", typ, err, ErrUnsupportedKey)
		}
	case "PUBLIC KEY":
		pub, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parsing PEM block %q as PKIX: %v: %w", typ, err, ErrUnsupportedKey)
		}
		k, err := NewVerifyKey(pub, kid)
		if err != nil {
			return nil, fmt.Errorf("parsing PEM block %q: %w", typ, err)
		}
		return k, nil
	default:
		return nil, fmt.Errorf("parsing PEM key: block type %q is not supported (want PRIVATE KEY, EC PRIVATE KEY, RSA PRIVATE KEY or PUBLIC KEY): %w", typ, ErrUnsupportedKey)
	}
	signer, ok := priv.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("parsing PEM block %q: private key type %T cannot sign: %w", typ, priv, ErrUnsupportedKey)
	}
	k, err := NewSigningKey(signer, kid)
	if err != nil {
		return nil, fmt.Errorf("parsing PEM block %q: %w", typ, err)
	}
	return k, nil
}
