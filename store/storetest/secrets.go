package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
)

func testSecret(t *testing.T, f *fixture) {
	var calls atomic.Int32
	create := func(v string) func() ([]byte, error) {
		return func() ([]byte, error) {
			calls.Add(1)
			return []byte(v), nil
		}
	}
	tests := []struct {
		name      string
		app, key  string
		value     string // what create would return
		want      string
		wantCalls int32
	}{
		{"created", "app", "signing-key", "v1", "v1", 1},
		{"stored value returned", "app", "signing-key", "v2", "v1", 0},
		{"other name", "app", "other-key", "v3", "v3", 1},
		{"other app", "app-b", "signing-key", "v4", "v4", 1},
		{"still stored", "app", "signing-key", "v5", "v1", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := f.with(t)
			calls.Store(0)
			got, err := f.s.Secret(f.ctx, tc.app, tc.key, create(tc.value))
			if err != nil {
				t.Fatalf("Secret: %v", err)
			}
			if string(got) != tc.want {
				t.Errorf("Secret = %q, want %q", got, tc.want)
			}
			if n := calls.Load(); n != tc.wantCalls {
				t.Errorf("create called %d times, want %d", n, tc.wantCalls)
			}
			// The caller owns the returned slice.
			for i := range got {
				got[i] = 'X'
			}
		})
	}
}

func testSecretCreateError(t *testing.T, f *fixture) {
	boom := errors.New("entropy exhausted")
	_, err := f.s.Secret(f.ctx, "app", "key", func() ([]byte, error) { return nil, boom })
	if !errors.Is(err, boom) {
		t.Fatalf("Secret with failing create: error %v, want it to wrap %v", err, boom)
	}
	// Nothing was stored: the next call creates.
	called := false
	got, err := f.s.Secret(f.ctx, "app", "key", func() ([]byte, error) {
		called = true
		return []byte("good"), nil
	})
	if err != nil || string(got) != "good" || !called {
		t.Errorf("Secret after a failed create = %q, %v (create called: %v); want a new value", got, err, called)
	}
}

func testSecretConcurrent(t *testing.T, f *fixture) {
	const n = 16
	results := make([][]byte, n)
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			results[i], errs[i] = f.s.Secret(f.ctx, "app", "key", func() ([]byte, error) {
				return fmt.Appendf(nil, "value-%d", i), nil
			})
		}()
	}
	close(start)
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("Secret #%d: %v", i, errs[i])
		}
		if !bytes.Equal(results[i], results[0]) {
			t.Errorf("Secret #%d = %q, #0 = %q: concurrent callers got different values", i, results[i], results[0])
		}
	}
	got, err := f.s.Secret(f.ctx, "app", "key", func() ([]byte, error) {
		return nil, errors.New("must not be called")
	})
	if err != nil || !bytes.Equal(got, results[0]) {
		t.Errorf("Secret afterwards = %q, %v; want %q", got, err, results[0])
	}
}
