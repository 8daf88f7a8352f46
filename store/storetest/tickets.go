package storetest

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/wxauth/caddy-wechat-auth/store"
)

// ticketTests cover CreateTicket and RedeemTicket.
var ticketTests = []struct {
	name string
	fn   func(*testing.T, *fixture)
}{
	{"Ticket/Redeem", testTicketRedeem},
	{"Ticket/SingleUse", testTicketSingleUse},
	{"Ticket/Expired", testTicketExpired},
	{"Ticket/SessionEnded", testTicketSessionEnded},
	{"Ticket/CreateRefused", testTicketCreateRefused},
	{"Ticket/Concurrent", testTicketConcurrent},
	{"Ticket/AppIsolation", testTicketAppIsolation},
}

// newTicket builds a ticket of s asked at t, living a minute.
func newTicket(s store.Session, label string, t time.Time) store.Ticket {
	return store.Ticket{Hash: hash("ticket/" + label), SessionID: s.ID, UserID: s.UserID, Next: "/page?x=1",
		CreatedAt: t, ExpiresAt: t.Add(time.Minute)}
}

// createTicket stores a ticket and fails the test on error.
func (f *fixture) createTicket(app string, tk store.Ticket, now time.Time) {
	f.t.Helper()
	if err := f.s.CreateTicket(f.ctx, app, tk, now); err != nil {
		f.t.Fatalf("CreateTicket: %v", err)
	}
}

// webSession builds the session a redemption at t stores.
func webSession(app, sid string, t time.Time) (store.Session, store.RefreshToken) {
	tok := nextToken(sid, "web/"+sid, t, refreshTTL)
	return store.Session{ID: sid, AppID: app, CreatedAt: t, ExpiresAt: tok.ExpiresAt}, tok
}

