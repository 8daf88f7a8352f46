package postgres

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/wxauth/caddy-wechat-auth/internal/pgtest"
	"github.com/wxauth/caddy-wechat-auth/store"
	"github.com/wxauth/caddy-wechat-auth/store/storetest"
)

// testOptions keep tests quick: a short poll so a watcher test that loses
// its notification still ends soon.
var testOptions = Options{Timeout: 5 * time.Second, PollInterval: 200 * time.Millisecond}

// openDSN opens a store on dsn and closes it when the test ends.
func openDSN(t *testing.T, dsn string) *Store {
	t.Helper()
	s, err := Open(context.Background(), dsn, testOptions)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil && !errors.Is(err, store.ErrClosed) {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// openFresh opens a store in a fresh schema.
func openFresh(t *testing.T) *Store {
	t.Helper()
	dsn, _ := pgtest.SchemaDSN(t)
	return openDSN(t, dsn)
}

// TestRotateSetsRefreshedAt: a rotation records when it happened on the
// session, in the result and in the database.
func TestRotateSetsRefreshedAt(t *testing.T) {
	s := openFresh(t)
	ctx := context.Background()
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	u, _, err := storetest.CreateUser(ctx, s, "app", store.NewUser{OpenID: "o"}, now)
	if err != nil {
		t.Fatal(err)
	}
	first := store.RefreshToken{Hash: [32]byte{1}, SessionID: "sid", IssuedAt: now, ExpiresAt: now.Add(time.Hour), AccessIssuedAt: now}
	if err := storetest.CreateSession(ctx, s, store.Session{ID: "sid", AppID: "app", UserID: u.ID, OpenID: "o", CreatedAt: now}, first); err != nil {
		t.Fatal(err)
	}
	later := now.Add(time.Minute)
	next := store.RefreshToken{Hash: [32]byte{2}, IssuedAt: later, ExpiresAt: later.Add(time.Hour), AccessIssuedAt: later}
	res, err := s.Rotate(ctx, "app", first.Hash, next, later, 10*time.Second)
	if err != nil || res.Outcome != store.Rotated {
		t.Fatalf("Rotate = %v, %v", res.Outcome, err)
	}
	got, err := s.Session(ctx, "app", "sid")
	if err != nil {
		t.Fatal(err)
	}
	if !res.Session.RefreshedAt.Equal(later) || !got.RefreshedAt.Equal(later) {
		t.Errorf("RefreshedAt = %v in the result, %v stored; want %v", res.Session.RefreshedAt, got.RefreshedAt, later)
	}
}

// TestRetryable: a deadlock or a serialization failure is run again;
// anything else is not.
func TestRetryable(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{&pgconn.PgError{Code: "40P01"}, true},
		{fmt.Errorf("rotating: %w", &pgconn.PgError{Code: "40001"}), true},
		{&pgconn.PgError{Code: "23505"}, false},
		{errors.New("connection refused"), false},
		{nil, false},
	} {
		if got := retryable(tc.err); got != tc.want {
			t.Errorf("retryable(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

// TestCallRunsADeadlockedTransactionAgain: a call whose transaction
// PostgreSQL aborted for a deadlock is run once more, and succeeds.
func TestCallRunsADeadlockedTransactionAgain(t *testing.T) {
	s := openFresh(t)
	runs := 0
	err := s.call(context.Background(), "testing", func(context.Context) error {
		runs++
		if runs == 1 {
			return &pgconn.PgError{Code: "40P01", Message: "deadlock detected"}
		}
		return nil
	})
	if err != nil || runs != 2 {
		t.Fatalf("call = %v after %d runs, want nil after 2", err, runs)
	}
	runs = 0
	err = s.call(context.Background(), "testing", func(context.Context) error {
		runs++
		return &pgconn.PgError{Code: "40P01", Message: "deadlock detected"}
	})
	if err == nil || runs != 2 {
		t.Fatalf("call = %v after %d runs, want the error after 2", err, runs)
	}
}
