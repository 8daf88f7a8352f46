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
	v1, sealed, err := a.GeneratedSecret(ctx, st, "app1", "signing_key_ed25519", 32, log)
	if err != nil || len(v1) != 32 {
		t.Fatalf("first use: %x %v", v1, err)
	}
	raw := st.raw("app1", "signing_key_ed25519")
	if !bytes.HasPrefix(raw, sealedSecretPrefix) || bytes.Contains(raw, v1) || leaks(string(raw), v1) {
		t.Fatalf("stored value is not sealed: %q", raw)
	}
	if !bytes.Equal(sealed, raw) {
		t.Fatalf("returned sealed value %q is not the stored one %q", sealed, raw)
	}
	// Every later start, and every instance with the same app secret,
	// gets the same value.
	for range 3 {
		v, _, err := mustSealer(t, "secret-A").GeneratedSecret(ctx, st, "app1", "signing_key_ed25519", 32, log)
		if err != nil || !bytes.Equal(v, v1) {
			t.Fatalf("later use: %x %v, want %x", v, err, v1)
		}
	}
	if logs.Len() != 0 || st.swaps.Load() != 0 {
		t.Fatalf("nothing should have been replaced: %d swaps, logs:\n%s", st.swaps.Load(), logText(logs))
	}
	// Another name or app gets its own value.
	other, _, err := a.GeneratedSecret(ctx, st, "app1", "refresh_derivation_v1", 32, log)
	if err != nil || bytes.Equal(other, v1) {
		t.Fatalf("another name: %x %v", other, err)
	}
}

// TestGeneratedSecretOtherAppSecret: a value sealed with another app
// secret (another instance of the fleet, configured differently) is never
// replaced, which would re-key every instance: the start fails with an
// error naming the app and the secret, never a secret's value.
func TestGeneratedSecretOtherAppSecret(t *testing.T) {
	ctx := context.Background()
	value := bytes.Repeat([]byte{0x5a}, 32)
	tests := []struct {
		name   string
		stored func(t *testing.T) []byte // the value in the store at start
	}{
		{
			name: "app secret differs",
			stored: func(t *testing.T) []byte {
				v, err := mustSealer(t, "secret-A").sealSecret("app1", "k", value)
				if err != nil {
					t.Fatal(err)
				}
				return v
			},
		},
		{
			name: "sealed for another app",
			stored: func(t *testing.T) []byte {
				v, _ := mustSealer(t, "secret-B").sealSecret("app2", "k", value)
				return v
			},
		},
		{
			name: "sealed under another name",
			stored: func(t *testing.T) []byte {
				v, _ := mustSealer(t, "secret-B").sealSecret("app1", "other", value)
				return v
			},
		},
		{
			name: "tampered",
			stored: func(t *testing.T) []byte {
				v, _ := mustSealer(t, "secret-B").sealSecret("app1", "k", value)
				v[len(v)-1] ^= 1
				return v
			},
		},
		{
			name:   "truncated",
			stored: func(*testing.T) []byte { return append(bytes.Clone(sealedSecretPrefix), 1, 2, 3) },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := newMemSecrets()
			old := tt.stored(t)
			st.set("app1", "k", old)
			log, logs := observed()
			v, sealed, err := mustSealer(t, "secret-B").GeneratedSecret(ctx, st, "app1", "k", 32, log)
			if !errors.Is(err, ErrSecretMismatch) || v != nil || sealed != nil {
				t.Fatalf("GeneratedSecret = %x, %v; want ErrSecretMismatch", v, err)
			}
			msg := err.Error()
			for _, want := range []string{"app1", `"k"`, "app_secret", "rotate-secret"} {
				if !strings.Contains(msg, want) {
					t.Errorf("error %q does not mention %s", msg, want)
				}
			}
			if leaks(msg, value) || strings.Contains(msg, "secret-A") || strings.Contains(msg, "secret-B") {
				t.Errorf("error leaks a secret: %q", msg)
			}
			if st.swaps.Load() != 0 || !bytes.Equal(st.raw("app1", "k"), old) {
				t.Fatalf("the stored value was replaced (%d swaps)", st.swaps.Load())
			}
			if logs.Len() != 0 {
				t.Errorf("unexpected log:\n%s", logText(logs))
			}
		})
	}
}

// TestGeneratedSecretUnusable: a value an earlier version stored in clear,
// or a sealed value of the wrong size, is replaced by a fresh sealed one
// with one warning that says why, without the value.
func TestGeneratedSecretUnusable(t *testing.T) {
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
			v, _, err := b.GeneratedSecret(ctx, st, "app1", "k", 32, log)
			if err != nil {
				t.Fatal(err)
			}
			if len(v) != 32 || bytes.Equal(v, legacy) {
				t.Fatalf("the unusable value was used: %x", v)
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
			again, _, err := b.GeneratedSecret(ctx, st, "app1", "k", 32, log)
			if err != nil || !bytes.Equal(again, v) || logs.Len() != 1 {
				t.Fatalf("after replacement: %x %v, %d log lines", again, err, logs.Len())
			}
		})
	}
}

