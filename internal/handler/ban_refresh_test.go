package handler

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/wxauth/caddy-wechat-auth/internal/pgtest"
	"github.com/wxauth/caddy-wechat-auth/store"
	"github.com/wxauth/caddy-wechat-auth/store/bolt"
	"github.com/wxauth/caddy-wechat-auth/store/postgres"
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

// TestBanRacesLogins: logins of one user through the handler from several
// clients while an operator bans the user, on both backends. Whatever the
// interleaving, once the ban has returned no token any of those logins
// got works: every access token is refused by the guard and every refresh
// token gets invalid_grant.
func TestBanRacesLogins(t *testing.T) {
	for _, backend := range []string{"bolt", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			hs := newHarness(t)
			if backend == "postgres" {
				dsn, _ := pgtest.SchemaDSN(t)
				st, err := postgres.Open(context.Background(), dsn, postgres.Options{})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { st.Close() })
				hs = newHarnessWith(t, st, hs.clock, NewRevocations())
			}
			hs.login("o-race")
			u, err := hs.st.UserByOpenID(context.Background(), testApp, "o-race")
			if err != nil {
				t.Fatal(err)
			}
			const workers, perWorker = 6, 150
			for w := range workers {
				for i := range perWorker {
					hs.wx.addCode(fmt.Sprintf("race-%d-%d", w, i), "o-race", "")
				}
			}
			type pair struct{ access, refresh string }
			var (
				wg     sync.WaitGroup
				mu     sync.Mutex
				issued []pair
				ready  = make(chan struct{})
				once   sync.Once
			)
			for w := range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range perWorker {
						r := hs.call("POST", "/wx/login", fmt.Sprintf(`{"code":"race-%d-%d"}`, w, i))
						switch {
						case r.status == 403 && r.body["error"] == CodeUserBanned:
							return
						case r.status != 200:
							t.Errorf("login: %d %s", r.status, r.raw)
							return
						}
						mu.Lock()
						issued = append(issued, pair{r.body["token"].(string), r.body["refresh_token"].(string)})
						if len(issued) >= 2*workers {
							once.Do(func() { close(ready) })
						}
						mu.Unlock()
					}
					t.Errorf("%d logins and none refused, though the user was banned", perWorker)
				}()
			}
			<-ready
			if _, _, err := hs.h.Ban(context.Background(), u.ID, "race"); err != nil {
				t.Fatal(err)
			}
			wg.Wait()
			if t.Failed() {
				return
			}
			for _, p := range issued {
				if r := hs.guard(p.access); r.status != 401 {
					t.Errorf("an access token issued to the banned user: %d %s", r.status, r.raw)
				}
				if r := hs.refresh(p.refresh); r.status != 401 || r.body["error"] != CodeInvalidGrant {
					t.Errorf("a refresh token issued to the banned user: %d %s", r.status, r.raw)
				}
			}
		})
	}
}