func testTicketRedeem(t *testing.T, f *fixture) {
	u := f.login("app", "o", "un", at(0))
	asking, _ := f.startSession(u, "sid-mp", at(0))
	tk := newTicket(asking, "1", at(time.Minute))
	f.createTicket("app", tk, at(time.Minute))

	ws, wt := webSession("app", "sid-web", at(time.Minute+10*time.Second))
	got, stored, err := f.s.RedeemTicket(f.ctx, "app", tk.Hash, ws, wt, at(time.Minute+10*time.Second))
	if err != nil {
		t.Fatalf("RedeemTicket: %v", err)
	}
	equal(t, "redeemed ticket", got, tk)
	if stored.UserID != u.ID || stored.OpenID != "o" || stored.UnionID != "un" || stored.ID != "sid-web" || stored.Revoked() {
		t.Fatalf("stored session %+v, want a live session of user %d", stored, u.ID)
	}
	equal(t, "stored session", f.session("app", "sid-web"), stored)
	if rt, err := f.s.RefreshToken(f.ctx, "app", wt.Hash); err != nil || rt.SessionID != "sid-web" {
		t.Fatalf("first refresh token of the new session: %+v, %v", rt, err)
	}
	// The new session is its own: revoking the asking one leaves it.
	if _, err := f.s.RevokeSession(f.ctx, "app", asking.ID, store.ReasonLogout, at(2*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if s := f.session("app", "sid-web"); s.Revoked() {
		t.Fatal("ending the asking session ended the web session")
	}
}

func testTicketSingleUse(t *testing.T, f *fixture) {
	u := f.login("app", "o", "", at(0))
	asking, _ := f.startSession(u, "sid-mp", at(0))
	tk := newTicket(asking, "1", at(0))
	f.createTicket("app", tk, at(0))
	ws, wt := webSession("app", "sid-web-1", at(time.Second))
	if _, _, err := f.s.RedeemTicket(f.ctx, "app", tk.Hash, ws, wt, at(time.Second)); err != nil {
		t.Fatal(err)
	}
	ws2, wt2 := webSession("app", "sid-web-2", at(2*time.Second))
	if _, _, err := f.s.RedeemTicket(f.ctx, "app", tk.Hash, ws2, wt2, at(2*time.Second)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second redemption: %v, want ErrNotFound", err)
	}
	if _, err := f.s.Session(f.ctx, "app", "sid-web-2"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a refused redemption stored a session: %v", err)
	}
	// Unknown hash.
	if _, _, err := f.s.RedeemTicket(f.ctx, "app", hash("nope"), ws2, wt2, at(2*time.Second)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown ticket: %v", err)
	}
}

func testTicketExpired(t *testing.T, f *fixture) {
	u := f.login("app", "o", "", at(0))
	asking, _ := f.startSession(u, "sid-mp", at(0))
	tk := newTicket(asking, "1", at(0))
	f.createTicket("app", tk, at(0))
	ws, wt := webSession("app", "sid-web", at(time.Minute))
	if _, _, err := f.s.RedeemTicket(f.ctx, "app", tk.Hash, ws, wt, at(time.Minute)); !errors.Is(err, store.ErrExpired) {
		t.Fatalf("redemption at expiry: %v, want ErrExpired", err)
	}
	if _, err := f.s.Session(f.ctx, "app", "sid-web"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("an expired ticket stored a session: %v", err)
	}
	// The refused redemption consumed it all the same.
	if _, _, err := f.s.RedeemTicket(f.ctx, "app", tk.Hash, ws, wt, at(time.Minute)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("expired ticket presented again: %v, want ErrNotFound", err)
	}
	// A later CreateTicket deletes tickets that expired unredeemed.
	old := newTicket(asking, "old", at(0))
	f.createTicket("app", old, at(0))
	f.createTicket("app", newTicket(asking, "new", at(2*time.Minute)), at(2*time.Minute))
	ws2, wt2 := webSession("app", "sid-web-2", at(30*time.Second))
	if _, _, err := f.s.RedeemTicket(f.ctx, "app", old.Hash, ws2, wt2, at(30*time.Second)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("expired ticket after a later CreateTicket: %v, want ErrNotFound (deleted)", err)
	}
}

func testTicketSessionEnded(t *testing.T, f *fixture) {
	u := f.login("app", "o", "", at(0))
	asking, _ := f.startSession(u, "sid-mp", at(0))
	tk := newTicket(asking, "1", at(0))
	f.createTicket("app", tk, at(0))
	if _, err := f.s.RevokeSession(f.ctx, "app", asking.ID, store.ReasonLogout, at(time.Second)); err != nil {
		t.Fatal(err)
	}
	ws, wt := webSession("app", "sid-web", at(2*time.Second))
	if _, _, err := f.s.RedeemTicket(f.ctx, "app", tk.Hash, ws, wt, at(2*time.Second)); !errors.Is(err, store.ErrRevoked) {
		t.Fatalf("ticket of an ended session: %v, want ErrRevoked", err)
	}
	if _, err := f.s.Session(f.ctx, "app", "sid-web"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a ticket of an ended session stored a session: %v", err)
	}

	// A ban ends the sessions too.
	u2 := f.login("app", "o2", "", at(0))
	asking2, _ := f.startSession(u2, "sid-mp-2", at(0))
	tk2 := newTicket(asking2, "2", at(0))
	f.createTicket("app", tk2, at(0))
	if _, _, err := f.s.Ban(f.ctx, "app", u2.ID, "spam", at(time.Second)); err != nil {
		t.Fatal(err)
	}
	ws2, wt2 := webSession("app", "sid-web-2", at(2*time.Second))
	if _, _, err := f.s.RedeemTicket(f.ctx, "app", tk2.Hash, ws2, wt2, at(2*time.Second)); !errors.Is(err, store.ErrRevoked) && !errors.Is(err, store.ErrBanned) {
		t.Fatalf("ticket of a banned user: %v, want ErrRevoked or ErrBanned", err)
	}
}

func testTicketCreateRefused(t *testing.T, f *fixture) {
	u := f.login("app", "o", "", at(0))
	live, _ := f.startSession(u, "sid-live", at(0))
	ended, _ := f.startSession(u, "sid-ended", at(0))
	if _, err := f.s.RevokeSession(f.ctx, "app", ended.ID, store.ReasonLogout, at(time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := f.s.CreateTicket(f.ctx, "app", newTicket(ended, "e", at(2*time.Second)), at(2*time.Second)); !errors.Is(err, store.ErrRevoked) {
		t.Errorf("ticket of a revoked session: %v, want ErrRevoked", err)
	}
	ghost := store.Session{ID: "sid-none", UserID: u.ID}
	if err := f.s.CreateTicket(f.ctx, "app", newTicket(ghost, "g", at(0)), at(0)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("ticket of an unknown session: %v, want ErrNotFound", err)
	}
	if err := f.s.CreateTicket(f.ctx, "app", newTicket(live, "x", at(refreshTTL)), at(refreshTTL)); !errors.Is(err, store.ErrExpired) {
		t.Errorf("ticket of an expired session: %v, want ErrExpired", err)
	}
	tk := newTicket(live, "dup", at(0))
	f.createTicket("app", tk, at(0))
	if err := f.s.CreateTicket(f.ctx, "app", tk, at(0)); err == nil {
		t.Error("a ticket hash was stored twice")
	}
	bad := newTicket(live, "z", at(0))
	bad.Hash = [32]byte{}
	if err := f.s.CreateTicket(f.ctx, "app", bad, at(0)); err == nil {
		t.Error("a ticket without hash was accepted")
	}
}

func testTicketConcurrent(t *testing.T, f *fixture) {
	u := f.login("app", "o", "", at(0))
	asking, _ := f.startSession(u, "sid-mp", at(0))
	tk := newTicket(asking, "1", at(0))
	f.createTicket("app", tk, at(0))
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ws, wt := webSession("app", "sid-web-"+string(rune('a'+i)), at(time.Second))
			_, _, errs[i] = f.s.RedeemTicket(f.ctx, "app", tk.Hash, ws, wt, at(time.Second))
		}()
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, store.ErrNotFound):
			t.Errorf("concurrent redemption: %v", err)
		}
	}
	if ok != 1 {
		t.Fatalf("%d concurrent redemptions succeeded, want exactly 1", ok)
	}
	ss, err := f.s.UserSessions(f.ctx, "app", u.ID)
	if err != nil || len(ss) != 2 {
		t.Fatalf("user has %d sessions (%v), want the asking one and one web session", len(ss), err)
	}
}

