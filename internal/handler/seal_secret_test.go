package handler

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/wxauth/caddy-wechat-auth/store"
)

// memSecrets is an in-memory SecretStore with the store's semantics:
// Secret keeps the first value stored, ReplaceSecret compares and swaps.
type memSecrets struct {
	mu    sync.Mutex
	m     map[string][]byte
	swaps atomic.Int32 // successful replacements
	err   error        // returned by every call when set
	// onReplace, when set, runs before each ReplaceSecret (under no lock).
	onReplace func()
}

func newMemSecrets() *memSecrets { return &memSecrets{m: map[string][]byte{}} }

func (s *memSecrets) Secret(_ context.Context, app, name string, create func() ([]byte, error)) ([]byte, error) {
	if s.err != nil {
		return nil, s.err
	}
	s.mu.Lock()
	v, ok := s.m[app+"/"+name]
	s.mu.Unlock()
	if ok {
		return bytes.Clone(v), nil
	}
	fresh, err := create()
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if v, ok := s.m[app+"/"+name]; ok {
		return bytes.Clone(v), nil
	}
	s.m[app+"/"+name] = bytes.Clone(fresh)
	return fresh, nil
}

func (s *memSecrets) ReplaceSecret(_ context.Context, app, name string, old, next []byte) ([]byte, error) {
	if s.onReplace != nil {
		s.onReplace()
	}
	if s.err != nil {
		return nil, s.err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.m[app+"/"+name]
	if !ok {
		return nil, store.ErrNotFound
	}
	if !bytes.Equal(cur, old) {
		return bytes.Clone(cur), nil
	}
	s.m[app+"/"+name] = bytes.Clone(next)
	s.swaps.Add(1)
	return next, nil
}

func (s *memSecrets) raw(app, name string) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.m[app+"/"+name])
}

func (s *memSecrets) set(app, name string, v []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[app+"/"+name] = bytes.Clone(v)
}

func mustSealer(t *testing.T, appSecret string) *Sealer {
	t.Helper()
	s, err := NewSealer(appSecret)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// observed is a logger that records warnings and above.
func observed() (*zap.Logger, *observer.ObservedLogs) {
	core, logs := observer.New(zapcore.WarnLevel)
	return zap.New(core), logs
}

// leaks reports whether text holds secret in any usual encoding.
func leaks(text string, secret []byte) bool {
	return strings.Contains(text, string(secret)) ||
		strings.Contains(text, hex.EncodeToString(secret)) ||
		strings.Contains(text, base64.StdEncoding.EncodeToString(secret)) ||
		strings.Contains(text, base64.RawURLEncoding.EncodeToString(secret))
}

// logText renders every recorded entry with its fields.
func logText(logs *observer.ObservedLogs) string {
	var b strings.Builder
	for _, e := range logs.All() {
		fmt.Fprintf(&b, "%s %s %v\n", e.Level, e.Message, e.ContextMap())
	}
	return b.String()
}

func TestGeneratedSecretSealedAtRest(t *testing.T) {
	ctx := context.Background()
	st := newMemSecrets()
	a := mustSealer(t, "secret-A")
	log, logs := observed()
	v1, err := a.GeneratedSecret(ctx, st, "app1", "signing_key_ed25519", 32, log)
	if err != nil || len(v1) != 32 {
		t.Fatalf("first use: %x %v", v1, err)
	}
	raw := st.raw("app1", "signing_key_ed25519")
	if !bytes.HasPrefix(raw, sealedSecretPrefix) || bytes.Contains(raw, v1) || leaks(string(raw), v1) {
		t.Fatalf("stored value is not sealed: %q", raw)
	}
	// Every later start, and every instance with the same app secret,
	// gets the same value.
	for range 3 {
		v, err := mustSealer(t, "secret-A").GeneratedSecret(ctx, st, "app1", "signing_key_ed25519", 32, log)
		if err != nil || !bytes.Equal(v, v1) {
			t.Fatalf("later use: %x %v, want %x", v, err, v1)
		}
	}
	if logs.Len() != 0 || st.swaps.Load() != 0 {
		t.Fatalf("nothing should have been replaced: %d swaps, logs:\n%s", st.swaps.Load(), logText(logs))
	}
	// Another name or app gets its own value.
	other, err := a.GeneratedSecret(ctx, st, "app1", "refresh_derivation_v1", 32, log)
	if err != nil || bytes.Equal(other, v1) {
		t.Fatalf("another name: %x %v", other, err)
	}
}

func TestGeneratedSecretUnsealable(t *testing.T) {
	ctx := context.Background()
	legacy := bytes.Repeat([]byte{0x5a}, 32)
	tests := []struct {
		name   string
		stored func(t *testing.T) []byte // the value in the store at start
		reason string
	}{
		{
			name:   "clear value of an earlier version",
			stored: func(*testing.T) []byte { return legacy },
			reason: "stored in clear by an earlier version",
		},
		{
			name: "app secret changed",
			stored: func(t *testing.T) []byte {
				v, err := mustSealer(t, "secret-A").sealSecret("app1", "k", legacy)
				if err != nil {
					t.Fatal(err)
				}
				return v
			},
			reason: "sealed under another app_secret",
		},
		{
			name: "sealed for another app",
			stored: func(t *testing.T) []byte {
				v, _ := mustSealer(t, "secret-B").sealSecret("app2", "k", legacy)
				return v
			},
			reason: "sealed under another app_secret",
		},
		{
			name: "sealed under another name",
			stored: func(t *testing.T) []byte {
				v, _ := mustSealer(t, "secret-B").sealSecret("app1", "other", legacy)
				return v
			},
			reason: "sealed under another app_secret",
		},
		{
			name: "tampered",
			stored: func(t *testing.T) []byte {
				v, _ := mustSealer(t, "secret-B").sealSecret("app1", "k", legacy)
				v[len(v)-1] ^= 1
				return v
			},
			reason: "sealed under another app_secret",
		},
		{
			name: "wrong size",
			stored: func(t *testing.T) []byte {
				v, _ := mustSealer(t, "secret-B").sealSecret("app1", "k", legacy[:16])
				return v
			},
			reason: "wrong size",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := newMemSecrets()
			old := tt.stored(t)
			st.set("app1", "k", old)
			b := mustSealer(t, "secret-B")
			log, logs := observed()
			v, err := b.GeneratedSecret(ctx, st, "app1", "k", 32, log)
			if err != nil {
				t.Fatal(err)
			}
			if len(v) != 32 || bytes.Equal(v, legacy) {
				t.Fatalf("the unsealable value was used: %x", v)
			}
			if st.swaps.Load() != 1 || bytes.Equal(st.raw("app1", "k"), old) {
				t.Fatalf("not replaced (%d swaps)", st.swaps.Load())
			}
			// One warning, saying why, without the value.
			text := logText(logs)
			if logs.Len() != 1 || logs.All()[0].Level != zapcore.WarnLevel || !strings.Contains(text, tt.reason) || !strings.Contains(text, `secret:k`) {
				t.Fatalf("want one warning with reason %q, got:\n%s", tt.reason, text)
			}
			if leaks(text, legacy) || leaks(text, v) || strings.Contains(text, "secret-B") {
				t.Fatalf("log leaks a secret:\n%s", text)
			}
			// From then on the new value is stable.
			again, err := b.GeneratedSecret(ctx, st, "app1", "k", 32, log)
			if err != nil || !bytes.Equal(again, v) || logs.Len() != 1 {
				t.Fatalf("after replacement: %x %v, %d log lines", again, err, logs.Len())
			}
		})
	}
}

