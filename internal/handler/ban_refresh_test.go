package handler

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/wxauth/caddy-wechat-auth/store"
	"github.com/wxauth/caddy-wechat-auth/store/bolt"
)

// TestRefreshBannedUser: no refresh issues tokens for a banned user. A
// ban through the handler revokes the sessions, so the refresh answers 401
// invalid_grant and the access token stops working at once. A session of
// a banned user that is still live in the store (as an import of a banned
// user brings it) is refused the same way, for its current refresh token
// and for a retry of a just-rotated one.
func TestRefreshBannedUser(t *testing.T) {
	t.Run("banned through the handler", func(t *testing.T) {
		hs := newHarness(t)
		access, rt := hs.login("o-banned")
		u, err := hs.st.UserByOpenID(context.Background(), testApp, "o-banned")
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := hs.h.Ban(context.Background(), u.ID, "spam"); err != nil {
			t.Fatal(err)
		}
		want(t, hs.refresh(rt), 401, CodeInvalidGrant)
		want(t, hs.guard(access), 401, "")
	})

	t.Run("live session of a banned user", func(t *testing.T) {
		hs := newHarness(t)
		_, spent := hs.login("o-imported")
		rotated := hs.refresh(spent) // the retry of spent is within the grace period
		want(t, rotated, 200, "")
		current := rotated.body["refresh_token"].(string)

		// Move the app into a second store with the user banned but its
		// session untouched.
		ctx := context.Background()
		var recs []store.Record
		if err := hs.st.Export(ctx, testApp, func(r store.Record) error {
			if r.User != nil {
				r.User.Banned, r.User.BanReason = true, "imported banned"
			}
			recs = append(recs, r)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		st, err := bolt.Open(filepath.Join(t.TempDir(), "imported.db"), bolt.Options{NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		if err := st.Import(ctx, testApp, recs); err != nil {
			t.Fatal(err)
		}
		hs2 := newHarnessWith(t, st, hs.clock, NewRevocations())
		hs2.clock.Advance(time.Second)
		want(t, hs2.refresh(current), 401, CodeInvalidGrant)
		want(t, hs2.refresh(spent), 401, CodeInvalidGrant)
	})
}
