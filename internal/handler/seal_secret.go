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
// that it cannot open, in case other instances keep replacing it too.
const replaceAttempts = 3

// GeneratedSecret returns the app's generated secret called name: size
// random bytes, created on first use and kept in st sealed with the app
// secret (AES-256-GCM; the app and name are bound in as associated data,
// so a sealed value cannot be moved to another app or name). Every process
// sharing st with the same app secret gets the same value.
//
// A stored value that cannot be unsealed (the app secret changed, or an
// earlier version stored it in clear) is never used: one warning is
// logged, without the value, and it is replaced by a fresh sealed value
// with a compare-and-swap, so concurrent instances converge on one new
// value. Whatever depended on the old value stops working (tokens signed
// with an old key are refused; users log in again). If the value keeps
// turning out unopenable — other instances with another app secret keep
// replacing it — an error says so.
func (s *Sealer) GeneratedSecret(ctx context.Context, st SecretStore, app, name string, size int, log *zap.Logger) ([]byte, error) {
	if size < 16 {
		return nil, fmt.Errorf("generated secret %q: size %d is below 16 bytes", name, size)
	}
	if log == nil {
		log = zap.NewNop()
	}
	fresh := func() ([]byte, error) {
		b := make([]byte, size)
		if _, err := rand.Read(b); err != nil {
			return nil, fmt.Errorf("generating secret: %w", err)
		}
		return s.sealSecret(app, name, b)
	}
	stored, err := st.Secret(ctx, app, name, fresh)
	if err != nil {
		return nil, fmt.Errorf("loading secret %q: %w", name, err)
	}
	for attempt := 0; ; attempt++ {
		pt, err := s.openSecret(app, name, stored)
		if err == nil && len(pt) == size {
			return pt, nil
		}
		if attempt == replaceAttempts {
			return nil, fmt.Errorf("secret %q: the stored value was replaced %d times by values this app_secret cannot open; do several instances share the database with different app_secrets?", name, replaceAttempts)
		}
		if attempt == 0 {
			log.Warn("wechat_auth: a stored generated secret cannot be unsealed with this app_secret; replacing it with a new one (tokens that depended on it stop working; users log in again)",
				zap.String("app_id", app), zap.String("secret", name), zap.String("reason", unsealableReason(stored, err)))
		}
		next, err := fresh()
		if err != nil {
			return nil, fmt.Errorf("replacing secret %q: %w", name, err)
		}
		stored, err = st.ReplaceSecret(ctx, app, name, stored, next)
		if errors.Is(err, store.ErrNotFound) {
			// Deleted meanwhile: store a new one, or take the one
			// another caller stored first.
			stored, err = st.Secret(ctx, app, name, fresh)
		}
		if err != nil {
			return nil, fmt.Errorf("replacing secret %q: %w", name, err)
		}
	}
}

// unsealableReason says, for the log, why a stored secret could not be
// used; it never includes the value.
func unsealableReason(stored []byte, err error) string {
	switch {
	case !bytes.HasPrefix(stored, sealedSecretPrefix):
		return "stored in clear by an earlier version"
	case err != nil:
		return "sealed under another app_secret, or damaged"
	default:
		return "sealed value of the wrong size"
	}
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
