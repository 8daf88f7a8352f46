package handler

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestLoginJoinWithoutHook: a duplicate login that joins one in flight
// works in production form (no hook: see hookedFlights): it waits for the shared
// answer, or gives up when its own client goes away, and never runs a
// second exchange.
func TestLoginJoinWithoutHook(t *testing.T) {
	l := newLoginFlights()
	started, release := make(chan struct{}), make(chan struct{})
	done := make(chan loginAnswer, 1)
	go func() {
		ans, _ := l.do(context.Background(), "code", func() loginAnswer {
			close(started)
			<-release
			return loginAnswer{body: []byte("first")}
		})
		done <- ans
	}()
	<-started

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := l.do(ctx, "code", func() loginAnswer {
		t.Error("a duplicate ran its own exchange")
		return loginAnswer{}
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("a joiner whose client went away: %v", err)
	}
	if l.len() != 1 {
		t.Fatalf("%d logins in flight, want 1", l.len())
	}
	close(release)
	select {
	case ans := <-done:
		if string(ans.body) != "first" {
			t.Fatalf("answer %q", ans.body)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the login in flight never finished")
	}
}
