package storetest

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wxauth/caddy-wechat-auth/store"
)

// banTests cover what a ban must end: logins racing it, and rotations of
// a session a banned user still has.
var banTests = []struct {
	name string
	fn   func(*testing.T, *fixture)
}{
	{"Ban/RacesLogins", testBanRacesLogins},
	{"Ban/RefusesRotate", testBanRefusesRotate},
}

// testBanRacesLogins: logins of one user run from several goroutines
// while the user is banned. However they interleave, once the ban has
// returned no session of the user is live, and no refresh token any of
// the logins was given rotates. Several rounds (ban, check, unban), as
// the race is a matter of timing.
func testBanRacesLogins(t *testing.T, f *fixture) {
	const (
		rounds  = 12
		workers = 6
		// perWorker bounds each worker's logins in a round; they stop at
		// their first refusal, which comes once the ban has committed. A
		// worker reaching it means the ban waited behind overlapping
		// logins all along (starved) and fails the test.
		perWorker = 200
		// before is how many logins the round makes before banning, so
		// the ban lands among logins in flight.
		before = 2 * workers
	)
	u := f.login("app", "o", "", at(0))
	for r := range rounds {
		now := at(time.Duration(r+1) * time.Hour)
		var (
			wg     sync.WaitGroup
			mu     sync.Mutex
			issued []store.RefreshToken // first tokens of the sessions stored
			n      atomic.Int64
			ready  = make(chan struct{})
			once   sync.Once
		)
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range perWorker {
					s, tok := newSession(u, fmt.Sprintf("r%d-w%d-%d", r, w, i), now)
					_, stored, _, err := f.s.Login(f.ctx, "app", store.NewUser{OpenID: "o"}, s, tok, now)
					if errors.Is(err, store.ErrBanned) {
						return
					}
					if err != nil {
						t.Errorf("round %d: Login: %v", r, err)
						return
					}
					if stored.UserID != u.ID {
						t.Errorf("round %d: Login stored a session of user %d, want %d", r, stored.UserID, u.ID)
					}
					mu.Lock()
					issued = append(issued, tok)
					mu.Unlock()
					if n.Add(1) >= before {
						once.Do(func() { close(ready) })
					}
				}
				t.Errorf("round %d: %d logins and none refused, though the user was banned", r, perWorker)
			}()
		}
		<-ready
		if _, _, err := f.s.Ban(f.ctx, "app", u.ID, "race", now); err != nil {
			t.Fatalf("round %d: Ban: %v", r, err)
		}
		wg.Wait()
		if t.Failed() {
			return
		}

		sessions, err := f.s.UserSessions(f.ctx, "app", u.ID)
		if err != nil {
			t.Fatalf("round %d: UserSessions: %v", r, err)
		}
		for _, s := range sessions {
			if !s.Revoked() {
				t.Errorf("round %d: session %s of the banned user is live", r, s.ID)
			}
		}
		st, err := f.s.Stats(f.ctx, "app", now)
		if err != nil || st.ActiveSessions != 0 {
			t.Errorf("round %d: Stats after the ban = %+v, %v; want no active session", r, st, err)
		}
		for i, tok := range issued {
			next := nextToken(tok.SessionID, fmt.Sprintf("r%d-next-%d", r, i), now.Add(time.Second), refreshTTL)
			_, err := f.s.Rotate(f.ctx, "app", tok.Hash, next, now.Add(time.Second), grace)
			wantErr(t, fmt.Sprintf("round %d: Rotate of session %s after the ban", r, tok.SessionID), err, store.ErrRevoked)
		}
		if t.Failed() {
			return
		}
		if _, err := f.s.Unban(f.ctx, "app", u.ID, now.Add(2*time.Second)); err != nil {
			t.Fatalf("round %d: Unban: %v", r, err)
		}
	}
}

// testBanRefusesRotate: a banned user's session that is still live (as an
// import can bring it) rotates no more: its current token, and a retry of
// its rotated one within the grace period, are refused as a revoked
// session's are, and nothing changes. Unbanned, it rotates again.
func testBanRefusesRotate(t *testing.T, f *fixture) {
	t0 := at(0)
	u := store.User{ID: 1, AppID: "app", OpenID: "o", CreatedAt: t0, UpdatedAt: t0, Banned: true, BanReason: "spam"}
	s, tok := newSession(u, "sid", t0)
	rotated := tok
	rotated.RotatedAt = at(time.Minute)
	cur := nextToken("sid", "current", at(time.Minute), refreshTTL)
	rotated.Child = cur.Hash
	s.ExpiresAt, s.RefreshedAt = cur.ExpiresAt, cur.IssuedAt
	if err := f.s.Import(f.ctx, "app", []store.Record{{User: &u}, {Session: &s}, {Token: &rotated}, {Token: &cur}}); err != nil {
		t.Fatalf("Import of a banned user with a live session: %v", err)
	}

	now := at(time.Minute + time.Second) // within the grace period of the first rotation
	next := nextToken("sid", "next", now, refreshTTL)
	_, err := f.s.Rotate(f.ctx, "app", cur.Hash, next, now, grace)
	wantErr(t, "Rotate of a banned user's current token", err, store.ErrRevoked)
	_, err = f.s.Rotate(f.ctx, "app", rotated.Hash, next, now, grace)
	wantErr(t, "Rotate retrying a banned user's rotated token", err, store.ErrRevoked)
	equal(t, "current token after the refused rotations", f.token("app", cur.Hash), cur)
	f.noToken("app", next.Hash)
	equal(t, "session after the refused rotations", f.session("app", "sid"), s)

	if _, err := f.s.Unban(f.ctx, "app", u.ID, now); err != nil {
		t.Fatal(err)
	}
	if res := f.rotate("app", cur.Hash, next, now); res.Outcome != store.Rotated {
		t.Errorf("Rotate after Unban: outcome %v, want Rotated", res.Outcome)
	}
}
