package storetest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wxauth/caddy-wechat-auth/store"
)

// avatarTests cover SetAvatar, Avatar, the deletion of avatars no user
// refers to, and avatars in Export and Import.
var avatarTests = []struct {
	name string
	fn   func(*testing.T, *fixture)
}{
	{"Avatar/SetAndRead", testAvatarSetAndRead},
	{"Avatar/Refused", testAvatarRefused},
	{"Avatar/ReplacedIsDeleted", testAvatarReplaced},
	{"Avatar/SharedIsKept", testAvatarShared},
	{"Avatar/UpdateUser", testAvatarUpdateUser},
	{"Avatar/Concurrent", testAvatarConcurrent},
	{"Avatar/ReleaseRacesSet", testAvatarReleaseRacesSet},
	{"Avatar/ExportImport", testAvatarExportImport},
}

// testAvatar makes a storable avatar whose bytes are derived from label.
func testAvatar(label string) store.Avatar {
	data := []byte("\x89PNG\r\n\x1a\n avatar " + label)
	sum := sha256.Sum256(data)
	return store.Avatar{Hash: hex.EncodeToString(sum[:]), ContentType: "image/png", Data: data}
}

func avatarURL(a store.Avatar) string { return "/wx/avatar/" + a.Hash + ".png" }

func (f *fixture) setAvatar(app string, id uint64, a store.Avatar, now time.Time) store.User {
	f.t.Helper()
	u, err := f.s.SetAvatar(f.ctx, app, id, a, avatarURL(a), now)
	if err != nil {
		f.t.Fatalf("SetAvatar(user %d, %s): %v", id, a.Hash[:8], err)
	}
	return u
}

// hasAvatar reports whether app stores a, failing on errors other than
// ErrNotFound and on a stored avatar that differs from a.
func (f *fixture) hasAvatar(app string, a store.Avatar) bool {
	f.t.Helper()
	got, err := f.s.Avatar(f.ctx, app, a.Hash)
	if errors.Is(err, store.ErrNotFound) {
		return false
	}
	if err != nil {
		f.t.Fatalf("Avatar(%s): %v", a.Hash[:8], err)
	}
	if got.Hash != a.Hash || got.ContentType != a.ContentType || !bytes.Equal(got.Data, a.Data) {
		f.t.Fatalf("Avatar(%s) = %s %q %d bytes; want what was stored", a.Hash[:8], got.Hash, got.ContentType, len(got.Data))
	}
	return true
}

func testAvatarSetAndRead(t *testing.T, f *fixture) {
	u := f.login("app", "o1", "", at(0))
	a := testAvatar("a")
	got := f.setAvatar("app", u.ID, a, at(time.Minute))
	if got.AvatarURL != avatarURL(a) || !got.UpdatedAt.Equal(at(time.Minute)) || got.ID != u.ID {
		t.Fatalf("SetAvatar returned %+v", got)
	}
	if stored, err := f.s.User(f.ctx, "app", u.ID); err != nil || stored.AvatarURL != avatarURL(a) {
		t.Fatalf("User after SetAvatar: %+v, %v", stored, err)
	}
	if !f.hasAvatar("app", a) {
		t.Fatal("the avatar is not stored")
	}
	// Setting the same avatar again changes nothing and keeps it.
	f.setAvatar("app", u.ID, a, at(2*time.Minute))
	if !f.hasAvatar("app", a) {
		t.Fatal("setting the same avatar again deleted it")
	}
	// Avatars belong to their app.
	if _, err := f.s.Avatar(f.ctx, "other", a.Hash); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Avatar of another app: %v, want ErrNotFound", err)
	}
}

func testAvatarRefused(t *testing.T, f *fixture) {
	u := f.login("app", "o1", "", at(0))
	good := testAvatar("a")
	bad := []struct {
		name string
		a    store.Avatar
	}{
		{"hash of other data", store.Avatar{Hash: testAvatar("b").Hash, ContentType: "image/png", Data: good.Data}},
		{"upper-case hash", store.Avatar{Hash: strings.ToUpper(good.Hash), ContentType: "image/png", Data: good.Data}},
		{"svg", store.Avatar{Hash: good.Hash, ContentType: "image/svg+xml", Data: good.Data}},
		{"empty", func() store.Avatar {
			s := sha256.Sum256(nil)
			return store.Avatar{Hash: hex.EncodeToString(s[:]), ContentType: "image/png"}
		}()},
	}
	for _, tc := range bad {
		if _, err := f.s.SetAvatar(f.ctx, "app", u.ID, tc.a, "/wx/avatar/x.png", at(time.Minute)); !errors.Is(err, store.ErrInvalidAvatar) {
			t.Errorf("%s: SetAvatar = %v, want ErrInvalidAvatar", tc.name, err)
		}
	}
	if _, err := f.s.SetAvatar(f.ctx, "app", u.ID+100, good, avatarURL(good), at(time.Minute)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("SetAvatar of an unknown user = %v, want ErrNotFound", err)
	}
	if _, err := f.s.SetAvatar(f.ctx, "nosuchapp", u.ID, good, avatarURL(good), at(time.Minute)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("SetAvatar in an unknown app = %v, want ErrNotFound", err)
	}
	if f.hasAvatar("app", good) {
		t.Error("a refused SetAvatar stored the avatar")
	}
	if stored, _ := f.s.User(f.ctx, "app", u.ID); stored.AvatarURL != "" {
		t.Errorf("a refused SetAvatar changed avatar_url to %q", stored.AvatarURL)
	}
	for _, h := range []string{"", "../etc", strings.Repeat("g", 64), good.Hash + "0"} {
		if _, err := f.s.Avatar(f.ctx, "app", h); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Avatar(%q) = %v, want ErrNotFound", h, err)
		}
	}
}

