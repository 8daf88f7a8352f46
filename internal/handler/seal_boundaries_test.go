package handler

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
)

// TestSealerLengths: values of any length, the empty one included, seal
// to nonce + ciphertext + tag and open again; a sealed value cut by one
// byte, or shorter than a nonce and a tag, does not open.
func TestSealerLengths(t *testing.T) {
	s, err := NewSealer("app-secret")
	if err != nil {
		t.Fatal(err)
	}
	const overhead = 12 + 16 // GCM nonce and tag
	for _, n := range []int{0, 1, 16, 100, 4096} {
		pt := bytes.Repeat([]byte{'k'}, n)
		sealed, err := s.Seal("app", "sid", pt)
		if err != nil {
			t.Fatalf("%d bytes: %v", n, err)
		}
		if len(sealed) != n+overhead {
			t.Fatalf("%d bytes sealed to %d, want %d", n, len(sealed), n+overhead)
		}
		got, err := s.Open("app", "sid", sealed)
		if err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("%d bytes: opened %d bytes, %v", n, len(got), err)
		}
		if _, err := s.Open("app", "sid", sealed[:len(sealed)-1]); !errors.Is(err, ErrUnsealable) {
			t.Fatalf("%d bytes: a truncated value: %v", n, err)
		}
		if _, err := s.Open("app2", "sid", sealed); !errors.Is(err, ErrUnsealable) {
			t.Fatalf("%d bytes: opened for another app: %v", n, err)
		}
	}
	for _, n := range []int{0, 12, overhead - 1} {
		if _, err := s.Open("app", "sid", make([]byte, n)); !errors.Is(err, ErrUnsealable) {
			t.Fatalf("%d zero bytes: %v", n, err)
		}
	}
}

// TestSealedSecretLengths: generated secrets seal to the prefix, nonce,
// ciphertext and tag, open only as the same app and name, and a value
// shorter than prefix, nonce and tag does not open.
func TestSealedSecretLengths(t *testing.T) {
	s, err := NewSealer("app-secret")
	if err != nil {
		t.Fatal(err)
	}
	const overhead = 12 + 16
	for _, n := range []int{0, 32, 64} {
		pt := bytes.Repeat([]byte{'s'}, n)
		sealed, err := s.sealSecret("app", "name", pt)
		if err != nil {
			t.Fatal(err)
		}
		if len(sealed) != len(sealedSecretPrefix)+n+overhead || !bytes.HasPrefix(sealed, sealedSecretPrefix) {
			t.Fatalf("%d bytes sealed to %d", n, len(sealed))
		}
		if got, err := s.openSecret("app", "name", sealed); err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("%d bytes: opened %d, %v", n, len(got), err)
		}
		if _, err := s.openSecret("app", "other", sealed); !errors.Is(err, ErrUnsealable) {
			t.Fatalf("opened under another name: %v", err)
		}
		if _, err := s.openSecret("app", "name", sealed[:len(sealed)-1]); !errors.Is(err, ErrUnsealable) {
			t.Fatalf("opened a truncated value: %v", err)
		}
	}
	for _, n := range []int{0, 5, 12, overhead - 1} {
		short := append(append([]byte(nil), sealedSecretPrefix...), make([]byte, n)...)
		if _, err := s.openSecret("app", "name", short); !errors.Is(err, ErrUnsealable) {
			t.Fatalf("opened the prefix and %d bytes: %v", n, err)
		}
	}
	if _, err := s.openSecret("app", "name", []byte(strings.Repeat("x", 64))); !errors.Is(err, ErrUnsealable) {
		t.Fatalf("opened an unprefixed value: %v", err)
	}
}

// TestGeneratedSecretSizeBoundary: 16 bytes is the smallest generated
// secret; 15 is refused before the store is touched.
func TestGeneratedSecretSizeBoundary(t *testing.T) {
	hs := newHarness(t)
	s := hs.h.cfg.Sealer
	ctx := context.Background()
	b, _, err := s.GeneratedSecret(ctx, hs.st, testApp, "sixteen", 16, nil)
	if err != nil || len(b) != 16 {
		t.Fatalf("16 bytes: %d bytes, %v", len(b), err)
	}
	again, _, err := s.GeneratedSecret(ctx, hs.st, testApp, "sixteen", 16, nil)
	if err != nil || !bytes.Equal(again, b) {
		t.Fatalf("second call: %v (same value: %v)", err, bytes.Equal(again, b))
	}
	if _, _, err := s.GeneratedSecret(ctx, hs.st, testApp, "fifteen", 15, nil); err == nil {
		t.Fatal("15 bytes accepted")
	}
	errCreate := errors.New("create called")
	if _, err := hs.st.Secret(ctx, testApp, "fifteen", func() ([]byte, error) { return nil, errCreate }); !errors.Is(err, errCreate) {
		t.Fatalf("a refused size reached the store: %v", err)
	}
}
