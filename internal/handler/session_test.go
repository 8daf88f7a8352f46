package handler

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestRefreshRotation(t *testing.T) {
	hs := newHarness(t)
	access, rt1 := hs.login("o1")
	want(t, hs.guard(access), 200, "")

	hs.clock.Advance(time.Minute)
	r := hs.refresh(rt1)
	want(t, r, 200, "")
	rt2 := r.body["refresh_token"].(string)
	access2 := r.body["token"].(string)
	if rt2 == rt1 || access2 == access {
		t.Fatal("refresh did not rotate")
	}
	if _, ok := r.body["new_user"]; ok {
		t.Fatalf("refresh answer has new_user: %s", r.raw)
	}
	if r.body["expires_in"].(float64) != 900 || r.body["token_type"] != "Bearer" {
		t.Fatalf("refresh answer: %s", r.raw)
	}
	want(t, hs.guard(access2), 200, "")
	// The old access token stays valid until it expires: rotation is not
	// a logout.
	want(t, hs.guard(access), 200, "")

	hs.clock.Advance(time.Minute)
	r = hs.refresh(rt2)
	want(t, r, 200, "")
	if r.body["refresh_token"] == rt2 {
		t.Fatal("second refresh did not rotate")
	}
}

func TestRefreshRetryWindowAndReuse(t *testing.T) {
	hs := newHarness(t)
	_, rt1 := hs.login("o1")
	first := hs.refresh(rt1)
	want(t, first, 200, "")

	// A client that retried within the grace period gets the same pair.
	hs.clock.Advance(DefaultRefreshGrace - time.Second)
	again := hs.refresh(rt1)
	want(t, again, 200, "")
	if again.body["token"] != first.body["token"] || again.body["refresh_token"] != first.body["refresh_token"] {
		t.Fatalf("retry got a different pair:\n%s\n%s", first.raw, again.raw)
	}

	// Later, a replay of the spent token is theft: the session ends for
	// the thief and the owner alike.
	hs.clock.Advance(2 * time.Second)
	want(t, hs.refresh(rt1), 401, CodeInvalidGrant)
	want(t, hs.refresh(first.body["refresh_token"].(string)), 401, CodeInvalidGrant)
	want(t, hs.guard(first.body["token"].(string)), 401, CodeInvalidToken)
}

func TestRefreshReuseAfterChildRotated(t *testing.T) {
	hs := newHarness(t)
	_, rt1 := hs.login("o1")
	r := hs.refresh(rt1)
	want(t, r, 200, "")
	r2 := hs.refresh(r.body["refresh_token"].(string))
	want(t, r2, 200, "")
	// rt1's child is spent too: presenting rt1 now, even inside the grace
	// period, cannot be a plain retry.
	want(t, hs.refresh(rt1), 401, CodeInvalidGrant)
	want(t, hs.guard(r2.body["token"].(string)), 401, CodeInvalidToken)
}

func TestRefreshBadTokens(t *testing.T) {
	hs := newHarness(t)
	_, rt := hs.login("o1")
	want(t, hs.refresh("unknown-token"), 401, CodeInvalidGrant)
	want(t, hs.refresh(strings.Repeat("x", 600)), 401, CodeInvalidGrant)
	want(t, hs.call("POST", "/wx/refresh", `{}`), 400, CodeInvalidRequest)
	want(t, hs.call("GET", "/wx/refresh", ""), 405, CodeMethodNotAllowed)
	hs.clock.Advance(721 * time.Hour)
	want(t, hs.refresh(rt), 401, CodeInvalidGrant)
}

func TestConcurrentRefreshOnePair(t *testing.T) {
	hs := newHarness(t)
	_, rt := hs.login("o1")
	const n = 16
	var wg sync.WaitGroup
	results := make([]result, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := httptest.NewRequest("POST", "/wx/refresh", strings.NewReader(`{"refresh_token":"`+rt+`"}`))
			r.Header.Set("Content-Type", "application/json")
			w := httptest.NewRecorder()
			hs.h.Serve(w, r)
			results[i] = result{status: w.Code, raw: w.Body.String()}
			_ = json.Unmarshal(w.Body.Bytes(), &results[i].body)
		}()
	}
	wg.Wait()
	for _, r := range results {
		if r.status != 200 {
			t.Fatalf("concurrent refresh: %d %s", r.status, r.raw)
		}
		if r.body["refresh_token"] != results[0].body["refresh_token"] || r.body["token"] != results[0].body["token"] {
			t.Fatal("concurrent refreshes produced more than one pair")
		}
	}
}

