package token

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
)

// refreshDeriveLabel separates refresh-token derivation from any other use
// of the secret.
const refreshDeriveLabel = "caddy-wechat-auth refresh v1\x00"

// NewRefreshToken returns a new opaque refresh token: 32 bytes (256 bits)
// from crypto/rand, base64url without padding (43 characters). Store only
// HashRefreshToken of it.
func NewRefreshToken() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("generating refresh token: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// HashRefreshToken returns SHA-256(tok), the form in which a refresh token is
// stored and looked up. A plain hash suffices: the token has 256 random bits.
func HashRefreshToken(tok string) [32]byte {
	return sha256.Sum256([]byte(tok))
}

// DeriveRefreshToken returns the child refresh token of a rotation:
// base64url(HMAC-SHA256(secret, "caddy-wechat-auth refresh v1\x00" + parent)).
// Deriving the child from its parent lets a retried rotation return the same
// child without the plaintext child ever being stored; only someone holding
// both secret and parent can compute it. secret should be at least 32 random
// bytes kept server-side.
func DeriveRefreshToken(secret []byte, parent string) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(refreshDeriveLabel))
	m.Write([]byte(parent))
	var sum [sha256.Size]byte
	return base64.RawURLEncoding.EncodeToString(m.Sum(sum[:0]))
}

// NewID returns 16 random bytes (128 bits) from crypto/rand, base64url
// without padding (22 characters), for token ids (jti) and session ids
// (sid).
func NewID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("generating id: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}
