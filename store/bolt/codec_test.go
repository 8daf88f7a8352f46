package bolt

import (
	"crypto/sha256"
	"reflect"
	"testing"
	"time"

	"github.com/wxauth/caddy-wechat-auth/store"
)

func TestCodecRoundTrip(t *testing.T) {
	cst := time.FixedZone("CST", 8*3600)
	t1 := time.Date(2030, 1, 2, 3, 4, 5, 123456789, cst)
	early := time.Date(1, 1, 1, 0, 0, 0, 1, time.UTC)
	users := []store.User{
		{ID: 1, AppID: "app"},
		{ID: 1<<64 - 1, AppID: "app", OpenID: "o", UnionID: "u", Nickname: "安娜\x00", AvatarURL: "https://x/", Gender: -3, Phone: "+86", CreatedAt: t1, UpdatedAt: early},
	}
	for _, u := range users {
		got, err := decodeUser(u.AppID, u.ID, encodeUser(&u))
		if err != nil {
			t.Fatalf("decodeUser: %v", err)
		}
		u.CreatedAt, u.UpdatedAt = u.CreatedAt.UTC(), u.UpdatedAt.UTC()
		if !reflect.DeepEqual(got, u) {
			t.Errorf("user round trip:\n got %+v\nwant %+v", got, u)
		}
	}
	sessions := []store.Session{
		{ID: "s", AppID: "app"},
		{ID: "s", AppID: "app", UserID: 7, OpenID: "o", UnionID: "u", SealedSessionKey: []byte{0, 1, 2}, CreatedAt: t1.UTC(), ExpiresAt: t1.Add(time.Hour).UTC(), RevokedAt: early, RevokeReason: "reuse"},
	}
	for _, s := range sessions {
		got, err := decodeSession(s.AppID, s.ID, encodeSession(&s))
		if err != nil {
			t.Fatalf("decodeSession: %v", err)
		}
		if !reflect.DeepEqual(got, s) {
			t.Errorf("session round trip:\n got %+v\nwant %+v", got, s)
		}
	}
	tokens := []store.RefreshToken{
		{Hash: sha256.Sum256([]byte("a"))},
		{Hash: sha256.Sum256([]byte("b")), SessionID: "s", IssuedAt: t1.UTC(), ExpiresAt: t1.Add(time.Hour).UTC(), RotatedAt: early, Child: sha256.Sum256([]byte("c")), AccessID: "j", AccessIssuedAt: t1.UTC()},
	}
	for _, tok := range tokens {
		got, err := decodeToken(tok.Hash, encodeToken(&tok))
		if err != nil {
			t.Fatalf("decodeToken: %v", err)
		}
		if !reflect.DeepEqual(got, tok) {
			t.Errorf("token round trip:\n got %+v\nwant %+v", got, tok)
		}
	}
}

func TestTimeKeySorts(t *testing.T) {
	times := []time.Time{
		{},
		time.Date(1969, 12, 31, 23, 59, 59, 999999999, time.UTC),
		time.Unix(0, 0),
		time.Unix(0, 1),
		time.Unix(1, 0),
		time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC),
	}
	for i := 1; i < len(times); i++ {
		a, b := appendTimeKey(nil, times[i-1]), appendTimeKey(nil, times[i])
		if string(a) >= string(b) {
			t.Errorf("key of %v does not sort before key of %v", times[i-1], times[i])
		}
		back, ok := parseTimeKey(b)
		if !ok || !back.Equal(times[i]) {
			t.Errorf("parseTimeKey(%v) = %v, %v", times[i], back, ok)
		}
	}
}

// FuzzDecode checks that no stored bytes make a decoder panic, and that
// whatever decodes survives an encode/decode round trip unchanged.
func FuzzDecode(f *testing.F) {
	now := time.Date(2030, 1, 2, 3, 4, 5, 6, time.UTC)
	f.Add(encodeUser(&store.User{OpenID: "o", Nickname: "n", CreatedAt: now}))
	f.Add(encodeSession(&store.Session{UserID: 3, SealedSessionKey: []byte("k"), ExpiresAt: now}))
	f.Add(encodeToken(&store.RefreshToken{SessionID: "s", ExpiresAt: now}))
	f.Add([]byte{})
	f.Add([]byte{recordV1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, p []byte) {
		if u, err := decodeUser("app", 1, p); err == nil {
			again, err := decodeUser("app", 1, encodeUser(&u))
			if err != nil || !reflect.DeepEqual(again, u) {
				t.Errorf("user round trip: %+v, %v; want %+v", again, err, u)
			}
		}
		if s, err := decodeSession("app", "s", p); err == nil {
			again, err := decodeSession("app", "s", encodeSession(&s))
			if err != nil || !reflect.DeepEqual(again, s) {
				t.Errorf("session round trip: %+v, %v; want %+v", again, err, s)
			}
		}
		if tok, err := decodeToken([32]byte{}, p); err == nil {
			again, err := decodeToken([32]byte{}, encodeToken(&tok))
			if err != nil || !reflect.DeepEqual(again, tok) {
				t.Errorf("token round trip: %+v, %v; want %+v", again, err, tok)
			}
		}
	})
}
