package handler

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"

	"go.uber.org/zap"

	"github.com/wxauth/caddy-wechat-auth/store"
)

// The names of the generated secrets kept in the store.
const (
	// SecretSigningKey is the seed of the generated Ed25519 signing key.
	SecretSigningKey = "signing_key_ed25519"
	// SecretRefresh is the secret rotated refresh tokens are derived from.
	SecretRefresh = "refresh_derivation_v1"
	// SecretWebState keys the sealed OAuth state cookie of browser
	// sessions (created only by a block with a web block).
	SecretWebState = "web_state_v1"
)

// GeneratedSecretSize is the size in bytes of every generated secret.
const GeneratedSecretSize = 32

// GeneratedSecretNames lists every generated secret an app may have.
var GeneratedSecretNames = []string{SecretSigningKey, SecretRefresh, SecretWebState}

// ErrSecretMismatch is returned when a stored generated secret is sealed
// with a different app secret (or is damaged): the instance must not
// replace it, which would re-key every other instance sharing the store.
var ErrSecretMismatch = errors.New("it was sealed with a different app_secret, or is damaged")

// SecretStore is the part of store.Store that GeneratedSecret uses.
type SecretStore interface {
	Secret(ctx context.Context, app, name string, create func() ([]byte, error)) ([]byte, error)
	ReplaceSecret(ctx context.Context, app, name string, old, next []byte) ([]byte, error)
}

// sealedSecretPrefix starts every sealed generated secret, so a value that
// an earlier version stored in clear is told apart from one sealed under
// another app secret.
var sealedSecretPrefix = []byte("wxauth-sealed-v1:")

// replaceAttempts bounds how often GeneratedSecret replaces a stored value
// that it cannot use, in case other instances keep replacing it too.
const replaceAttempts = 3

// GeneratedSecret returns the app's generated secret called name: size
// random bytes, created on first use and kept in st sealed with the app
// secret (AES-256-GCM; the app and name are bound in as associated data,
// so a sealed value cannot be moved to another app or name). Every process
// sharing st with the same app secret gets the same value. It also returns
// the sealed value as stored, which OpenGeneratedSecret opens again
// without the store.
//
// A stored value sealed with a different app secret (or damaged) is an
// ErrSecretMismatch, naming the app and the secret but never a value:
// replacing it would re-key every instance that shares the store with the
// other app secret. Changing the app secret is RotateSecret's work.
//
// A value an earlier version stored in clear, or a sealed value of the
// wrong size, is never used: one warning is logged, without the value, and
// it is replaced by a fresh sealed value with a compare-and-swap, so
// concurrent instances converge on one new value.
func (s *Sealer) GeneratedSecret(ctx context.Context, st SecretStore, app, name string, size int, log *zap.Logger) (plain, sealed []byte, err error) {
	if size < 16 {
		return nil, nil, fmt.Errorf("generated secret %q: size %d is below 16 bytes", name, size)
	}
	if log == nil {
		log = zap.NewNop()
	}
	fresh := s.freshSecret(app, name, size)
	stored, err := st.Secret(ctx, app, name, fresh)
	if err != nil {
		return nil, nil, fmt.Errorf("loading secret %q: %w", name, err)
	}
	for attempt := 0; ; attempt++ {
		pt, err := s.openSecret(app, name, stored)
		if err == nil && len(pt) == size {
			return pt, stored, nil
		}
		if err != nil && bytes.HasPrefix(stored, sealedSecretPrefix) {
			return nil, nil, mismatch(app, name)
		}
		if attempt == replaceAttempts {
			return nil, nil, fmt.Errorf("secret %q: the stored value was replaced %d times by values of the wrong size; do instances of different versions share the database?", name, replaceAttempts)
		}
		if attempt == 0 {
			log.Warn("wechat_auth: a stored generated secret cannot be used; replacing it with a new one (tokens that depended on it stop working; users log in again)",
				zap.String("app_id", app), zap.String("secret", name), zap.String("reason", unusableReason(stored)))
		}
		next, err := fresh()
		if err != nil {
			return nil, nil, fmt.Errorf("replacing secret %q: %w", name, err)
		}
		stored, err = st.ReplaceSecret(ctx, app, name, stored, next)
		if errors.Is(err, store.ErrNotFound) {
			// Deleted meanwhile: store a new one, or take the one
			// another caller stored first.
			stored, err = st.Secret(ctx, app, name, fresh)
		}
		if err != nil {
			return nil, nil, fmt.Errorf("replacing secret %q: %w", name, err)
		}
	}
}

// OpenGeneratedSecret opens sealed, a value GeneratedSecret returned for
// the app's secret called name, with no store access: ErrSecretMismatch
// when it was sealed with another app secret or has the wrong size.
func (s *Sealer) OpenGeneratedSecret(app, name string, sealed []byte, size int) ([]byte, error) {
	pt, err := s.openSecret(app, name, sealed)
	if err != nil || len(pt) != size {
		return nil, mismatch(app, name)
	}
	return pt, nil
}

// mismatch is the ErrSecretMismatch of the app's secret called name.
func mismatch(app, name string) error {
	return fmt.Errorf("app %s: the stored secret %q cannot be opened with this app_secret: %w. Every instance sharing the database must use the same app_secret; to change it, run 'caddy wechat-auth rotate-secret'", app, name, ErrSecretMismatch)
}

// freshSecret returns a function making a new sealed random value.
func (s *Sealer) freshSecret(app, name string, size int) func() ([]byte, error) {
	return func() ([]byte, error) {
		b := make([]byte, size)
		if _, err := rand.Read(b); err != nil {
			return nil, fmt.Errorf("generating secret: %w", err)
		}
		return s.sealSecret(app, name, b)
	}
}

// unusableReason says, for the log, why a stored secret that is not sealed
// with another app secret could not be used; it never includes the value.
func unusableReason(stored []byte) string {
	if !bytes.HasPrefix(stored, sealedSecretPrefix) {
		return "stored in clear by an earlier version"
	}
	return "sealed value of the wrong size"
}

func secretAD(app, name string) []byte { return []byte(app + "\x00" + name) }

// sealSecret seals plaintext as the secret name of app.
func (s *Sealer) sealSecret(app, name string, plaintext []byte) ([]byte, error) {
	ns := s.secrets.NonceSize()
	out := make([]byte, len(sealedSecretPrefix)+ns, len(sealedSecretPrefix)+ns+len(plaintext)+s.secrets.Overhead())
	copy(out, sealedSecretPrefix)
	nonce := out[len(sealedSecretPrefix):]
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("sealing: %w", err)
	}
	return s.secrets.Seal(out, nonce, plaintext, secretAD(app, name)), nil
}

// openSecret opens a value sealed as the secret name of app.
func (s *Sealer) openSecret(app, name string, sealed []byte) ([]byte, error) {
	rest, ok := bytes.CutPrefix(sealed, sealedSecretPrefix)
	ns := s.secrets.NonceSize()
	if !ok || len(rest) < ns+s.secrets.Overhead() {
		return nil, ErrUnsealable
	}
	pt, err := s.secrets.Open(nil, rest[:ns], rest[ns:], secretAD(app, name))
	if err != nil {
		return nil, ErrUnsealable
	}
	return pt, nil
}
