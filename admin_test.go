package wechatauth

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/wxauth/caddy-wechat-auth/store"
	"github.com/wxauth/caddy-wechat-auth/store/storetest"
)

// provisionForAdmin starts a wechat_auth handler for app with its store
// in a temp dir, as Caddy would, and cleans it up at the end.
func provisionForAdmin(t *testing.T, app string) *WeChatAuth {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	m := &WeChatAuth{
		AppID: app, AppSecret: "admin-test-secret", APIBase: "http://127.0.0.1:1",
		DB: filepath.Join(t.TempDir(), "admin.db"),
	}
	if err := m.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Cleanup() })
	return m
}

// seedUser stores a user of m's app with one session.
func seedUser(t *testing.T, m *WeChatAuth, openid, sid string) store.User {
	t.Helper()
	ctx, now := context.Background(), time.Now()
	st, app := m.live.st, m.handler.AppID()
	u, _, err := storetest.CreateUser(ctx, st, app, store.NewUser{OpenID: openid, UnionID: "u-" + openid}, now)
	if err != nil {
		t.Fatal(err)
	}
	phone := "+86 " + openid
	if u, err = st.UpdateUser(ctx, app, u.ID, store.ProfilePatch{Phone: &phone}, now); err != nil {
		t.Fatal(err)
	}
	s := store.Session{ID: sid, AppID: app, UserID: u.ID, OpenID: openid, SealedSessionKey: []byte("SEALED-KEY"), CreatedAt: now}
	tok := store.RefreshToken{Hash: sha256.Sum256([]byte(sid)), SessionID: sid, IssuedAt: now, ExpiresAt: now.Add(time.Hour), AccessID: "jti-" + sid}
	if err := storetest.CreateSession(ctx, st, s, tok); err != nil {
		t.Fatal(err)
	}
	return u
}

type adminAnswer struct {
	status int
	header http.Header
	raw    string
}

func adminCall(t *testing.T, method, path, body string) adminAnswer {
	t.Helper()
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	w := httptest.NewRecorder()
	if err := (&AdminAPI{}).serve(w, r); err != nil {
		t.Fatalf("serve returned %v", err)
	}
	return adminAnswer{w.Code, w.Header(), w.Body.String()}
}

