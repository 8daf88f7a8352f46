package handler

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/wxauth/caddy-wechat-auth/internal/testclock"
	"github.com/wxauth/caddy-wechat-auth/store/bolt"
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

// TestRevocationsKeepLongestAndSweepAfter: an entry is kept for the
// window from the later of its revocation and its receipt; Add never
// shortens an entry, Widen lengthens every entry and never narrows, and
// Sweep drops an entry only once its time has passed.
func TestRevocationsKeepLongestAndSweepAfter(t *testing.T) {
	t1 := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	t2 := t1.Add(time.Minute)
	r := NewRevocations()
	r.Widen(time.Minute)
	r.Widen(time.Second) // narrower: ignored
	if r.Window() != time.Minute {
		t.Fatalf("window %v after widening to 1m and then asking for 1s", r.Window())
	}
	if r.Revoked("s") {
		t.Fatal("empty list reports a revocation")
	}
	r.Add("s", t2, t1)              // revoked at t2 (the revoker's clock ahead): kept from t2
	r.Add("s", t1, t1)              // earlier: ignored
	r.Add("other", t1, time.Time{}) // the receipt time is zero: from t1
	if !r.Revoked("s") || !r.Revoked("other") || r.Revoked("s2") || r.Len() != 2 {
		t.Fatalf("after Add: s=%v other=%v s2=%v len=%d", r.Revoked("s"), r.Revoked("other"), r.Revoked("s2"), r.Len())
	}
	if n := r.Sweep(t2); n != 0 {
		t.Fatalf("sweep at t1+window dropped %d", n)
	}
	if n := r.Sweep(t2.Add(time.Nanosecond)); n != 1 || !r.Revoked("s") || r.Revoked("other") {
		t.Fatalf("sweep after t1+window dropped %d; s=%v other=%v", n, r.Revoked("s"), r.Revoked("other"))
	}
	r.Add("s", t1, t2.Add(time.Minute)) // revoked at t1, heard of a minute after t2: extends
	if n := r.Sweep(t2.Add(time.Minute + time.Nanosecond)); n != 0 || !r.Revoked("s") {
		t.Fatalf("extended entry dropped at its old time (%d)", n)
	}
	r.Widen(time.Hour) // lengthens the entries already on the list
	if n := r.Sweep(t2.Add(time.Minute + time.Hour)); n != 0 || !r.Revoked("s") {
		t.Fatalf("widening did not lengthen an entry (%d dropped)", n)
	}
	if n := r.Sweep(t2.Add(time.Minute + time.Hour + time.Nanosecond)); n != 1 || r.Len() != 0 || r.Revoked("s") {
		t.Fatalf("widened entry: dropped %d, len %d", n, r.Len())
	}
}

// TestRevocationsFromLaterOfRevokedAndNow: a revocation stamped by a clock
// far behind this process's (another instance's, or the database's) is
// kept for the full window from the moment it arrives, and one stamped
// ahead is kept from its own time.
func TestRevocationsFromLaterOfRevokedAndNow(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	window := revocationWindow(15*time.Minute, 30*time.Second)
	r := NewRevocations()
	r.Widen(window)
	r.Add("behind", now.Add(-time.Hour), now)
	r.Add("ahead", now.Add(time.Hour), now)
	if n := r.Sweep(now.Add(window)); n != 0 {
		t.Fatalf("sweep at now+window dropped %d; want both kept", n)
	}
	if n := r.Sweep(now.Add(window + time.Nanosecond)); n != 1 || r.Revoked("behind") || !r.Revoked("ahead") {
		t.Fatalf("sweep after now+window dropped %d; behind=%v ahead=%v", n, r.Revoked("behind"), r.Revoked("ahead"))
	}
	if n := r.Sweep(now.Add(time.Hour + window + time.Nanosecond)); n != 1 || r.Len() != 0 {
		t.Fatalf("sweep after the ahead entry's time dropped %d, %d left", n, r.Len())
	}
}

// TestSharedListKeepsWidestWindow: two handlers of one app share one
// revocation list, one with 15m access tokens, one with 2h tokens. A
// logout through the short one (by the long one's refresh token) is still
// refused by the long one after the short window has passed, up to the
// last instant the long token could pass verification.
func TestSharedListKeepsWidestWindow(t *testing.T) {
	st, err := bolt.Open(filepath.Join(t.TempDir(), "h.db"), bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	clk := testclock.New(time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC))
	revs := NewRevocations()
	long := newHarnessTTL(t, st, clk, revs, 2*time.Hour, 30*time.Second)
	short := newHarnessTTL(t, st, clk, revs, 15*time.Minute, 30*time.Second)
	start := clk.Now()

	access, refresh := long.login("o1")
	want(t, long.guard(access), 200, "")
	want(t, short.call("POST", "/wx/logout", `{"refresh_token":"`+refresh+`"}`), 200, "")
	want(t, long.guard(access), 401, CodeInvalidToken)

	// Past the short handler's window (15m + 30s + 1s), the long token is
	// still within its own lifetime: the entry must still be there.
	clk.Set(start.Add(time.Hour))
	if n := revs.Sweep(clk.Now()); n != 0 {
		t.Fatalf("sweep after the short window dropped %d entries while the 2h token is valid", n)
	}
	want(t, long.guard(access), 401, CodeInvalidToken)

	lastAccepted := start.Add(2*time.Hour + 30*time.Second - time.Nanosecond)
	clk.Set(lastAccepted)
	if n := revs.Sweep(clk.Now()); n != 0 {
		t.Fatalf("sweep at the long token's last accepted instant dropped %d entries", n)
	}
	want(t, long.guard(access), 401, CodeInvalidToken)

	// The widest window is kept, never narrowed by a handler with a
	// shorter one.
	if w := revs.Window(); w != revocationWindow(2*time.Hour, 30*time.Second) {
		t.Fatalf("shared list window %v, want the long handler's", w)
	}
}
