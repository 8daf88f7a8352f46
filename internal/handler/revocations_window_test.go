package handler

import (
	"context"
	"testing"
	"time"
)

// TestRevocationWindowBoundary: a logged-out session stays on the list for
// as long as its access token could pass verification (exp + leeway), so a
// sweep at the last instant the token would still be accepted leaves it
// refused; only after that instant does the entry go.
func TestRevocationWindowBoundary(t *testing.T) {
	hs := newHarness(t) // clock on a whole second: iat is the login instant
	start := hs.clock.Now()
	access, _ := hs.login("o1")
	want(t, hs.call("POST", "/wx/logout", "", "Authorization", "Bearer "+access), 200, "")

	// exp = iat + 15m, accepted while now < exp + 30s of leeway.
	lastAccepted := start.Add(15*time.Minute + 30*time.Second - time.Nanosecond)
	hs.clock.Set(lastAccepted)
	if n := hs.revs.Sweep(hs.clock.Now()); n != 0 {
		t.Fatalf("sweep at %v dropped %d entries while the token is still valid", lastAccepted, n)
	}
	want(t, hs.guard(access), 401, CodeInvalidToken)

	// Past exp + leeway the token's own exp refuses it, whatever the list.
	hs.clock.Set(lastAccepted.Add(time.Nanosecond))
	want(t, hs.guard(access), 401, CodeInvalidToken)

	// The entry is kept until revocation + TTL + leeway + 1s (the second
	// covers whole-second token times), and dropped just after.
	until := start.Add(15*time.Minute + 30*time.Second + time.Second)
	if n := hs.revs.Sweep(until); n != 0 || hs.revs.Len() != 1 {
		t.Fatalf("sweep at the entry's last instant dropped %d, %d left", n, hs.revs.Len())
	}
	if n := hs.revs.Sweep(until.Add(time.Nanosecond)); n != 1 || hs.revs.Len() != 0 {
		t.Fatalf("sweep after the entry's time dropped %d, %d left", n, hs.revs.Len())
	}
}

// TestLoadRevocationsWindowBoundary: a process that starts while a revoked
// session's token could still pass verification loads that revocation,
// and refuses the token, up to the last such instant.
func TestLoadRevocationsWindowBoundary(t *testing.T) {
	hs := newHarness(t)
	start := hs.clock.Now()
	access, _ := hs.login("o1")
	want(t, hs.call("POST", "/wx/logout", "", "Authorization", "Bearer "+access), 200, "")

	lastAccepted := start.Add(15*time.Minute + 30*time.Second - time.Nanosecond)
	hs.clock.Set(lastAccepted)
	revs := NewRevocations()
	if err := LoadRevocations(context.Background(), hs.st, testApp, revs, 15*time.Minute, 30*time.Second, hs.clock.Now()); err != nil {
		t.Fatal(err)
	}
	if revs.Len() != 1 {
		t.Fatalf("loaded %d revocations, want 1", revs.Len())
	}
	if n := revs.Sweep(hs.clock.Now()); n != 0 {
		t.Fatalf("a loaded entry was swept while its token is still valid")
	}
	hs2 := newHarnessWith(t, hs.st, hs.clock, revs)
	want(t, hs2.guard(access), 401, CodeInvalidToken)
}

// TestRevocationsKeepLongestAndSweepAfter: Add never shortens an entry,
// and Sweep drops an entry only once its time has passed.
func TestRevocationsKeepLongestAndSweepAfter(t *testing.T) {
	t1 := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	t2 := t1.Add(time.Minute)
	r := NewRevocations()
	if r.Revoked("s") {
		t.Fatal("empty list reports a revocation")
	}
	r.Add("s", t2)
	r.Add("s", t1) // shorter: ignored
	r.Add("other", t1)
	if !r.Revoked("s") || !r.Revoked("other") || r.Revoked("s2") || r.Len() != 2 {
		t.Fatalf("after Add: s=%v other=%v s2=%v len=%d", r.Revoked("s"), r.Revoked("other"), r.Revoked("s2"), r.Len())
	}
	if n := r.Sweep(t1); n != 0 {
		t.Fatalf("sweep at t1 dropped %d", n)
	}
	if n := r.Sweep(t1.Add(time.Nanosecond)); n != 1 || !r.Revoked("s") || r.Revoked("other") {
		t.Fatalf("sweep after t1 dropped %d; s=%v other=%v", n, r.Revoked("s"), r.Revoked("other"))
	}
	r.Add("s", t2.Add(time.Minute)) // longer: extends
	if n := r.Sweep(t2.Add(time.Nanosecond)); n != 0 || !r.Revoked("s") {
		t.Fatalf("extended entry dropped at its old time (%d)", n)
	}
	if n := r.Sweep(t2.Add(time.Minute + time.Nanosecond)); n != 1 || r.Len() != 0 || r.Revoked("s") {
		t.Fatalf("extended entry: dropped %d, len %d", n, r.Len())
	}
}