func testAvatarReplaced(t *testing.T, f *fixture) {
	u := f.login("app", "o1", "", at(0))
	a, b := testAvatar("a"), testAvatar("b")
	f.setAvatar("app", u.ID, a, at(time.Minute))
	f.setAvatar("app", u.ID, b, at(2*time.Minute))
	if f.hasAvatar("app", a) {
		t.Error("the replaced avatar, which no one uses, is still stored")
	}
	if !f.hasAvatar("app", b) {
		t.Error("the new avatar is not stored")
	}
}

func testAvatarShared(t *testing.T, f *fixture) {
	u1 := f.login("app", "o1", "", at(0))
	u2 := f.login("app", "o2", "", at(0))
	a, b := testAvatar("a"), testAvatar("b")
	f.setAvatar("app", u1.ID, a, at(time.Minute))
	f.setAvatar("app", u2.ID, a, at(time.Minute))
	f.setAvatar("app", u1.ID, b, at(2*time.Minute))
	if !f.hasAvatar("app", a) {
		t.Fatal("an avatar another user still shows was deleted")
	}
	f.setAvatar("app", u2.ID, b, at(3*time.Minute))
	if f.hasAvatar("app", a) {
		t.Fatal("the avatar is still stored after its last user moved off it")
	}
	if !f.hasAvatar("app", b) {
		t.Fatal("the shared avatar is not stored")
	}
}

