package handler

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
)

// TestRotateSecret moves a generated secret from app secret A to B: with
// A given the value is kept (the fleet's tokens stay valid), without it a
// fresh value replaces it; anything else writes nothing.
func TestRotateSecret(t *testing.T) {
	ctx := context.Background()
	a, b := mustSealer(t, "secret-A"), mustSealer(t, "secret-B")
	setup := func(t *testing.T) (*memSecrets, []byte, []byte) {
		t.Helper()
		st := newMemSecrets()
		v, sealed, err := a.GeneratedSecret(ctx, st, "app1", SecretSigningKey, 32, nil)
		if err != nil {
			t.Fatal(err)
		}
		return st, v, sealed
	}

	t.Run("reseal keeps the value", func(t *testing.T) {
		st, v, sealedA := setup(t)
		res, err := b.RotateSecret(ctx, st, "app1", SecretSigningKey, 32, a)
		if err != nil || res != RotateResealed {
			t.Fatalf("RotateSecret = %q, %v; want resealed", res, err)
		}
		got, _, err := b.GeneratedSecret(ctx, st, "app1", SecretSigningKey, 32, nil)
		if err != nil || !bytes.Equal(got, v) {
			t.Fatalf("with the new app secret: %x %v, want the old value %x", got, err, v)
		}
		// An instance still running with A keeps its copy, which is the
		// same value; one that starts again with A is refused.
		if old, err := a.OpenGeneratedSecret("app1", SecretSigningKey, sealedA, 32); err != nil || !bytes.Equal(old, v) {
			t.Fatalf("old copy: %x %v", old, err)
		}
		if _, _, err := a.GeneratedSecret(ctx, st, "app1", SecretSigningKey, 32, nil); !errors.Is(err, ErrSecretMismatch) {
			t.Fatalf("start with the old app secret after the rotation: %v, want ErrSecretMismatch", err)
		}
		// Running it again does nothing.
		if res, err := b.RotateSecret(ctx, st, "app1", SecretSigningKey, 32, a); err != nil || res != RotateCurrent {
			t.Fatalf("second rotation = %q, %v; want already current", res, err)
		}
		if st.swaps.Load() != 1 {
			t.Fatalf("%d writes, want 1", st.swaps.Load())
		}
	})

	t.Run("replace without the old app secret", func(t *testing.T) {
		st, v, _ := setup(t)
		res, err := b.RotateSecret(ctx, st, "app1", SecretSigningKey, 32, nil)
		if err != nil || res != RotateReplaced {
			t.Fatalf("RotateSecret = %q, %v; want replaced", res, err)
		}
		got, _, err := b.GeneratedSecret(ctx, st, "app1", SecretSigningKey, 32, nil)
		if err != nil || len(got) != 32 || bytes.Equal(got, v) {
			t.Fatalf("after replacing: %x %v (old %x)", got, err, v)
		}
	})

	t.Run("wrong old app secret writes nothing", func(t *testing.T) {
		st, _, sealed := setup(t)
		_, err := b.RotateSecret(ctx, st, "app1", SecretSigningKey, 32, mustSealer(t, "secret-C"))
		if !errors.Is(err, ErrSecretMismatch) || !strings.Contains(err.Error(), "app1") {
			t.Fatalf("err = %v, want ErrSecretMismatch naming the app", err)
		}
		if strings.Contains(err.Error(), "secret-") {
			t.Fatalf("error leaks a secret: %v", err)
		}
		if st.swaps.Load() != 0 || !bytes.Equal(st.raw("app1", SecretSigningKey), sealed) {
			t.Fatal("the stored value changed")
		}
	})

	t.Run("absent is not created", func(t *testing.T) {
		st := newMemSecrets()
		res, err := b.RotateSecret(ctx, st, "app1", SecretRefresh, 32, a)
		if err != nil || res != RotateAbsent {
			t.Fatalf("RotateSecret = %q, %v; want absent", res, err)
		}
		if st.raw("app1", SecretRefresh) != nil {
			t.Fatal("rotation created a secret")
		}
	})

	t.Run("changed meanwhile", func(t *testing.T) {
		st, _, _ := setup(t)
		st.onReplace = func() {
			v, _ := a.sealSecret("app1", SecretSigningKey, bytes.Repeat([]byte{9}, 32))
			st.set("app1", SecretSigningKey, v)
		}
		_, err := b.RotateSecret(ctx, st, "app1", SecretSigningKey, 32, a)
		if err == nil || !strings.Contains(err.Error(), "run the rotation again") {
			t.Fatalf("err = %v", err)
		}
	})

	t.Run("store error", func(t *testing.T) {
		st, _, _ := setup(t)
		st.err = errors.New("disk on fire")
		if _, err := b.RotateSecret(ctx, st, "app1", SecretSigningKey, 32, a); err == nil || !strings.Contains(err.Error(), "disk on fire") {
			t.Fatalf("err = %v", err)
		}
	})
}
