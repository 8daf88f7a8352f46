package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/wxauth/caddy-wechat-auth/store"
	"github.com/wxauth/caddy-wechat-auth/store/storetest"
)

// encodeUserV1 and encodeSessionV1 write records as format 1 did.
func encodeUserV1(u *store.User) []byte {
	var e encoder
	e.uvarint(recordV1)
	e.str(u.OpenID)
	e.str(u.UnionID)
	e.str(u.Nickname)
	e.str(u.AvatarURL)
	e.varint(int64(u.Gender))
	e.str(u.Phone)
	e.time(u.CreatedAt)
	e.time(u.UpdatedAt)
	return e.b
}

func encodeSessionV1(s *store.Session) []byte {
	var e encoder
	e.uvarint(recordV1)
	e.uvarint(s.UserID)
	e.str(s.OpenID)
	e.str(s.UnionID)
	e.bytes(s.SealedSessionKey)
	e.time(s.CreatedAt)
	e.time(s.ExpiresAt)
	e.time(s.RevokedAt)
	e.str(s.RevokeReason)
	return e.b
}

// TestMigrateFromFormat1 turns a store into a format 1 file (records in
// version 1, no phone index, no session-by-user index, no user counter)
// and checks that Open upgrades it: lookups by phone, session lists and
// counts work, and the old records read as before.
func TestMigrateFromFormat1(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "v1.db")
	s, err := Open(path, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	var users []store.User
	for i := range 3 {
		u, _, err := storetest.CreateUser(ctx, s, "app", store.NewUser{OpenID: fmt.Sprintf("o-%d", i)}, base)
		if err != nil {
			t.Fatal(err)
		}
		phone := fmt.Sprintf("+86 1380000000%d", i%2) // users 0 and 2 share a phone
		if u, err = s.UpdateUser(ctx, "app", u.ID, store.ProfilePatch{Phone: &phone}, base); err != nil {
			t.Fatal(err)
		}
		users = append(users, u)
		sess := store.Session{ID: fmt.Sprintf("sid-%d", i), AppID: "app", UserID: u.ID, OpenID: u.OpenID, CreatedAt: base.Add(time.Duration(i) * time.Minute)}
		tok := store.RefreshToken{Hash: [32]byte{byte(i + 1)}, SessionID: sess.ID, IssuedAt: base, ExpiresAt: base.Add(time.Hour)}
		if err := storetest.CreateSession(ctx, s, sess, tok); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.RevokeSession(ctx, "app", "sid-1", store.ReasonLogout, base.Add(time.Minute)); err != nil {
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
		if err := tx.Bucket(bucketMeta).Put(keyFormat, binary.AppendUvarint(nil, 1)); err != nil {
			return err
		}
		app := tx.Bucket(bucketApps).Bucket([]byte("app"))
		for _, name := range [][]byte{bucketPhone, bucketAllUserSessions, bucketCounters} {
			if err := app.DeleteBucket(name); err != nil {
				return err
			}
		}
		ub, sb := app.Bucket(bucketUsers), app.Bucket(bucketSessions)
		for i := range users {
			if err := ub.Put(idKey(users[i].ID), encodeUserV1(&users[i])); err != nil {
				return err
			}
		}
		return sb.ForEach(func(k, v []byte) error {
			sess, err := decodeSession("app", string(k), v)
			if err != nil {
				return err
			}
			return sb.Put(k, encodeSessionV1(&sess))
		})
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}

	s, err = Open(path, Options{NoSync: true})
	if err != nil {
		t.Fatalf("Open of a format 1 file: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	got, err := s.UserByPhone(ctx, "app", "+86 13800000000")
	if err != nil || got.ID != users[0].ID || got.Phone != users[0].Phone {
		t.Errorf("UserByPhone after upgrade = %+v, %v; want user %d", got, err, users[0].ID)
	}
	if got, err := s.UserByPhone(ctx, "app", "+86 13800000001"); err != nil || got.ID != users[1].ID {
		t.Errorf("UserByPhone after upgrade = %+v, %v; want user %d", got, err, users[1].ID)
	}
	ss, err := s.UserSessions(ctx, "app", users[1].ID)
	if err != nil || len(ss) != 1 || ss[0].ID != "sid-1" || ss[0].RevokeReason != store.ReasonLogout {
		t.Errorf("UserSessions after upgrade = %+v, %v; want the revoked sid-1", ss, err)
	}
	st, err := s.Stats(ctx, "app", base)
	if want := (store.Stats{Users: 3, ActiveSessions: 2}); err != nil || st != want {
		t.Errorf("Stats after upgrade = %+v, %v; want %+v", st, err, want)
	}
	// New users keep counting from the rebuilt counter.
	if _, _, err := storetest.CreateUser(ctx, s, "app", store.NewUser{OpenID: "o-new"}, base); err != nil {
		t.Fatal(err)
	}
	if st, _ := s.Stats(ctx, "app", base); st.Users != 4 {
		t.Errorf("users after one more login = %d, want 4", st.Users)
	}
	// The file now says format 2.
	if err := s.view(func(tx *bbolt.Tx) error {
		if v, _ := binary.Uvarint(tx.Bucket(bucketMeta).Get(keyFormat)); v != formatVersion {
			return fmt.Errorf("format version %d after upgrade", v)
		}
		return nil
	}); err != nil {
		t.Error(err)
	}
}

// TestBackupWhileWriting takes a snapshot while four writers log new users
// in, and checks that no write fails, that the snapshot opens as a store
// and that it holds every user whose login returned before the backup
// started.
func TestBackupWhileWriting(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	for i := range 200 {
		if _, _, err := storetest.CreateUser(ctx, s, "app", store.NewUser{OpenID: fmt.Sprintf("pre-%d", i)}, base); err != nil {
			t.Fatal(err)
		}
	}
	var (
		stop   atomic.Bool
		wg     sync.WaitGroup
		failed atomic.Int64
		done   atomic.Int64
	)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 5000 && !stop.Load(); i++ {
				if _, _, err := storetest.LoginUser(ctx, s, "app", store.NewUser{OpenID: fmt.Sprintf("w%d-%d", w, i)}, base); err != nil {
					failed.Add(1)
					return
				}
				done.Add(1)
			}
		}()
	}
	var buf bytes.Buffer
	n, err := s.Backup(ctx, &buf)
	stop.Store(true)
	wg.Wait()
	if err != nil {
		t.Fatalf("Backup: %v", err)
	}
	if n != int64(buf.Len()) || n == 0 {
		t.Fatalf("Backup reported %d bytes, wrote %d", n, buf.Len())
	}
	if failed.Load() != 0 {
		t.Fatalf("%d writes failed during the backup", failed.Load())
	}

	path := filepath.Join(t.TempDir(), "restored.db")
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := Open(path, Options{})
	if err != nil {
		t.Fatalf("opening the snapshot: %v", err)
	}
	defer r.Close()
	for i := range 200 {
		if _, err := r.UserByOpenID(ctx, "app", fmt.Sprintf("pre-%d", i)); err != nil {
			t.Fatalf("user pre-%d missing from the snapshot: %v", i, err)
		}
	}
	st, err := r.Stats(ctx, "app", base)
	if err != nil || st.Users < 200 {
		t.Fatalf("snapshot Stats = %+v, %v", st, err)
	}
}

func TestBackupCanceled(t *testing.T) {
	s := openTemp(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Backup(ctx, &bytes.Buffer{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Backup with a cancelled context: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Backup(context.Background(), &bytes.Buffer{}); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("Backup after Close: %v", err)
	}
}

// BenchmarkBackup measures a snapshot of a store with 20,000 users, each
// with one session: bytes and time per backup.
func BenchmarkBackup(b *testing.B) {
	ctx := context.Background()
	s, err := Open(filepath.Join(b.TempDir(), "bench.db"), Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	for i := range 20000 {
		sid := fmt.Sprintf("sid-%d", i)
		sess := store.Session{ID: sid, SealedSessionKey: make([]byte, 60), CreatedAt: base}
		tok := store.RefreshToken{Hash: [32]byte{byte(i), byte(i >> 8), byte(i >> 16), 1}, SessionID: sid, IssuedAt: base, ExpiresAt: base.Add(720 * time.Hour)}
		if _, _, _, err := s.Login(ctx, "app", store.NewUser{OpenID: fmt.Sprintf("o-%028d", i)}, sess, tok, base); err != nil {
			b.Fatal(err)
		}
	}
	var n int64
	b.ResetTimer()
	for b.Loop() {
		var w countWriter
		if n, err = s.Backup(ctx, &w); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n), "bytes")
}

type countWriter struct{ n int64 }

func (w *countWriter) Write(p []byte) (int, error) { w.n += int64(len(p)); return len(p), nil }