func TestLogoutRevokesAtOnce(t *testing.T) {
	hs := newHarness(t)
	access, rt := hs.login("o1")
	want(t, hs.guard(access), 200, "")
	want(t, hs.call("POST", "/wx/logout", "", "Authorization", "Bearer "+access), 200, "")
	want(t, hs.guard(access), 401, CodeInvalidToken)
	want(t, hs.refresh(rt), 401, CodeInvalidGrant)
	want(t, hs.call("GET", "/wx/profile", "", "token", access), 401, CodeInvalidToken)
	// Idempotent.
	want(t, hs.call("POST", "/wx/logout", "", "Authorization", "Bearer "+access), 200, "")
	// Without credentials.
	r := hs.call("POST", "/wx/logout", "")
	want(t, r, 401, CodeInvalidToken)
	if r.header.Get("WWW-Authenticate") != `Bearer realm="wechat_auth"` {
		t.Fatalf("challenge: %q", r.header.Get("WWW-Authenticate"))
	}
	// A forged token cannot log anyone out.
	want(t, hs.call("POST", "/wx/logout", "", "Authorization", "Bearer a.b.c"), 401, CodeInvalidToken)
}

func TestLogoutWithRefreshToken(t *testing.T) {
	hs := newHarness(t)
	access, rt := hs.login("o1")
	want(t, hs.call("POST", "/wx/logout", `{"refresh_token":"`+rt+`"}`), 200, "")
	want(t, hs.guard(access), 401, CodeInvalidToken)
	want(t, hs.refresh(rt), 401, CodeInvalidGrant)
	want(t, hs.call("POST", "/wx/logout", `{"refresh_token":"nope"}`), 401, CodeInvalidGrant)
}

func TestLogoutAll(t *testing.T) {
	hs := newHarness(t)
	a1, rt1 := hs.login("o1")
	a2, rt2 := hs.login("o1")
	other, _ := hs.login("o2")
	want(t, hs.call("POST", "/wx/logout", `{"all":true}`, "Authorization", "Bearer "+a1), 200, "")
	want(t, hs.guard(a1), 401, CodeInvalidToken)
	want(t, hs.guard(a2), 401, CodeInvalidToken)
	want(t, hs.refresh(rt1), 401, CodeInvalidGrant)
	want(t, hs.refresh(rt2), 401, CodeInvalidGrant)
	want(t, hs.guard(other), 200, "")
}

func TestRevocationSurvivesRestart(t *testing.T) {
	hs := newHarness(t)
	access, _ := hs.login("o1")
	live, _ := hs.login("o2")
	want(t, hs.call("POST", "/wx/logout", "", "Authorization", "Bearer "+access), 200, "")

	// A new process: an empty list, filled from the store.
	revs := NewRevocations()
	if err := LoadRevocations(context.Background(), hs.st, testApp, revs, 15*time.Minute, 30*time.Second, hs.clock.Now()); err != nil {
		t.Fatal(err)
	}
	hs2 := newHarnessWith(t, hs.st, hs.clock, revs)
	want(t, hs2.guard(access), 401, CodeInvalidToken)
	want(t, hs2.guard(live), 200, "")

	// Once every token of the session has expired the entry goes.
	hs.clock.Advance(16*time.Minute + 31*time.Second)
	if n := revs.Sweep(hs.clock.Now()); n != 1 || revs.Len() != 0 {
		t.Fatalf("sweep dropped %d, %d left", n, revs.Len())
	}
}

// TestLogoutAllNeedsALiveSession: a token of a session that has already
// ended (a thief's, after reuse detection) may log that session out
// again, but cannot end the user's other sessions.
func TestLogoutAllNeedsALiveSession(t *testing.T) {
	hs := newHarness(t)
	stolen, rt := hs.login("o1")
	want(t, hs.refresh(rt), 200, "")
	hs.clock.Advance(DefaultRefreshGrace + time.Second)
	want(t, hs.refresh(rt), 401, CodeInvalidGrant) // reuse: the session ends
	fresh, freshRT := hs.login("o1")

	// The ended session cannot end the others, and the answer says so
	// instead of a success the client would take for "logged out
	// everywhere"; a plain logout of it is still idempotent.
	want(t, hs.call("POST", "/wx/logout", `{"all":true}`, "Authorization", "Bearer "+stolen), 401, CodeInvalidGrant)
	want(t, hs.call("POST", "/wx/logout", `{}`, "Authorization", "Bearer "+stolen), 200, "")
	want(t, hs.guard(fresh), 200, "")
	want(t, hs.refresh(freshRT), 200, "")

	// A logout everywhere repeated (its answer lost) is answered as it was.
	want(t, hs.call("POST", "/wx/logout", `{"all":true}`, "Authorization", "Bearer "+fresh), 200, "")
	want(t, hs.call("POST", "/wx/logout", `{"all":true}`, "Authorization", "Bearer "+fresh), 200, "")
	want(t, hs.guard(fresh), 401, CodeInvalidToken)
}

