package wechatauth

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
)

// TestProvisionWebPlaceholders: the web block's placeholders are resolved
// at provision, and the resolved values are checked there.
func TestProvisionWebPlaceholders(t *testing.T) {
	t.Setenv("WEB_TEST_PATH", "/auth/w")
	t.Setenv("WEB_TEST_OA", "wxoaFromEnv")
	t.Setenv("WEB_TEST_OA_SECRET", "oa-secret-from-env")
	m := &WeChatAuth{AppID: "wxprov", AppSecret: "s", DB: filepath.Join(t.TempDir(), "p.db"),
		Web: &WebConfig{Path: "{env.WEB_TEST_PATH}", OAAppID: "{env.WEB_TEST_OA}", OAAppSecret: "{env.WEB_TEST_OA_SECRET}",
			OAuthBase: "http://127.0.0.1:1"}}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	if err := m.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	defer m.Cleanup()
	if m.Web.Path != "{env.WEB_TEST_PATH}" {
		t.Fatalf("provision rewrote the config: %q", m.Web.Path)
	}
	r := httptest.NewRequest("GET", "/auth/w/login?next=/x", nil)
	w := httptest.NewRecorder()
	if _, _, err := m.handler.Serve(w, r); err != nil {
		t.Fatal(err)
	}
	loc, _ := url.Parse(w.Header().Get("Location"))
	if w.Code != http.StatusFound || loc.Query().Get("appid") != "wxoaFromEnv" || loc.Path != "/connect/oauth2/authorize" {
		t.Fatalf("login: %d %q", w.Code, w.Header().Get("Location"))
	}
	if strings.Contains(w.Header().Get("Location"), "oa-secret-from-env") {
		t.Fatal("the secret is in the redirect")
	}

	// A placeholder that resolves to a bad value fails provision.
	t.Setenv("WEB_TEST_PATH", "no-slash")
	bad := &WeChatAuth{AppID: "wxprov2", AppSecret: "s", DB: filepath.Join(t.TempDir(), "q.db"),
		Web: &WebConfig{Path: "{env.WEB_TEST_PATH}"}}
	err := bad.Provision(ctx)
	defer bad.Cleanup()
	if err == nil || !strings.Contains(err.Error(), "web: path") {
		t.Fatalf("provision with a bad resolved path: %v", err)
	}
	// An id whose secret resolves to nothing fails too.
	t.Setenv("WEB_TEST_PATH", "/w")
	t.Setenv("WEB_TEST_EMPTY", "")
	empty := &WeChatAuth{AppID: "wxprov3", AppSecret: "s", DB: filepath.Join(t.TempDir(), "r.db"),
		Web: &WebConfig{SiteAppID: "wxsite", SiteAppSecret: "{env.WEB_TEST_EMPTY}"}}
	err = empty.Provision(ctx)
	defer empty.Cleanup()
	if err == nil || !strings.Contains(err.Error(), "site_app_id and site_app_secret go together") {
		t.Fatalf("provision with an empty resolved secret: %v", err)
	}
}