func TestAdminAPI(t *testing.T) {
	const app = "wxadmintest000001"
	m := provisionForAdmin(t, app)
	seedUser(t, m, "o-admin-1", "sid-admin-1")
	seedUser(t, m, "o-admin-2", "sid-admin-2")
	p := "/wechat_auth/apps/" + app

	tests := []struct {
		name, method, path, body string
		status                   int
		code                     string // error code, or "" for success
		contains                 string // in the answer
	}{
		{"list apps", "GET", "/wechat_auth/apps", "", 200, "", `"app_id":"` + app + `","store":"bolt","users":2,"active_sessions":2`},
		{"one app", "GET", p, "", 200, "", `"users":2`},
		{"user by id", "GET", p + "/users/1", "", 200, "", `"openid":"o-admin-1","unionid":"u-o-admin-1"`},
		{"user by openid", "POST", p + "/users/lookup", `{"openid":"o-admin-2"}`, 200, "", `"id":2`},
		{"user by unionid", "POST", p + "/users/lookup", `{"unionid":"u-o-admin-1"}`, 200, "", `"id":1`},
		{"user by phone", "POST", p + "/users/lookup", `{"phone":"+86 o-admin-2"}`, 200, "", `"id":2`},
		{"sessions", "GET", p + "/users/1/sessions", "", 200, "", `"sid":"sid-admin-1"`},
		{"unknown app", "GET", "/wechat_auth/apps/nope/users/1", "", 404, "unknown_app", `nope`},
		{"unknown route", "GET", "/wechat_auth/nothing", "", 404, "not_found", ""},
		{"unknown sub-route", "GET", p + "/users/1/friends", "", 404, "not_found", ""},
		{"too deep", "GET", p + "/users/1/sessions/x", "", 404, "not_found", ""},
		{"bad id", "GET", p + "/users/abc", "", 400, "invalid_request", "abc"},
		{"zero id", "GET", p + "/users/0", "", 400, "invalid_request", ""},
		{"negative id", "GET", p + "/users/-1", "", 400, "invalid_request", ""},
		{"huge id", "GET", p + "/users/99999999999999999999999", "", 400, "invalid_request", ""},
		{"unknown user", "GET", p + "/users/42", "", 404, "not_found", "no user 42"},
		{"unknown openid", "POST", p + "/users/lookup", `{"openid":"nobody"}`, 404, "not_found", "no user with that openid"},
		{"no lookup key", "POST", p + "/users/lookup", `{}`, 400, "invalid_request", "exactly one of openid, unionid or phone"},
		{"no lookup body", "POST", p + "/users/lookup", "", 400, "invalid_request", "exactly one of openid, unionid or phone"},
		{"two lookup keys", "POST", p + "/users/lookup", `{"openid":"a","phone":"b"}`, 400, "invalid_request", "exactly one of"},
		{"empty lookup", "POST", p + "/users/lookup", `{"openid":""}`, 400, "invalid_request", "openid is empty"},
		{"null lookup", "POST", p + "/users/lookup", `{"openid":null}`, 400, "invalid_request", "exactly one of"},
		{"unknown lookup key", "POST", p + "/users/lookup", `{"nickname":"Ann"}`, 400, "invalid_request", ""},
		{"lookup not a string", "POST", p + "/users/lookup", `{"openid":5}`, 400, "invalid_request", ""},
		{"lookup by GET", "GET", p + "/users/lookup", "", 405, "method_not_allowed", ""},
		{"lookup too deep", "POST", p + "/users/lookup/x", `{"openid":"o-admin-2"}`, 400, "invalid_request", ""},
		// The old query form is refused, pointing to the body form, and
		// does not echo the value.
		{"lookup by query string", "GET", p + "/users?openid=o-admin-2", "", 400, "invalid_request", "POST …/users/lookup"},
		{"lookup by phone query", "GET", p + "/users?phone=%2B86+o-admin-2", "", 400, "invalid_request", "personal data"},
		{"users without a query", "GET", p + "/users", "", 400, "invalid_request", "POST …/users/lookup"},
		{"wrong method on users", "POST", p + "/users", `{"openid":"o-admin-2"}`, 405, "method_not_allowed", ""},
		{"sessions of unknown user", "GET", p + "/users/42/sessions", "", 404, "not_found", ""},
		{"escaped slash in id", "GET", p + "/users/1%2F2", "", 400, "invalid_request", ""},
		{"empty segment", "GET", p + "//users/1", "", 400, "invalid_request", ""},
		{"wrong method on apps", "POST", "/wechat_auth/apps", "", 405, "method_not_allowed", ""},
		{"wrong method on user", "DELETE", p + "/users/1", "", 405, "method_not_allowed", ""},
		{"wrong method on ban", "GET", p + "/users/1/ban", "", 405, "method_not_allowed", ""},
		{"wrong method on session", "GET", p + "/sessions/sid-admin-1", "", 405, "method_not_allowed", ""},
		{"wrong method on backup", "POST", p + "/backup", "", 405, "method_not_allowed", ""},
		{"ban bad JSON", "PUT", p + "/users/1/ban", `{"reason":`, 400, "invalid_request", ""},
		{"ban unknown field", "PUT", p + "/users/1/ban", `{"why":"x"}`, 400, "invalid_request", ""},
		{"ban trailing data", "PUT", p + "/users/1/ban", `{"reason":"x"} {}`, 400, "invalid_request", ""},
		{"ban trailing brace", "PUT", p + "/users/1/ban", `{"reason":"x"}}`, 400, "invalid_request", ""},
		{"ban trailing brackets", "PUT", p + "/users/1/ban", `{"reason":"x"}]]garbage`, 400, "invalid_request", ""},
		{"ban not an object", "PUT", p + "/users/1/ban", `["x"]`, 400, "invalid_request", ""},
		{"ban control characters", "PUT", p + "/users/1/ban", `{"reason":"a\u0000b"}`, 400, "invalid_request", ""},
		{"ban long reason", "PUT", p + "/users/1/ban", `{"reason":"` + strings.Repeat("x", maxBanReason+1) + `"}`, 400, "invalid_request", ""},
		{"ban huge body", "PUT", p + "/users/1/ban", `{"reason":"` + strings.Repeat("x", maxAdminBody) + `"}`, 413, "payload_too_large", ""},
		{"ban unknown user", "PUT", p + "/users/42/ban", `{"reason":"x"}`, 404, "not_found", ""},
		{"unban unknown user", "DELETE", p + "/users/42/ban", "", 404, "not_found", ""},
		{"revoke unknown session", "DELETE", p + "/sessions/nope", "", 404, "not_found", ""},
		{"revoke sessions of unknown user", "DELETE", p + "/users/42/sessions", "", 404, "not_found", ""},
		{"revoke a session", "DELETE", p + "/sessions/sid-admin-2", "", 200, "", `"revoked_reason":"admin"`},
		{"ban", "PUT", p + "/users/1/ban", `{"reason":"spam"}`, 200, "", `"banned":true,"ban_reason":"spam"},"revoked_sessions":1`},
		{"banned user", "GET", p + "/users/1", "", 200, "", `"banned":true`},
		{"banned sessions", "GET", p + "/users/1/sessions", "", 200, "", `"revoked_reason":"ban"`},
		{"unban", "DELETE", p + "/users/1/ban", "", 200, "", `"banned":false,"ban_reason":""`},
		{"stats after", "GET", "/wechat_auth/apps", "", 200, "", `"users":2,"active_sessions":0`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := adminCall(t, tc.method, tc.path, tc.body)
			if a.status != tc.status {
				t.Fatalf("status %d, want %d: %s", a.status, tc.status, a.raw)
			}
			if ct := a.header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			if tc.code != "" {
				var e struct{ Error, Message string }
				if err := json.Unmarshal([]byte(a.raw), &e); err != nil || e.Error != tc.code || e.Message == "" {
					t.Fatalf("want error %q with a message, got %s", tc.code, a.raw)
				}
			}
			if tc.status == 405 && a.header.Get("Allow") == "" {
				t.Error("405 without Allow")
			}
			if !strings.Contains(a.raw, tc.contains) {
				t.Errorf("answer lacks %s: %s", tc.contains, a.raw)
			}
			for _, secret := range []string{"SEALED", "sealed_session_key", "session_key", "refresh_token", "jti-"} {
				if strings.Contains(a.raw, secret) {
					t.Errorf("answer carries %q: %s", secret, a.raw)
				}
			}
		})
	}

	// A refused query-string lookup does not echo what it was given.
	if a := adminCall(t, "GET", p+"/users?openid=o-admin-2", ""); strings.Contains(a.raw, "o-admin-2") {
		t.Errorf("the refusal echoes the openid: %s", a.raw)
	}
}

