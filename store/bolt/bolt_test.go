package bolt

import (
	"context"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/wxauth/caddy-wechat-auth/store"
	"github.com/wxauth/caddy-wechat-auth/store/storetest"
)

var base = time.Date(2030, time.March, 4, 5, 6, 7, 0, time.UTC)

// openTemp opens a durable store in a fresh temporary directory and closes
// it when the test ends.
func openTemp(t *testing.T) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "wechat_auth", "app.db"), Options{})
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

func TestOpenCreatesPrivateFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	path := filepath.Join(dir, "app.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	if s.Path() != path {
		t.Errorf("Path() = %q, want %q", s.Path(), path)
	}
	for _, c := range []struct {
		path string
		perm os.FileMode
	}{{dir, 0o700}, {path, 0o600}} {
		fi, err := os.Stat(c.path)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got&^c.perm != 0 {
			t.Errorf("%s has mode %v, want at most %v", c.path, got, c.perm)
		}
	}
}

func TestOpenRejects(t *testing.T) {
	dir := t.TempDir()
	notBolt := filepath.Join(dir, "not-bolt.db")
	if err := os.WriteFile(notBolt, []byte(strings.Repeat("not a bolt file\n", 512)), 0o600); err != nil {
		t.Fatal(err)
	}
	future := filepath.Join(dir, "future.db")
	writeRaw(t, future, func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(keyFormat, []byte{99})
	})
	noApps := filepath.Join(dir, "no-apps.db")
	writeRaw(t, noApps, func(tx *bbolt.Tx) error { return tx.DeleteBucket(bucketApps) })

	tests := []struct {
		name, path, want string
	}{
		{"empty path", "", "empty path"},
		{"not a bolt file", notBolt, "opening bolt store"},
		{"newer format", future, "unsupported format version 99"},
		{"missing apps bucket", noApps, "corrupt"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Open(tc.path, Options{Timeout: time.Second})
			if err == nil {
				_ = s.Close()
				t.Fatal("Open succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Open error %q does not mention %q", err, tc.want)
			}
		})
	}
}

