package handler

import (
	"testing"
	"time"

	"github.com/wxauth/caddy-wechat-auth/store"
)

// TestRevokedAt: a revocation stored at the microsecond (as PostgreSQL
// keeps it) still counts as made now; one made earlier does not.
func TestRevokedAt(t *testing.T) {
	now := time.Date(2026, 12, 2, 6, 0, 0, 123456789, time.UTC)
	for _, tc := range []struct {
		name string
		at   time.Time
		want bool
	}{
		{"same instant", now, true},
		{"stored to the microsecond", now.Truncate(time.Microsecond), true},
		{"a microsecond earlier", now.Truncate(time.Microsecond).Add(-time.Microsecond), false},
		{"a second earlier", now.Add(-time.Second), false},
	} {
		if got := revokedAt(store.Session{RevokedAt: tc.at}, now); got != tc.want {
			t.Errorf("%s: revokedAt = %v, want %v", tc.name, got, tc.want)
		}
	}
}