// TestAdminRevocationTakesEffectAtOnce checks that sessions ended through
// the admin API are on the live handler's revocation list when the answer
// is sent.
func TestAdminRevocationTakesEffectAtOnce(t *testing.T) {
	const app = "wxadmintest000002"
	m := provisionForAdmin(t, app)
	seedUser(t, m, "o-1", "sid-a")
	u2 := seedUser(t, m, "o-2", "sid-b")
	p := "/wechat_auth/apps/" + app
	revs := m.db.revs[app]
	if revs.Revoked("sid-a") || revs.Revoked("sid-b") {
		t.Fatal("revoked before the test")
	}
	if a := adminCall(t, "DELETE", p+"/sessions/sid-a", ""); a.status != 200 {
		t.Fatalf("revoke: %d %s", a.status, a.raw)
	}
	if !revs.Revoked("sid-a") {
		t.Error("session revoked through the admin API is not on the revocation list")
	}
	if a := adminCall(t, "PUT", p+"/users/"+strconv.FormatUint(u2.ID, 10)+"/ban", `{}`); a.status != 200 {
		t.Fatalf("ban: %d %s", a.status, a.raw)
	}
	if !revs.Revoked("sid-b") {
		t.Error("session of a banned user is not on the revocation list")
	}
}

// TestAdminRegistry checks the live registry across a reload's overlap:
// the newest handler answers, and an app goes away with its last handler.
func TestAdminRegistry(t *testing.T) {
	const app = "wxadmintest000003"
	old := provisionForAdmin(t, app)
	if liveApps.get(app) != old.live {
		t.Fatal("provisioned handler not registered")
	}
	// The new config's handler, on the same store file.
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	next := &WeChatAuth{AppID: app, AppSecret: "admin-test-secret", APIBase: "http://127.0.0.1:1", DB: old.DB}
	if err := next.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	if liveApps.get(app) != next.live {
		t.Error("the newest handler does not answer for the app")
	}
	if err := old.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if liveApps.get(app) != next.live {
		t.Error("cleaning up the old handler removed the new one")
	}
	if err := next.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if liveApps.get(app) != nil {
		t.Error("app still registered after its last handler went")
	}
	a := adminCall(t, "GET", "/wechat_auth/apps/"+app, "")
	if a.status != 404 || !strings.Contains(a.raw, "unknown_app") {
		t.Errorf("app after cleanup: %d %s", a.status, a.raw)
	}
}