// writeRaw creates a store at path, closes it and applies fn to the raw
// bbolt file.
func writeRaw(t *testing.T, path string, fn func(*bbolt.Tx) error) {
	t.Helper()
	s, err := Open(path, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(fn); err != nil {
		t.Fatal(err)
	}
}

func TestLockTimeout(t *testing.T) {
	path := filepath.Join(t.TempDir(), "app.db")
	first, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	const timeout = 150 * time.Millisecond
	second, err := Open(path, Options{Timeout: timeout})
	if err == nil {
		_ = second.Close()
		_ = first.Close()
		t.Fatal("second Open of a locked file succeeded")
	}
	if !errors.Is(err, ErrLocked) || !errors.Is(err, bolterrors.ErrTimeout) {
		t.Errorf("second Open error %v, want ErrLocked wrapping bbolt's timeout", err)
	}
	if !strings.Contains(err.Error(), path) {
		t.Errorf("second Open error %q does not name the file", err)
	}
	// Once the first is closed the file opens again.
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	third, err := Open(path, Options{Timeout: timeout})
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	if err := third.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := third.Close(); !errors.Is(err, store.ErrClosed) {
		t.Errorf("second Close: %v, want ErrClosed", err)
	}
}

func TestReopenKeepsEverything(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "app.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	u1, _, err := storetest.CreateUser(ctx, s, "app", store.NewUser{OpenID: "o1", UnionID: "u1", Nickname: "Ann"}, base)
	if err != nil {
		t.Fatal(err)
	}
	u2, _, err := storetest.CreateUser(ctx, s, "app", store.NewUser{OpenID: "o2"}, base)
	if err != nil {
		t.Fatal(err)
	}
	phone := "555"
	u2, err = s.UpdateUser(ctx, "app", u2.ID, store.ProfilePatch{Phone: &phone}, base.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	tok := store.RefreshToken{Hash: sha256.Sum256([]byte("t0")), SessionID: "sid", IssuedAt: base, ExpiresAt: base.Add(time.Hour), AccessID: "a0", AccessIssuedAt: base}
	sess := store.Session{ID: "sid", AppID: "app", UserID: u1.ID, OpenID: "o1", UnionID: "u1", SealedSessionKey: []byte{1, 2, 3}, CreatedAt: base}
	if err := storetest.CreateSession(ctx, s, sess, tok); err != nil {
		t.Fatal(err)
	}
	next := store.RefreshToken{Hash: sha256.Sum256([]byte("t1")), SessionID: "sid", IssuedAt: base.Add(time.Minute), ExpiresAt: base.Add(2 * time.Hour), AccessID: "a1", AccessIssuedAt: base.Add(time.Minute)}
	rot, err := s.Rotate(ctx, "app", tok.Hash, next, base.Add(time.Minute), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	tok2 := store.RefreshToken{Hash: sha256.Sum256([]byte("t2")), SessionID: "sid2", IssuedAt: base, ExpiresAt: base.Add(time.Hour)}
	if err := storetest.CreateSession(ctx, s, store.Session{ID: "sid2", AppID: "app", UserID: u2.ID, CreatedAt: base}, tok2); err != nil {
		t.Fatal(err)
	}
	revoked, err := s.RevokeSession(ctx, "app", "sid2", "logout", base.Add(2*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	secret, err := s.Secret(ctx, "app", "key", func() ([]byte, error) { return []byte("s3cret"), nil })
	if err != nil {
		t.Fatal(err)
	}
	rotatedTok, err := s.RefreshToken(ctx, "app", tok.Hash)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s, err = Open(path, Options{})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	checks := []struct {
		name string
		got  func() (any, error)
		want any
	}{
		{"user 1", func() (any, error) { return s.User(ctx, "app", u1.ID) }, u1},
		{"user 2 by openid", func() (any, error) { return s.UserByOpenID(ctx, "app", "o2") }, u2},
		{"user 1 by unionid", func() (any, error) { return s.UserByUnionID(ctx, "app", "u1") }, u1},
		{"rotated session", func() (any, error) { return s.Session(ctx, "app", "sid") }, rot.Session},
		{"revoked session", func() (any, error) { return s.Session(ctx, "app", "sid2") }, revoked},
		{"rotated token", func() (any, error) { return s.RefreshToken(ctx, "app", tok.Hash) }, rotatedTok},
		{"current token", func() (any, error) { return s.RefreshToken(ctx, "app", next.Hash) }, rot.Token},
		{"revocations", func() (any, error) { return s.Revocations(ctx, "app", time.Time{}) }, []store.Revocation{{AppID: "app", SessionID: "sid2", UserID: u2.ID, RevokedAt: revoked.RevokedAt}}},
		{"secret", func() (any, error) {
			v, err := s.Secret(ctx, "app", "key", func() ([]byte, error) { return nil, errors.New("must not be called") })
			return string(v), err
		}, string(secret)},
	}
	for _, c := range checks {
		got, err := c.got()
		if err != nil {
			t.Errorf("%s after reopen: %v", c.name, err)
			continue
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s after reopen:\n got %+v\nwant %+v", c.name, got, c.want)
		}
	}
	// Ids continue where they stopped.
	u3, created, err := storetest.CreateUser(ctx, s, "app", store.NewUser{OpenID: "o3"}, base.Add(time.Hour))
	if err != nil || !created || u3.ID != 3 {
		t.Errorf("new user after reopen: id %d, created %v, %v; want id 3", u3.ID, created, err)
	}
}

func TestCorruptRecordIsAnError(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "app.db")
	s, err := Open(path, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := storetest.CreateUser(ctx, s, "app", store.NewUser{OpenID: "o"}, base); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		users := tx.Bucket(bucketApps).Bucket([]byte("app")).Bucket(bucketUsers)
		return users.Put(idKey(1), []byte{recordV1, 200, 200, 200})
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	s, err = Open(path, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	for name, call := range map[string]func() error{
		"User":         func() error { _, err := s.User(ctx, "app", 1); return err },
		"UserByOpenID": func() error { _, err := s.UserByOpenID(ctx, "app", "o"); return err },
		"Login": func() error {
			_, _, err := storetest.LoginUser(ctx, s, "app", store.NewUser{OpenID: "o", UnionID: "u"}, base)
			return err
		},
	} {
		err := call()
		if err == nil || errors.Is(err, store.ErrNotFound) || !errors.Is(err, errBadRecord) {
			t.Errorf("%s of a corrupt record: %v, want a malformed-record error", name, err)
		}
	}
}