func testTicketAppIsolation(t *testing.T, f *fixture) {
	u := f.login("app", "o", "", at(0))
	f.login("other", "o", "", at(0))
	asking, _ := f.startSession(u, "sid-mp", at(0))
	tk := newTicket(asking, "1", at(0))
	f.createTicket("app", tk, at(0))
	ws, wt := webSession("other", "sid-web", at(time.Second))
	if _, _, err := f.s.RedeemTicket(f.ctx, "other", tk.Hash, ws, wt, at(time.Second)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("ticket redeemed in another app: %v", err)
	}
	ws, wt = webSession("app", "sid-web", at(time.Second))
	if _, _, err := f.s.RedeemTicket(f.ctx, "app", tk.Hash, ws, wt, at(time.Second)); err != nil {
		t.Fatalf("the other app's attempt consumed the ticket: %v", err)
	}
}

// testSharedTicket: a ticket asked on one instance is redeemed on the
// other, once, even when both instances redeem it at once; a ticket of a
// session revoked on one instance is refused on the other.
func testSharedTicket(t *testing.T, p *pair) {
	u := p.a.login("app", "o", "", at(0))
	asking, _ := p.a.startSession(u, "sid-mp", at(0))
	tk := newTicket(asking, "1", at(0))
	p.a.createTicket("app", tk, at(0))

	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, f := range []*fixture{p.a, p.b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ws, wt := webSession("app", "sid-web-"+string(rune('a'+i)), at(time.Second))
			_, _, errs[i] = f.s.RedeemTicket(f.ctx, "app", tk.Hash, ws, wt, at(time.Second))
		}()
	}
	wg.Wait()
	if (errs[0] == nil) == (errs[1] == nil) {
		t.Fatalf("redemptions on both instances: %v, %v; want exactly one success", errs[0], errs[1])
	}
	for _, err := range errs {
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("the losing redemption: %v, want ErrNotFound", err)
		}
	}

	tk2 := newTicket(asking, "2", at(2*time.Second))
	p.b.createTicket("app", tk2, at(2*time.Second))
	if _, err := p.b.s.RevokeSession(p.b.ctx, "app", asking.ID, store.ReasonLogout, at(3*time.Second)); err != nil {
		t.Fatal(err)
	}
	ws, wt := webSession("app", "sid-web-c", at(4*time.Second))
	if _, _, err := p.a.s.RedeemTicket(p.a.ctx, "app", tk2.Hash, ws, wt, at(4*time.Second)); !errors.Is(err, store.ErrRevoked) {
		t.Fatalf("ticket of a session revoked on the other instance: %v, want ErrRevoked", err)
	}
}
