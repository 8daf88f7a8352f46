package handler

import (
	"bytes"
	"context"
	"errors"
	"fmt"
)

// RotateResult says what RotateSecret did with one generated secret.
type RotateResult string

// RotateSecret's outcomes.
const (
	// RotateAbsent: the app has no such secret stored; nothing to do.
	RotateAbsent RotateResult = "absent"
	// RotateCurrent: already sealed with the new app secret; nothing done.
	RotateCurrent RotateResult = "already current"
	// RotateResealed: the same value, now sealed with the new app secret.
	RotateResealed RotateResult = "resealed"
	// RotateReplaced: a fresh value, sealed with the new app secret.
	RotateReplaced RotateResult = "replaced"
)

// errAbsent stops Secret from creating a secret that RotateSecret only
// reads.
var errAbsent = errors.New("no such secret")

// RotateSecret moves the app's stored generated secret called name to s,
// the sealer of the new app secret, with one compare-and-swap.
//
// With from, the sealer of the app secret the value is sealed with now,
// the value is kept and only resealed: tokens signed with the generated
// key and refresh tokens stay valid, on instances already running with
// the new app secret and on those still running with the old one. With
// from nil (the old app secret is lost) the value is replaced by a fresh
// one: access tokens signed with the old generated key stop verifying and
// every instance must be restarted.
//
// A value sealed with neither s nor from is ErrSecretMismatch and nothing
// is written; so is one that changed in the store meanwhile (run it again).
func (s *Sealer) RotateSecret(ctx context.Context, st SecretStore, app, name string, size int, from *Sealer) (RotateResult, error) {
	stored, err := st.Secret(ctx, app, name, func() ([]byte, error) { return nil, errAbsent })
	if errors.Is(err, errAbsent) {
		return RotateAbsent, nil
	}
	if err != nil {
		return "", fmt.Errorf("reading secret %q: %w", name, err)
	}
	if pt, err := s.openSecret(app, name, stored); err == nil && len(pt) == size {
		return RotateCurrent, nil
	}
	result := RotateReplaced
	var next []byte
	if from != nil {
		pt, err := from.openSecret(app, name, stored)
		if err != nil || len(pt) != size {
			return "", fmt.Errorf("app %s: the stored secret %q cannot be opened with the old app_secret given either: %w", app, name, ErrSecretMismatch)
		}
		if next, err = s.sealSecret(app, name, pt); err != nil {
			return "", fmt.Errorf("resealing secret %q: %w", name, err)
		}
		result = RotateResealed
	} else if next, err = s.freshSecret(app, name, size)(); err != nil {
		return "", fmt.Errorf("replacing secret %q: %w", name, err)
	}
	got, err := st.ReplaceSecret(ctx, app, name, stored, next)
	if err != nil {
		return "", fmt.Errorf("storing secret %q: %w", name, err)
	}
	if !bytes.Equal(got, next) {
		return "", fmt.Errorf("secret %q changed in the store while it was rotated; nothing was written: run the rotation again", name)
	}
	return result, nil
}
