package websession

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// MaxStateAge is the longest a state cookie lives: the time a user has to
// finish WeChat's authorization page.
const MaxStateAge = 10 * time.Minute

// maxSealedState bounds a state cookie value before it is decoded.
const maxSealedState = 4096

// Errors of Open. Both mean the login must start again; neither says why
// to the browser.
var (
	// ErrBadState: the value is not a state this server sealed (forged,
	// truncated, sealed under another key, or not base64).
	ErrBadState = errors.New("websession: state cookie does not verify")
	// ErrStateExpired: the state was sealed by this server but its time
	// is up.
	ErrStateExpired = errors.New("websession: state cookie expired")
)

// stateAAD binds a sealed value to its purpose: a ciphertext of another
// use of the key (there is none today) cannot pass for a state.
var stateAAD = []byte("wechat_auth web state v1")

// State is what the state cookie holds.
type State struct {
	// Nonce is the random value also sent to WeChat as the state
	// parameter; the callback's state must equal it.
	Nonce string `json:"n"`
	// Next is the same-origin path to return to (already sanitised).
	Next string `json:"x"`
	// App is the AppID of the OAuth app the login went to.
	App string `json:"a"`
	// Expires is when the state stops being accepted.
	Expires time.Time `json:"e"`
}

// StateSealer seals and opens state cookies. It is safe for concurrent
// use.
type StateSealer struct {
	aead cipher.AEAD
}

// NewStateSealer derives the state key from secret (at least 32 bytes),
// so the secret itself is never used as a cipher key for two purposes.
func NewStateSealer(secret []byte) (*StateSealer, error) {
	if len(secret) < 32 {
		return nil, fmt.Errorf("state key: secret of %d bytes, want at least 32", len(secret))
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte("wechat_auth state cookie key v1"))
	block, err := aes.NewCipher(mac.Sum(nil))
	if err != nil {
		return nil, fmt.Errorf("state key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("state key: %w", err)
	}
	return &StateSealer{aead: aead}, nil
}

// Seal encrypts and authenticates st for a cookie value (base64url).
func (s *StateSealer) Seal(st State) (string, error) {
	plain, err := json.Marshal(st)
	if err != nil {
		return "", fmt.Errorf("sealing state: %w", err)
	}
	nonce := make([]byte, s.aead.NonceSize(), s.aead.NonceSize()+len(plain)+s.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("sealing state: %w", err)
	}
	out := s.aead.Seal(nonce, nonce, plain, stateAAD)
	return base64.RawURLEncoding.EncodeToString(out), nil
}

// Open verifies and decrypts a cookie value sealed by Seal, and checks
// that it has not expired at now and does not claim to live longer than
// MaxStateAge from now.
func (s *StateSealer) Open(v string, now time.Time) (State, error) {
	if v == "" || len(v) > maxSealedState {
		return State{}, ErrBadState
	}
	raw, err := base64.RawURLEncoding.DecodeString(v)
	if err != nil || len(raw) < s.aead.NonceSize()+s.aead.Overhead() {
		return State{}, ErrBadState
	}
	ns := s.aead.NonceSize()
	plain, err := s.aead.Open(nil, raw[:ns], raw[ns:], stateAAD)
	if err != nil {
		return State{}, ErrBadState
	}
	var st State
	if err := json.Unmarshal(plain, &st); err != nil || st.Nonce == "" || st.Expires.IsZero() {
		return State{}, ErrBadState
	}
	if !now.Before(st.Expires) {
		return State{}, ErrStateExpired
	}
	if st.Expires.Sub(now) > MaxStateAge+time.Minute {
		// Sealed by this key but with a lifetime it never gives.
		return State{}, ErrBadState
	}
	return st, nil
}

// NewNonce returns a random state nonce: 256 bits as 64 lower-case hex
// digits. WeChat documents the state parameter as at most 128 bytes of
// [a-zA-Z0-9], which base64url's '-' and '_' would break.
func NewNonce() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("reading random bytes: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// StateMatches reports whether the state parameter WeChat sent back equals
// the nonce of the state cookie, in constant time. An empty value never
// matches.
func StateMatches(cookieNonce, param string) bool {
	if cookieNonce == "" || param == "" {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(cookieNonce), []byte(param)) == 1
}

// randomString is n random bytes, base64url without padding.
func randomString(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("reading random bytes: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}
