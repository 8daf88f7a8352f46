package wechatauth

import (
	"reflect"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

func TestUnmarshalCaddyfileWeb(t *testing.T) {
	block := func(web string) string {
		return "wechat_auth {\n app_id wx1\n app_secret s\n " + web + "\n}"
	}
	tests := []struct {
		name    string
		web     string
		want    *WebConfig
		wantErr string
	}{
		{name: "bare", web: "web", want: &WebConfig{}},
		{name: "empty block", web: "web {\n}", want: &WebConfig{}},
		{
			name: "everything",
			web: `web {
				path            /auth/web
				cookie          sid
				cookie_domain   example.com
				cookie_secure   on
				oa_app_id       wxoa
				oa_app_secret   {env.OA_SECRET}
				oa_scope        snsapi_userinfo
				site_app_id     wxsite
				site_app_secret {file./run/site}
				oauth_base      http://127.0.0.1:8081
				callback_url    https://example.com/auth/web/callback
			}`,
			want: &WebConfig{Path: "/auth/web", Cookie: "sid", CookieDomain: "example.com", CookieSecure: "on",
				OAAppID: "wxoa", OAAppSecret: "{env.OA_SECRET}", OAScope: "snsapi_userinfo",
				SiteAppID: "wxsite", SiteAppSecret: "{file./run/site}", OAuthBase: "http://127.0.0.1:8081",
				CallbackURL: "https://example.com/auth/web/callback"},
		},
		{name: "placeholders checked later", web: "web {\n path {env.WEB_PATH}\n cookie {env.C}\n}", want: &WebConfig{Path: "{env.WEB_PATH}", Cookie: "{env.C}"}},
		{name: "argument", web: "web on", wantErr: "wrong argument count"},
		{name: "given twice", web: "web\n web", wantErr: "web given more than once"},
		{name: "unknown", web: "web {\n cookies x\n}", wantErr: `web: unknown subdirective "cookies"`},
		{name: "repeated", web: "web {\n cookie a\n cookie b\n}", wantErr: "web: cookie given more than once"},
		{name: "no value", web: "web {\n cookie\n}", wantErr: "wrong argument count"},
		{name: "two values", web: "web {\n cookie a b\n}", wantErr: "wrong argument count"},
		{name: "empty value", web: "web {\n cookie \"\"\n}", wantErr: "web: cookie: empty value"},
		{name: "relative path", web: "web {\n path wx/web\n}", wantErr: "web: path: want a path"},
		{name: "trailing slash", web: "web {\n path /wx/web/\n}", wantErr: "web: path: want a path"},
		{name: "bad cookie", web: "web {\n cookie a;b\n}", wantErr: "web: cookie: not a cookie name"},
		{name: "bad domain", web: "web {\n cookie_domain https://example.com\n}", wantErr: "web: cookie_domain"},
		{name: "bad secure", web: "web {\n cookie_secure yes\n}", wantErr: "web: cookie_secure: want auto, on or off"},
		{name: "bad scope", web: "web {\n oa_app_id a\n oa_app_secret b\n oa_scope snsapi_login\n}", wantErr: "web: oa_scope"},
		{name: "oa id without secret", web: "web {\n oa_app_id a\n}", wantErr: "oa_app_id and oa_app_secret go together"},
		{name: "oa secret without id", web: "web {\n oa_app_secret a\n}", wantErr: "oa_app_id and oa_app_secret go together"},
		{name: "site id without secret", web: "web {\n site_app_id a\n}", wantErr: "site_app_id and site_app_secret go together"},
		{name: "bad oauth base", web: "web {\n oauth_base open.weixin.qq.com\n}", wantErr: "web: oauth_base"},
		{name: "bad callback", web: "web {\n callback_url /cb\n}", wantErr: "web: callback_url"},
		{name: "nested block in value", web: "web {\n cookie {\n }\n}", wantErr: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got WeChatAuth
			err := got.UnmarshalCaddyfile(caddyfile.NewTestDispenser(block(tt.web)))
			if tt.want == nil {
				if err == nil {
					t.Fatalf("want an error, got %+v", got.Web)
				}
				if !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "Testfile:") {
					t.Fatalf("want error containing %q naming the line, got %q", tt.wantErr, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got.Web, tt.want) {
				t.Fatalf("got  %+v\nwant %+v", got.Web, tt.want)
			}
		})
	}
}

// TestWebConfigJSON: a JSON config gets the same checks as the Caddyfile.
func TestValidateWeb(t *testing.T) {
	for _, tt := range []struct {
		web *WebConfig
		ok  bool
	}{
		{&WebConfig{}, true},
		{&WebConfig{Path: "{env.P}"}, true},
		{&WebConfig{Path: "nope"}, false},
		{&WebConfig{OAAppID: "a"}, false},
		{&WebConfig{OAAppID: "a", OAAppSecret: "b", OAScope: "x"}, false},
		{&WebConfig{CookieSecure: "maybe"}, false},
	} {
		m := WeChatAuth{AppID: "wx1", AppSecret: "s", Web: tt.web}
		if err := m.Validate(); (err == nil) != tt.ok {
			t.Errorf("%+v: Validate() = %v, want ok=%v", tt.web, err, tt.ok)
		}
	}
}
