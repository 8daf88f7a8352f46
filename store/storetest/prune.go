package storetest

import (
	"testing"
	"time"

	"github.com/wxauth/caddy-wechat-auth/store"
)

func testPrune(t *testing.T, f *fixture) {
	u := f.login("app", "o", "", at(0))
	ub := f.login("app-b", "o", "", at(0))
	h := time.Hour
	// session starts a session of user whose first token lives ttl.
	session := func(user store.User, sid string, ttl time.Duration) store.RefreshToken {
		t.Helper()
		s, tok := newSession(user, sid, at(0))
		tok.ExpiresAt = at(ttl)
		s.ExpiresAt = tok.ExpiresAt
		f.createSession(s, tok)
		return tok
	}
	// s1: rotated once, expires at 2h: gone with both tokens (3 records).
	t1a := session(u, "s1", h)
	t1b := nextToken("s1", "s1-b", at(30*time.Minute), 90*time.Minute)
	f.rotate("app", t1a.Hash, t1b, at(30*time.Minute))
	// s2: rotated once, alive until 10h; its first token expired at 1h
	// (1 record).
	t2a := session(u, "s2", h)
	t2b := nextToken("s2", "s2-b", at(30*time.Minute), 10*h)
	f.rotate("app", t2a.Hash, t2b, at(30*time.Minute))
	// s3: revoked at 1h, before revokedBefore: gone with its token (2).
	t3a := session(u, "s3", 10*h)
	if _, err := f.s.RevokeSession(f.ctx, "app", "s3", "logout", at(h)); err != nil {
		t.Fatal(err)
	}
	// s4: revoked at 4h, after revokedBefore: kept.
	t4a := session(u, "s4", 10*h)
	s4, err := f.s.RevokeSession(f.ctx, "app", "s4", "logout", at(4*h))
	if err != nil {
		t.Fatal(err)
	}
	// s5: active, alive: kept.
	t5a := session(u, "s5", 10*h)
	// s6 in another app, expired at 1h: gone with its token (2).
	t6a := session(ub, "s6", h)

	const wantDeleted = 3 + 1 + 2 + 2
	now, revokedBefore := at(3*h), at(2*h)
	n, err := f.s.Prune(f.ctx, now, revokedBefore)
	if err != nil {
		t.Fatalf("Prune: %v", err)
	}
	if n != wantDeleted {
		t.Errorf("Prune deleted %d records, want %d", n, wantDeleted)
	}

	gone := []struct {
		app string
		sid string
		tok [32]byte
	}{
		{"app", "s1", t1a.Hash}, {"app", "s1", t1b.Hash},
		{"app", "", t2a.Hash},
		{"app", "s3", t3a.Hash},
		{"app-b", "s6", t6a.Hash},
	}
	for _, g := range gone {
		f.noToken(g.app, g.tok)
		if g.sid != "" {
			f.noSession(g.app, g.sid)
		}
	}
	kept := []struct {
		sid string
		tok [32]byte
	}{{"s2", t2b.Hash}, {"s4", t4a.Hash}, {"s5", t5a.Hash}}
	for _, k := range kept {
		f.session("app", k.sid)
		f.token("app", k.tok)
	}
	revs, err := f.s.Revocations(f.ctx, "app", time.Time{})
	if err != nil || len(revs) != 1 || revs[0].SessionID != "s4" || !revs[0].RevokedAt.Equal(s4.RevokedAt) {
		t.Errorf("Revocations after Prune = %+v, %v; want only s4", revs, err)
	}

	// A second sweep finds nothing.
	if n, err := f.s.Prune(f.ctx, now, revokedBefore); err != nil || n != 0 {
		t.Errorf("second Prune = %d, %v; want 0", n, err)
	}
	// What is left works: the survivor rotates, and a user-wide
	// revocation sees only live sessions.
	if res := f.rotate("app", t2b.Hash, nextToken("s2", "s2-c", now, 10*h), now); res.Outcome != store.Rotated {
		t.Errorf("Rotate of a survivor: outcome %v, want Rotated", res.Outcome)
	}
	revoked, err := f.s.RevokeUserSessions(f.ctx, "app", u.ID, "logout_all", now)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, s := range revoked {
		ids = append(ids, s.ID)
	}
	if len(ids) != 2 || !(ids[0] == "s2" && ids[1] == "s5" || ids[0] == "s5" && ids[1] == "s2") {
		t.Errorf("RevokeUserSessions after Prune revoked %v, want s2 and s5", ids)
	}
	// Users survive pruning.
	if _, err := f.s.User(f.ctx, "app-b", ub.ID); err != nil {
		t.Errorf("User after Prune: %v", err)
	}
}
