package handler

import (
	"context"
	"fmt"
	"github.com/wxauth/caddy-wechat-auth/internal/testclock"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wxauth/caddy-wechat-auth/internal/wechat"
	"github.com/wxauth/caddy-wechat-auth/store"
	"github.com/wxauth/caddy-wechat-auth/store/bolt"
)

// flakyStore is a store whose database can be cut off: while down, every
// call the endpoints make fails with store.ErrUnavailable, as the
// PostgreSQL store's do when the server cannot be reached.
type flakyStore struct {
	store.Store
	down atomic.Bool
}

func (f *flakyStore) fail() error {
	if f.down.Load() {
		return fmt.Errorf("test: %w", store.ErrUnavailable)
	}
	return nil
}

func (f *flakyStore) Login(ctx context.Context, app string, nu store.NewUser, s store.Session, tok store.RefreshToken, now time.Time) (store.User, store.Session, bool, error) {
	if err := f.fail(); err != nil {
		return store.User{}, store.Session{}, false, err
	}
	return f.Store.Login(ctx, app, nu, s, tok, now)
}

func (f *flakyStore) Rotate(ctx context.Context, app string, hash [32]byte, next store.RefreshToken, now time.Time, grace time.Duration) (store.RotateResult, error) {
	if err := f.fail(); err != nil {
		return store.RotateResult{}, err
	}
	return f.Store.Rotate(ctx, app, hash, next, now, grace)
}

func (f *flakyStore) RevokeSession(ctx context.Context, app, id, reason string, now time.Time) (store.Session, error) {
	if err := f.fail(); err != nil {
		return store.Session{}, err
	}
	return f.Store.RevokeSession(ctx, app, id, reason, now)
}

func (f *flakyStore) RevokeUserSessions(ctx context.Context, app string, uid uint64, reason string, now time.Time) ([]store.Session, error) {
	if err := f.fail(); err != nil {
		return nil, err
	}
	return f.Store.RevokeUserSessions(ctx, app, uid, reason, now)
}

func (f *flakyStore) RefreshToken(ctx context.Context, app string, hash [32]byte) (store.RefreshToken, error) {
	if err := f.fail(); err != nil {
		return store.RefreshToken{}, err
	}
	return f.Store.RefreshToken(ctx, app, hash)
}

func (f *flakyStore) Session(ctx context.Context, app, id string) (store.Session, error) {
	if err := f.fail(); err != nil {
		return store.Session{}, err
	}
	return f.Store.Session(ctx, app, id)
}

func (f *flakyStore) User(ctx context.Context, app string, id uint64) (store.User, error) {
	if err := f.fail(); err != nil {
		return store.User{}, err
	}
	return f.Store.User(ctx, app, id)
}

func (f *flakyStore) UpdateUser(ctx context.Context, app string, id uint64, p store.ProfilePatch, now time.Time) (store.User, error) {
	if err := f.fail(); err != nil {
		return store.User{}, err
	}
	return f.Store.UpdateUser(ctx, app, id, p, now)
}

// TestStoreUnavailable: with the database cut off, every endpoint that
// needs it answers 503 store_unavailable with Retry-After (logout does not
// pretend to succeed), valid access tokens keep passing the guard, and all
// works again once the database is back.
func TestStoreUnavailable(t *testing.T) {
	st, err := bolt.Open(filepath.Join(t.TempDir(), "h.db"), bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	fs := &flakyStore{Store: st}
	hs := newHarnessWith(t, fs, testclock.New(time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)), NewRevocations())
	access, refresh := hs.login("o1")
	hs.wx.phones["p1"] = wechat.PhoneInfo{PhoneNumber: "13800138000", PurePhoneNumber: "13800138000", CountryCode: "86", WatermarkAppID: testApp}
	hs.wx.addCode("code-down", "o2", "")
	auth := []string{"Authorization", "Bearer " + access}

	fs.down.Store(true)
	calls := []struct {
		name               string
		method, path, body string
		hdr                []string
	}{
		{"login", "POST", "/wx/login", `{"code":"code-down"}`, nil},
		{"refresh", "POST", "/wx/refresh", `{"refresh_token":"` + refresh + `"}`, nil},
		{"logout", "POST", "/wx/logout", `{}`, auth},
		{"logout all", "POST", "/wx/logout", `{"all":true}`, auth},
		{"logout by refresh token", "POST", "/wx/logout", `{"refresh_token":"` + refresh + `"}`, nil},
		{"profile", "GET", "/wx/profile", "", auth},
		{"profile update", "PATCH", "/wx/profile", `{"nickname":"Ann"}`, auth},
		{"phone", "POST", "/wx/phone", `{"code":"p1"}`, auth},
		{"decrypt", "POST", "/wx/decrypt", `{"encrypted_data":"AAAAAAAAAAAAAAAAAAAAAA==","iv":"AAAAAAAAAAAAAAAAAAAAAA=="}`, auth},
	}
	for _, c := range calls {
		t.Run(c.name, func(t *testing.T) {
			r := hs.call(c.method, c.path, c.body, c.hdr...)
			want(t, r, 503, CodeStoreUnavailable)
			if r.header.Get("Retry-After") == "" {
				t.Error("no Retry-After")
			}
		})
	}
	// The guard reads no storage: the token still works.
	want(t, hs.guard(access), 200, "")

	fs.down.Store(false)
	hs.login("o2") // (the code used while down is spent, as at WeChat)
	want(t, hs.refresh(refresh), 200, "")
	want(t, hs.call("POST", "/wx/logout", `{}`, auth...), 200, "")
	want(t, hs.guard(access), 401, CodeInvalidToken)
}