// TestLogoutRefreshTokenMustBeCurrent: only the session's current refresh
// token ends it; one spent (rotated) longer ago than the retry window is
// refused and changes nothing, with or without "all".
func TestLogoutRefreshTokenMustBeCurrent(t *testing.T) {
	hs := newHarness(t)
	_, spent := hs.login("o1")
	r := hs.refresh(spent)
	want(t, r, 200, "")
	access, current := r.body["token"].(string), r.body["refresh_token"].(string)
	other, _ := hs.login("o1")
	hs.clock.Advance(DefaultRefreshGrace + time.Nanosecond)
	for _, body := range []string{`{"refresh_token":"` + spent + `"}`, `{"refresh_token":"` + spent + `","all":true}`} {
		want(t, hs.call("POST", "/wx/logout", body), 401, CodeInvalidGrant)
	}
	want(t, hs.guard(access), 200, "")
	want(t, hs.guard(other), 200, "")
	want(t, hs.call("POST", "/wx/logout", `{"refresh_token":"`+current+`"}`), 200, "")
	want(t, hs.guard(access), 401, CodeInvalidToken)
	want(t, hs.guard(other), 200, "")
}

// TestLogoutExpiredAccessTokenFallsBackToRefreshToken: a client whose
// access token expired still logs out with the refresh token it sends in
// the body, instead of leaving the session alive.
func TestLogoutExpiredAccessTokenFallsBackToRefreshToken(t *testing.T) {
	hs := newHarness(t)
	access, rt := hs.login("o1")
	hs.clock.Advance(20 * time.Minute)
	want(t, hs.call("POST", "/wx/logout", `{"refresh_token":"`+rt+`"}`, "Authorization", "Bearer "+access), 200, "")
	want(t, hs.refresh(rt), 401, CodeInvalidGrant)
	// Without a refresh token, the expired access token is still refused.
	access2, _ := hs.login("o2")
	hs.clock.Advance(20 * time.Minute)
	want(t, hs.call("POST", "/wx/logout", `{}`, "Authorization", "Bearer "+access2), 401, CodeInvalidToken)
}

// TestLogoutRefreshTokenRotatedWithinGrace: a logout that crossed a
// refresh in flight presents the token the refresh just spent. Within the
// retry window, while its child is the session's current token, it ends
// the session (and with "all" every session of the user); after the
// window, or once the child was rotated too, it is refused.
func TestLogoutRefreshTokenRotatedWithinGrace(t *testing.T) {
	// rotated logs o1 in twice (the second session is the "other
	// device"), rotates the first session's refresh token and returns the
	// spent token, the new access token and the other session's.
	rotated := func(hs *harness) (spent, access, other string) {
		_, spent = hs.login("o1")
		other, _ = hs.login("o1")
		r := hs.refresh(spent)
		want(t, r, 200, "")
		return spent, r.body["token"].(string), other
	}
	for _, tt := range []struct {
		name  string
		grace *time.Duration // nil: the default
		after time.Duration  // from the rotation to the logout
		ok    bool
	}{
		{name: "at once", after: 0, ok: true},
		{name: "inside the default window", after: DefaultRefreshGrace - time.Second, ok: true},
		{name: "at the end of the default window", after: DefaultRefreshGrace, ok: true},
		{name: "a nanosecond after the default window", after: DefaultRefreshGrace + time.Nanosecond},
		{name: "no window, at once", grace: durPtr(0), after: 0, ok: true},
		{name: "no window, a nanosecond later", grace: durPtr(0), after: time.Nanosecond},
		{name: "30s window, 29s later", grace: durPtr(30 * time.Second), after: 29 * time.Second, ok: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			hs := newHarness(t)
			if tt.grace != nil {
				hs.withGrace(*tt.grace)
			}
			spent, access, other := rotated(hs)
			hs.clock.Advance(tt.after)
			r := hs.call("POST", "/wx/logout", `{"refresh_token":"`+spent+`","all":true}`)
			if !tt.ok {
				want(t, r, 401, CodeInvalidGrant)
				want(t, hs.guard(access), 200, "")
				want(t, hs.guard(other), 200, "")
				return
			}
			want(t, r, 200, "")
			want(t, hs.guard(access), 401, CodeInvalidToken)
			want(t, hs.guard(other), 401, CodeInvalidToken)
		})
	}

	t.Run("child rotated as well", func(t *testing.T) {
		hs := newHarness(t)
		_, spent := hs.login("o1")
		r := hs.refresh(spent)
		want(t, r, 200, "")
		// The client refreshed again: spent's child is spent too.
		r = hs.refresh(r.body["refresh_token"].(string))
		want(t, r, 200, "")
		want(t, hs.call("POST", "/wx/logout", `{"refresh_token":"`+spent+`"}`), 401, CodeInvalidGrant)
		want(t, hs.guard(r.body["token"].(string)), 200, "")
	})
}