func testAvatarUpdateUser(t *testing.T, f *fixture) {
	u := f.login("app", "o1", "", at(0))
	a := testAvatar("a")
	f.setAvatar("app", u.ID, a, at(time.Minute))
	nick := "Ann"
	if _, err := f.s.UpdateUser(f.ctx, "app", u.ID, store.ProfilePatch{Nickname: &nick}, at(2*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if !f.hasAvatar("app", a) {
		t.Fatal("a profile update without avatar_url deleted the avatar")
	}
	url := "https://thirdwx.qlogo.cn/mmopen/default/132"
	got, err := f.s.UpdateUser(f.ctx, "app", u.ID, store.ProfilePatch{AvatarURL: &url}, at(3*time.Minute))
	if err != nil || got.AvatarURL != url {
		t.Fatalf("UpdateUser(avatar_url) = %q, %v", got.AvatarURL, err)
	}
	if f.hasAvatar("app", a) {
		t.Fatal("the avatar is still stored after its only user took another avatar_url")
	}
	// The user can come back to a stored avatar afterwards.
	f.setAvatar("app", u.ID, a, at(4*time.Minute))
	if !f.hasAvatar("app", a) {
		t.Fatal("the avatar set again is not stored")
	}
}

// testAvatarConcurrent has four users switch between two shared avatars
// at once; afterwards every user's avatar is stored and the one no one
// shows is not.
func testAvatarConcurrent(t *testing.T, f *fixture) {
	a, b := testAvatar("a"), testAvatar("b")
	var users []store.User
	for i := 0; i < 4; i++ {
		users = append(users, f.login("app", fmt.Sprintf("o%d", i), "", at(0)))
	}
	const rounds = 10
	var wg sync.WaitGroup
	errs := make(chan error, len(users)*rounds)
	for i, u := range users {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := 0; r < rounds; r++ {
				av := a
				if (i+r)%2 == 1 {
					av = b
				}
				if _, err := f.s.SetAvatar(f.ctx, "app", u.ID, av, avatarURL(av), at(time.Duration(r+1)*time.Second)); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent SetAvatar: %v", err)
	}
	shown := map[string]bool{}
	for _, u := range users {
		got, err := f.s.User(f.ctx, "app", u.ID)
		if err != nil {
			t.Fatal(err)
		}
		shown[got.AvatarURL] = true
	}
	for _, av := range []store.Avatar{a, b} {
		if has := f.hasAvatar("app", av); has != shown[avatarURL(av)] {
			t.Errorf("avatar %s: stored %v, shown by a user %v", av.Hash[:8], has, shown[avatarURL(av)])
		}
	}
	// Everyone moves to a third avatar: both others are gone.
	c := testAvatar("c")
	for _, u := range users {
		f.setAvatar("app", u.ID, c, at(time.Hour))
	}
	if f.hasAvatar("app", a) || f.hasAvatar("app", b) {
		t.Error("an avatar no one shows is still stored")
	}
}

// testAvatarReleaseRacesSet has users leave one shared avatar for an
// external avatar_url (UpdateUser, which deletes the avatar when it was
// its last user) while others upload that same avatar (SetAvatar), over
// and over: the deletion of an avatar no one shows must never take one a
// concurrent upload has just made a user's avatar.
func testAvatarReleaseRacesSet(t *testing.T, f *fixture) {
	a := testAvatar("a")
	external := "https://thirdwx.qlogo.cn/mmopen/default/132"
	var users []store.User
	for i := 0; i < 4; i++ {
		users = append(users, f.login("app", fmt.Sprintf("o%d", i), "", at(0)))
	}
	const rounds = 15
	var wg sync.WaitGroup
	errs := make(chan error, len(users))
	for i, u := range users {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := 0; r < rounds; r++ {
				now := at(time.Duration(r+1) * time.Second)
				var err error
				if (i+r)%2 == 0 {
					_, err = f.s.SetAvatar(f.ctx, "app", u.ID, a, avatarURL(a), now)
				} else {
					_, err = f.s.UpdateUser(f.ctx, "app", u.ID, store.ProfilePatch{AvatarURL: &external}, now)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent SetAvatar and UpdateUser: %v", err)
	}
	shown := false
	for _, u := range users {
		got, err := f.s.User(f.ctx, "app", u.ID)
		if err != nil {
			t.Fatal(err)
		}
		shown = shown || got.AvatarURL == avatarURL(a)
	}
	if has := f.hasAvatar("app", a); has != shown {
		t.Fatalf("avatar stored %v, shown by a user %v", has, shown)
	}
	// The last user to show it leaves it: it goes.
	for _, u := range users {
		if _, err := f.s.UpdateUser(f.ctx, "app", u.ID, store.ProfilePatch{AvatarURL: &external}, at(time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	if f.hasAvatar("app", a) {
		t.Fatal("an avatar no one shows is still stored")
	}
}

func testAvatarExportImport(t *testing.T, f *fixture) {
	u1 := f.login("app", "o1", "", at(0))
	u2 := f.login("app", "o2", "", at(0))
	f.login("app", "o3", "", at(0))
	a := testAvatar("a")
	f.setAvatar("app", u1.ID, a, at(time.Minute))
	f.setAvatar("app", u2.ID, a, at(time.Minute))
	recs := f.export("app")
	var found *store.AvatarRecord
	lastUser, avatarAt := -1, -1
	for i, r := range recs {
		switch {
		case r.User != nil:
			lastUser = i
		case r.Avatar != nil:
			found, avatarAt = r.Avatar, i
		}
	}
	if found == nil {
		t.Fatalf("export has no avatar record: %v", recs)
	}
	if avatarAt < lastUser {
		t.Errorf("the avatar record comes before a user record")
	}
	if found.Hash != a.Hash || !bytes.Equal(found.Data, a.Data) || fmt.Sprint(found.Users) != fmt.Sprint([]uint64{u1.ID, u2.ID}) {
		t.Fatalf("exported avatar %s with users %v", found.Hash[:8], found.Users)
	}

	o := f.other()
	if err := o.s.Import(o.ctx, "app", recs); err != nil {
		t.Fatalf("Import: %v", err)
	}
	if !o.hasAvatar("app", a) {
		t.Fatal("the imported store lacks the avatar")
	}
	if got := o.export("app"); len(got) != len(recs) {
		t.Fatalf("re-export has %d records, want %d", len(got), len(recs))
	}
	// The references came along: the avatar goes when both users leave it.
	b := testAvatar("b")
	o.setAvatar("app", u1.ID, b, at(time.Hour))
	if !o.hasAvatar("app", a) {
		t.Fatal("imported avatar deleted while user 2 still shows it")
	}
	o.setAvatar("app", u2.ID, b, at(time.Hour))
	if o.hasAvatar("app", a) {
		t.Fatal("imported avatar kept after its last user left it")
	}

	// An avatar whose user is neither imported nor stored, or a user that
	// already has one, is refused, and nothing is written.
	bad := []store.Record{{Avatar: &store.AvatarRecord{Avatar: testAvatar("z"), Users: []uint64{999}}}}
	if err := o.s.Import(o.ctx, "app", bad); err == nil {
		t.Error("Import of an avatar of an unknown user succeeded")
	}
	dup := []store.Record{{Avatar: &store.AvatarRecord{Avatar: testAvatar("y"), Users: []uint64{u1.ID}}}}
	if err := o.s.Import(o.ctx, "app", dup); !errors.Is(err, store.ErrConflict) {
		t.Errorf("Import of a second avatar for user %d = %v, want ErrConflict", u1.ID, err)
	}
	if o.hasAvatar("app", testAvatar("y")) || o.hasAvatar("app", testAvatar("z")) {
		t.Error("a refused import stored an avatar")
	}
	wrong := testAvatar("w")
	wrong.Data = append(wrong.Data, 'x')
	if err := o.s.Import(o.ctx, "app", []store.Record{{Avatar: &store.AvatarRecord{Avatar: wrong, Users: []uint64{3}}}}); err == nil {
		t.Error("Import of an avatar whose hash does not match its data succeeded")
	}
}