// TestOpenGeneratedSecret opens a value GeneratedSecret returned, without
// the store, only with the app secret that sealed it.
func TestOpenGeneratedSecret(t *testing.T) {
	st := newMemSecrets()
	v, sealed, err := mustSealer(t, "secret-A").GeneratedSecret(context.Background(), st, "app1", "k", 32, nil)
	if err != nil {
		t.Fatal(err)
	}
	st.err = errors.New("store gone") // OpenGeneratedSecret must not need it
	got, err := mustSealer(t, "secret-A").OpenGeneratedSecret("app1", "k", sealed, 32)
	if err != nil || !bytes.Equal(got, v) {
		t.Fatalf("same app secret: %x %v, want %x", got, err, v)
	}
	for _, c := range []struct {
		secret, app, name string
		size              int
	}{
		{"secret-B", "app1", "k", 32},
		{"secret-A", "app2", "k", 32},
		{"secret-A", "app1", "j", 32},
		{"secret-A", "app1", "k", 16},
	} {
		if got, err := mustSealer(t, c.secret).OpenGeneratedSecret(c.app, c.name, sealed, c.size); !errors.Is(err, ErrSecretMismatch) || got != nil {
			t.Errorf("%+v: %x %v, want ErrSecretMismatch", c, got, err)
		}
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
			results[i], _, errs[i] = mustSealer(t, "secret-B").GeneratedSecret(ctx, st, "app1", "k", 32, zap.NewNop())
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

// TestGeneratedSecretFight: while this instance replaces a clear value,
// another instance with another app secret stores its own: this one
// refuses it rather than replacing it again.
func TestGeneratedSecretFight(t *testing.T) {
	st := newMemSecrets()
	st.set("app1", "k", bytes.Repeat([]byte{1}, 32)) // a clear value
	st.onReplace = func() {
		v, _ := mustSealer(t, "secret-A").sealSecret("app1", "k", bytes.Repeat([]byte{2}, 32))
		st.set("app1", "k", v) // the other instance wins the race
	}
	_, _, err := mustSealer(t, "secret-B").GeneratedSecret(context.Background(), st, "app1", "k", 32, zap.NewNop())
	if !errors.Is(err, ErrSecretMismatch) {
		t.Fatalf("err = %v, want ErrSecretMismatch", err)
	}
}

// TestGeneratedSecretWrongSizeLoop: values of the wrong size keep coming
// back (instances of another version): it gives up with an error.
func TestGeneratedSecretWrongSizeLoop(t *testing.T) {
	st := newMemSecrets()
	a := mustSealer(t, "secret-A")
	short := func() {
		v, _ := a.sealSecret("app1", "k", bytes.Repeat([]byte{3}, 16))
		st.set("app1", "k", v)
	}
	short()
	st.onReplace = short
	_, _, err := a.GeneratedSecret(context.Background(), st, "app1", "k", 32, zap.NewNop())
	if err == nil || !strings.Contains(err.Error(), "wrong size") {
		t.Fatalf("err = %v", err)
	}
}

func TestGeneratedSecretErrors(t *testing.T) {
	ctx := context.Background()
	st := newMemSecrets()
	st.err = errors.New("disk on fire")
	s := mustSealer(t, "secret-A")
	if _, _, err := s.GeneratedSecret(ctx, st, "app1", "k", 32, nil); err == nil || !strings.Contains(err.Error(), "disk on fire") {
		t.Fatalf("store error: %v", err)
	}
	if _, _, err := s.GeneratedSecret(ctx, newMemSecrets(), "app1", "k", 8, nil); err == nil {
		t.Fatal("an 8-byte secret was accepted")
	}
	// A failing replacement is reported, and the old value is not used.
	st = newMemSecrets()
	st.set("app1", "k", bytes.Repeat([]byte{2}, 32))
	st.onReplace = func() { st.err = errors.New("disk full") }
	if v, _, err := s.GeneratedSecret(ctx, st, "app1", "k", 32, nil); err == nil || v != nil {
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
	v, _, err := s.GeneratedSecret(ctx, st, "app1", "k", 32, nil)
	if err != nil || len(v) != 32 || bytes.Equal(v, bytes.Repeat([]byte{3}, 32)) {
		t.Fatalf("deleted meanwhile: %x %v", v, err)
	}
}
