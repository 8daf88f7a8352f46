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

// Sealer encrypts WeChat session_keys before they are stored (AES-256-GCM),
// bound to the app and session they belong to, so the database file alone
// does not reveal them.
type Sealer struct {
	aead cipher.AEAD
}

// NewSealer derives the sealing key from the app secret with HMAC-SHA256.
// Rotating the app secret makes stored session_keys unreadable: their
// sessions keep working for tokens, and open-data decryption asks the user
// to log in again.
func NewSealer(appSecret string) (*Sealer, error) {
	if appSecret == "" {
		return nil, errors.New("sealer: empty app secret")
	}
	mac := hmac.New(sha256.New, []byte(appSecret))
	mac.Write([]byte("caddy-wechat-auth session_key sealing v1"))
	block, err := aes.NewCipher(mac.Sum(nil))
	if err != nil {
		return nil, fmt.Errorf("sealer: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("sealer: %w", err)
	}
	return &Sealer{aead: aead}, nil
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
