package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/wxauth/caddy-wechat-auth/store"
)

// TestRevokedAtDatabaseClock: every kind of revocation made with a now an
// hour behind the database's clock is stamped with the database's clock,
// in the session and in the revocation feed other instances read.
func TestRevokedAtDatabaseClock(t *testing.T) {
	s := openFresh(t)
	ctx := context.Background()
	real := time.Now().UTC().Truncate(time.Microsecond) // the database keeps microseconds
	behind := real.Add(-time.Hour)
	login := func(openid, sid string, h byte) store.User {
		t.Helper()
		sess := store.Session{ID: sid, OpenID: openid, CreatedAt: behind}
		tok := store.RefreshToken{Hash: [32]byte{h}, SessionID: sid, IssuedAt: behind, ExpiresAt: real.Add(time.Hour), AccessID: "j", AccessIssuedAt: behind}
		u, _, _, err := s.Login(ctx, "app", store.NewUser{OpenID: openid}, sess, tok, behind)
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	login("o1", "logout", 1)
	u2 := login("o2", "all", 2)
	u3 := login("o3", "ban", 3)
	login("o4", "reuse", 4)

	check := func(what string, ss ...store.Session) {
		t.Helper()
		for _, x := range ss {
			if x.RevokedAt.Before(real) {
				t.Errorf("%s: session %s revoked at %v, the caller's clock; want the database's (after %v)", what, x.ID, x.RevokedAt, real)
			}
		}
	}
	x, err := s.RevokeSession(ctx, "app", "logout", store.ReasonLogout, behind)
	if err != nil {
		t.Fatal(err)
	}
	check("logout", x)
	xs, err := s.RevokeUserSessions(ctx, "app", u2.ID, store.ReasonLogoutAll, behind)
	if err != nil || len(xs) != 1 {
		t.Fatalf("RevokeUserSessions: %v, %d sessions", err, len(xs))
	}
	check("logout all", xs...)
	_, xs, err = s.Ban(ctx, "app", u3.ID, "spam", behind)
	if err != nil || len(xs) != 1 {
		t.Fatalf("Ban: %v, %d sessions", err, len(xs))
	}
	check("ban", xs...)
	next := func(h byte) store.RefreshToken {
		return store.RefreshToken{Hash: [32]byte{h, 1}, IssuedAt: behind, ExpiresAt: real.Add(time.Hour), AccessID: "k", AccessIssuedAt: behind}
	}
	if _, err := s.Rotate(ctx, "app", [32]byte{4}, next(40), behind, time.Second); err != nil {
		t.Fatal(err)
	}
	res, err := s.Rotate(ctx, "app", [32]byte{4}, next(41), behind.Add(time.Minute), time.Second)
	if err != nil || res.Outcome != store.Reused {
		t.Fatalf("presenting a rotated token after the grace: %v, %v; want Reused", res.Outcome, err)
	}
	check("reuse", res.Session)

	// The feed carries the same times as the sessions.
	rows, err := s.pool.Query(ctx, `SELECT r.session_id FROM wechat_auth_revocations r
		JOIN wechat_auth_sessions s ON s.app_id = r.app_id AND s.id = r.session_id
		WHERE r.revoked_at = s.revoked_at AND r.revoked_at >= $1`, real)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for rows.Next() {
		n++
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if n != 4 {
		t.Errorf("%d feed rows carry their session's database-stamped time, want 4", n)
	}
}