// TestGeneratedSecretConcurrentReplace starts several instances with a new
// app secret at once: they converge on one new value, written once.
func TestGeneratedSecretConcurrentReplace(t *testing.T) {
	ctx := context.Background()
	st := newMemSecrets()
	st.set("app1", "k", bytes.Repeat([]byte{1}, 32)) // a clear value
	// Every instance has read the old value before any replaces it.
	const n = 8
	var arrived sync.WaitGroup
	arrived.Add(n)
	gate := make(chan struct{})
	var once sync.Once
	st.onReplace = func() {
		once.Do(func() {
			go func() { arrived.Wait(); close(gate) }()
		})
		arrived.Done()
		<-gate
	}
	results := make([][]byte, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = mustSealer(t, "secret-B").GeneratedSecret(ctx, st, "app1", "k", 32, zap.NewNop())
		}()
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil || !bytes.Equal(results[i], results[0]) {
			t.Fatalf("instance %d: %x %v; instance 0: %x", i, results[i], errs[i], results[0])
		}
	}
	if st.swaps.Load() != 1 {
		t.Fatalf("%d replacements, want 1", st.swaps.Load())
	}
}

// TestGeneratedSecretFight: another instance with another app secret keeps
// replacing the value; this one gives up with a clear error.
func TestGeneratedSecretFight(t *testing.T) {
	st := newMemSecrets()
	a := mustSealer(t, "secret-A")
	seal := func() {
		v, _ := a.sealSecret("app1", "k", bytes.Repeat([]byte{byte(st.swaps.Load())}, 32))
		st.set("app1", "k", v)
	}
	seal()
	st.onReplace = seal // the other instance wins every race
	_, err := mustSealer(t, "secret-B").GeneratedSecret(context.Background(), st, "app1", "k", 32, zap.NewNop())
	if err == nil || !strings.Contains(err.Error(), "different app_secrets") {
		t.Fatalf("err = %v", err)
	}
}

func TestGeneratedSecretErrors(t *testing.T) {
	ctx := context.Background()
	st := newMemSecrets()
	st.err = errors.New("disk on fire")
	s := mustSealer(t, "secret-A")
	if _, err := s.GeneratedSecret(ctx, st, "app1", "k", 32, nil); err == nil || !strings.Contains(err.Error(), "disk on fire") {
		t.Fatalf("store error: %v", err)
	}
	if _, err := s.GeneratedSecret(ctx, newMemSecrets(), "app1", "k", 8, nil); err == nil {
		t.Fatal("an 8-byte secret was accepted")
	}
	// A failing replacement is reported, and the old value is not used.
	st = newMemSecrets()
	st.set("app1", "k", bytes.Repeat([]byte{2}, 32))
	st.onReplace = func() { st.err = errors.New("disk full") }
	if v, err := s.GeneratedSecret(ctx, st, "app1", "k", 32, nil); err == nil || v != nil {
		t.Fatalf("failed replacement: %x %v", v, err)
	}
	// A value deleted between read and replace is created anew.
	st = newMemSecrets()
	st.set("app1", "k", bytes.Repeat([]byte{3}, 32))
	st.onReplace = func() {
		st.mu.Lock()
		delete(st.m, "app1/k")
		st.mu.Unlock()
		st.onReplace = nil
	}
	v, err := s.GeneratedSecret(ctx, st, "app1", "k", 32, nil)
	if err != nil || len(v) != 32 || bytes.Equal(v, bytes.Repeat([]byte{3}, 32)) {
		t.Fatalf("deleted meanwhile: %x %v", v, err)
	}
}