// TestAdminBackupNotSupported: a store that cannot snapshot itself
// answers 501 naming pg_dump.
func TestAdminBackupNotSupported(t *testing.T) {
	const app = "wxadmintest000004"
	m := provisionForAdmin(t, app)
	liveApps.remove(m.live)
	noBackup := &liveApp{handler: m.live.handler, store: "postgres"}
	liveApps.add(noBackup)
	defer liveApps.remove(noBackup)
	a := adminCall(t, "GET", "/wechat_auth/apps/"+app+"/backup", "")
	if a.status != 501 || !strings.Contains(a.raw, "pg_dump") || !strings.Contains(a.raw, `"error":"not_supported"`) {
		t.Fatalf("backup of a store without snapshots: %d %s", a.status, a.raw)
	}
}

// failingBackup writes part of a snapshot, then fails.
type failingBackup struct{ written int }

func (f failingBackup) Backup(_ context.Context, w io.Writer) (int64, error) {
	if f.written == 0 {
		return 0, errors.New("disk on fire")
	}
	n, _ := w.Write(make([]byte, f.written))
	return int64(n), errors.New("disk on fire")
}

// TestAdminBackupFailure: a snapshot that fails before its first byte is
// a 500 with the admin error shape; one that fails midway aborts the
// connection, so no client can take the short body for a whole snapshot.
func TestAdminBackupFailure(t *testing.T) {
	const app = "wxadmintest000005"
	m := provisionForAdmin(t, app)
	liveApps.remove(m.live)
	broken := &liveApp{handler: m.live.handler, store: "bolt", backup: failingBackup{}}
	liveApps.add(broken)
	defer liveApps.remove(broken)
	if a := adminCall(t, "GET", "/wechat_auth/apps/"+app+"/backup", ""); a.status != 500 || !strings.Contains(a.raw, `"error":"internal_error"`) {
		t.Fatalf("backup failing at once: %d %s", a.status, a.raw)
	}

	liveApps.remove(broken)
	midway := &liveApp{handler: m.live.handler, store: "bolt", backup: failingBackup{written: 100_000}}
	liveApps.add(midway)
	defer liveApps.remove(midway)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = (&AdminAPI{}).serve(w, r)
	}))
	defer srv.Close()
	res, err := srv.Client().Get(srv.URL + "/wechat_auth/apps/" + app + "/backup")
	if err != nil {
		return // aborted before the answer: the client sees a failure
	}
	defer res.Body.Close()
	if _, err := io.ReadAll(res.Body); err == nil {
		t.Fatalf("a snapshot that failed midway was read as complete (status %d)", res.StatusCode)
	}
}
