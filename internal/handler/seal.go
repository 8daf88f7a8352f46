package handler

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
)

// Sealer encrypts what must not sit in the database in clear
// (AES-256-GCM): WeChat session_keys, bound to the app and session they
// belong to, and the generated secrets (see GeneratedSecret), bound to the
// app and secret name. The database file alone reveals neither.
type Sealer struct {
	aead    cipher.AEAD // session_keys
	secrets cipher.AEAD // generated secrets, under a key of their own
}

// NewSealer derives the sealing keys from the app secret with HMAC-SHA256.
// Rotating the app secret makes stored session_keys unreadable: their
// sessions keep working for tokens, and open-data decryption asks the user
// to log in again. Generated secrets sealed with another app secret are
// refused, never replaced (GeneratedSecret); RotateSecret reseals them.
func NewSealer(appSecret string) (*Sealer, error) {
	if appSecret == "" {
		return nil, errors.New("sealer: empty app secret")
	}
	aead, err := deriveAEAD(appSecret, "caddy-wechat-auth session_key sealing v1")
	if err != nil {
		return nil, err
	}
	secrets, err := deriveAEAD(appSecret, "caddy-wechat-auth generated secret sealing v1")
	if err != nil {
		return nil, err
	}
	return &Sealer{aead: aead, secrets: secrets}, nil
}

// deriveAEAD is AES-256-GCM under HMAC-SHA256(appSecret, label).
func deriveAEAD(appSecret, label string) (cipher.AEAD, error) {
	mac := hmac.New(sha256.New, []byte(appSecret))
	mac.Write([]byte(label))
	block, err := aes.NewCipher(mac.Sum(nil))
	if err != nil {
		return nil, fmt.Errorf("sealer: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("sealer: %w", err)
	}
	return aead, nil
}

// ErrUnsealable is returned when a sealed value cannot be opened (tampered,
// or sealed under another app secret).
var ErrUnsealable = errors.New("sealed value cannot be opened")

func sealAD(app, sid string) []byte { return []byte(app + "\x00" + sid) }

// Seal encrypts plaintext for session sid of app.
func (s *Sealer) Seal(app, sid string, plaintext []byte) ([]byte, error) {
	nonce := make([]byte, s.aead.NonceSize(), s.aead.NonceSize()+len(plaintext)+s.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("sealing: %w", err)
	}
	return s.aead.Seal(nonce, nonce, plaintext, sealAD(app, sid)), nil
}

// Open decrypts a value sealed for session sid of app.
func (s *Sealer) Open(app, sid string, sealed []byte) ([]byte, error) {
	ns := s.aead.NonceSize()
	if len(sealed) < ns+s.aead.Overhead() {
		return nil, ErrUnsealable
	}
	pt, err := s.aead.Open(nil, sealed[:ns], sealed[ns:], sealAD(app, sid))
	if err != nil {
		return nil, ErrUnsealable
	}
	return pt, nil
}
