package token

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"testing"
)

func TestNewRefreshToken(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		tok, err := NewRefreshToken()
		if err != nil {
			t.Fatal(err)
		}
		b, err := base64.RawURLEncoding.DecodeString(tok)
		if err != nil || len(b) != 32 || len(tok) != 43 {
			t.Fatalf("refresh token %d chars, decodes to %d bytes (%v)", len(tok), len(b), err)
		}
		if seen[tok] {
			t.Fatal("refresh token repeated")
		}
		seen[tok] = true
	}
}

func TestHashRefreshToken(t *testing.T) {
	tests := []string{"", "abc", "a-refresh-token"}
	for _, tok := range tests {
		if got, want := HashRefreshToken(tok), sha256.Sum256([]byte(tok)); got != want {
			t.Errorf("HashRefreshToken(%q) = %x, want %x", tok, got, want)
		}
	}
	if HashRefreshToken("a") == HashRefreshToken("b") {
		t.Error("distinct tokens hash equal")
	}
}

func TestDeriveRefreshToken(t *testing.T) {
	secretA := []byte("0123456789abcdef0123456789abcdef")
	secretB := []byte("fedcba9876543210fedcba9876543210")
	manual := func(secret []byte, parent string) string {
		m := hmac.New(sha256.New, secret)
		m.Write([]byte("caddy-wechat-auth refresh v1\x00" + parent))
		return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
	}
	tests := []struct {
		secret []byte
		parent string
	}{
		{secretA, "parent-1"},
		{secretA, "parent-2"},
		{secretB, "parent-1"},
		{secretA, ""},
	}
	seen := map[string]bool{}
	for _, tt := range tests {
		got := DeriveRefreshToken(tt.secret, tt.parent)
		if again := DeriveRefreshToken(tt.secret, tt.parent); again != got {
			t.Errorf("not deterministic: %q then %q", got, again)
		}
		if want := manual(tt.secret, tt.parent); got != want {
			t.Errorf("DeriveRefreshToken(%q) = %q, want %q", tt.parent, got, want)
		}
		if len(got) != 43 {
			t.Errorf("child is %d chars, want 43", len(got))
		}
		if got == tt.parent || seen[got] {
			t.Errorf("child %q not distinct", got)
		}
		seen[got] = true
	}
}

func TestNewID(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		id, err := NewID()
		if err != nil {
			t.Fatal(err)
		}
		b, err := base64.RawURLEncoding.DecodeString(id)
		if err != nil || len(b) != 16 || len(id) != 22 {
			t.Fatalf("id %q: %d bytes (%v)", id, len(b), err)
		}
		if seen[id] {
			t.Fatal("id repeated")
		}
		seen[id] = true
	}
}
