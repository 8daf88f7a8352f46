package bolt

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/wxauth/caddy-wechat-auth/store"
	"github.com/wxauth/caddy-wechat-auth/store/storetest"
)

// TestBackupHoldsAvatars: a backup taken while serving is a database file
// that has the avatars and who shows them.
func TestBackupHoldsAvatars(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(filepath.Join(dir, "live.db"), Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	u, _, err := storetest.CreateUser(ctx, s, "app", store.NewUser{OpenID: "o1"}, now)
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("\x89PNG avatar")
	sum := sha256.Sum256(data)
	a := store.Avatar{Hash: hex.EncodeToString(sum[:]), ContentType: "image/png", Data: data}
	if _, err := s.SetAvatar(ctx, "app", u.ID, a, "/wx/avatar/"+a.Hash+".png", now); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := s.Backup(ctx, &buf); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "backup.db")
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	b, err := Open(path, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	got, err := b.Avatar(ctx, "app", a.Hash)
	if err != nil || !bytes.Equal(got.Data, data) {
		t.Fatalf("Avatar from the backup: %v", err)
	}
	var recs []store.Record
	if err := b.Export(ctx, "app", func(r store.Record) error { recs = append(recs, r); return nil }); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, r := range recs {
		if r.Avatar != nil && r.Avatar.Hash == a.Hash && len(r.Avatar.Users) == 1 && r.Avatar.Users[0] == u.ID {
			found = true
		}
	}
	if !found {
		t.Fatal("the backup does not know who shows the avatar")
	}
}

// TestAvatarsOnOldFile: a file written before avatars existed (no avatar
// buckets) reads as having none, and takes one.
func TestAvatarsOnOldFile(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "old.db"), Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	u, _, err := storetest.CreateUser(ctx, s, "app", store.NewUser{OpenID: "o1"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256([]byte("x"))
	if _, err := s.Avatar(ctx, "app", hex.EncodeToString(h[:])); err == nil {
		t.Fatal("an app without avatar buckets found an avatar")
	}
	url := "https://example.com/a.png"
	if _, err := s.UpdateUser(ctx, "app", u.ID, store.ProfilePatch{AvatarURL: &url}, time.Now()); err != nil {
		t.Fatalf("UpdateUser(avatar_url) on an app without avatar buckets: %v", err)
	}
}
