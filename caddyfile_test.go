package wechatauth

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/wxauth/caddy-wechat-auth/internal/handler"
)

func dur(d time.Duration) caddy.Duration { return caddy.Duration(d) }

func TestUnmarshalCaddyfile(t *testing.T) {
	leeway := dur(0)
	tests := []struct {
		name    string
		input   string
		want    WeChatAuth
		wantErr string
	}{
		{
			name: "minimal",
			input: `wechat_auth {
				app_id wx1
				app_secret {env.SECRET}
			}`,
			want: WeChatAuth{AppID: "wx1", AppSecret: "{env.SECRET}"},
		},
		{
			name: "everything",
			input: `wechat_auth {
				app_id        {env.APPID}
				app_secret    {file./run/secret}
				api_base      http://127.0.0.1:9000
				timeout       2s
				db            /var/lib/wx.db
				signing_key_file /k1.pem k1
				signing_key_file /k2.pem
				issuer        me
				audience      them
				access_ttl    10m
				refresh_ttl   48h
				leeway        0
				token_source  header Authorization Bearer
				token_source  header token
				token_source  cookie tk
				token_source  query access_token
				optional
				login_path    /a/login
				refresh_path  /a/refresh
				logout_path   /a/logout
				profile_path  /a/me
				phone_path    /a/phone
				decrypt_path  /a/decrypt
				jwks_path     /a/jwks
				header_prefix X-User-
				errors        caddy
				link_unionid
				login_rate_limit 10 1m
			}`,
			want: WeChatAuth{
				AppID: "{env.APPID}", AppSecret: "{file./run/secret}",
				APIBase: "http://127.0.0.1:9000", Timeout: dur(2 * time.Second),
				DB:              "/var/lib/wx.db",
				SigningKeyFiles: []KeyFile{{Path: "/k1.pem", KID: "k1"}, {Path: "/k2.pem"}},
				Issuer:          "me", Audience: "them",
				AccessTTL: dur(10 * time.Minute), RefreshTTL: dur(48 * time.Hour), Leeway: &leeway,
				TokenSources: []handler.TokenSource{
					{From: "header", Name: "Authorization", Scheme: "Bearer"},
					{From: "header", Name: "token"},
					{From: "cookie", Name: "tk"},
					{From: "query", Name: "access_token"},
				},
				Optional:  true,
				LoginPath: "/a/login", RefreshPath: "/a/refresh", LogoutPath: "/a/logout",
				ProfilePath: "/a/me", PhonePath: "/a/phone", DecryptPath: "/a/decrypt", JWKSPath: "/a/jwks",
				HeaderPrefix: "X-User-", Errors: "caddy", LinkUnionID: true,
				LoginRateLimit: &LoginRateLimit{Requests: 10, Window: dur(time.Minute)},
			},
		},
		{
			name:  "hs256 key",
			input: "wechat_auth {\n app_id wx1\n app_secret s\n signing_key 0123456789abcdef0123456789abcdef\n}",
			want:  WeChatAuth{AppID: "wx1", AppSecret: "s", SigningKey: "0123456789abcdef0123456789abcdef"},
		},
		{
			name:  "hs256 key as placeholder is checked later",
			input: "wechat_auth {\n app_id wx1\n app_secret s\n signing_key {env.KEY}\n}",
			want:  WeChatAuth{AppID: "wx1", AppSecret: "s", SigningKey: "{env.KEY}"},
		},
		{
			name:  "path and header prefix placeholders are resolved at provision",
			input: "wechat_auth {\n app_id wx1\n app_secret s\n login_path {env.LOGIN}\n header_prefix {env.PREFIX}\n}",
			want:  WeChatAuth{AppID: "wx1", AppSecret: "s", LoginPath: "{env.LOGIN}", HeaderPrefix: "{env.PREFIX}"},
		},
		{name: "no block", input: "wechat_auth", wantErr: "app_id is required"},
		{name: "missing secret", input: "wechat_auth {\n app_id wx1\n}", wantErr: "app_secret is required"},
		{name: "missing app_id", input: "wechat_auth {\n app_secret s\n}", wantErr: "app_id is required"},
		{name: "inline argument", input: "wechat_auth wx1 {\n app_id wx1\n app_secret s\n}", wantErr: "wrong argument count"},
		{name: "unknown subdirective", input: "wechat_auth {\n app_id wx1\n app_secret s\n appsecret x\n}", wantErr: `unknown subdirective "appsecret"`},
		{name: "app_id twice", input: "wechat_auth {\n app_id wx1\n app_id wx2\n app_secret s\n}", wantErr: "app_id given more than once"},
		{name: "app_id without value", input: "wechat_auth {\n app_id\n app_secret s\n}", wantErr: "wrong argument count"},
		{name: "app_id two values", input: "wechat_auth {\n app_id a b\n app_secret s\n}", wantErr: "wrong argument count"},
		{name: "short hs256 key", input: "wechat_auth {\n app_id wx1\n app_secret s\n signing_key short\n}", wantErr: "at least 32 bytes"},
		{name: "bad duration", input: "wechat_auth {\n app_id wx1\n app_secret s\n access_ttl soon\n}", wantErr: "access_ttl: bad duration"},
		{name: "negative duration", input: "wechat_auth {\n app_id wx1\n app_secret s\n timeout -1s\n}", wantErr: "must not be negative"},
		{name: "access ttl too long", input: "wechat_auth {\n app_id wx1\n app_secret s\n access_ttl 48h\n}", wantErr: "access_ttl: at most"},
		{name: "bad leeway", input: "wechat_auth {\n app_id wx1\n app_secret s\n leeway x\n}", wantErr: "leeway: bad duration"},
		{name: "relative path", input: "wechat_auth {\n app_id wx1\n app_secret s\n login_path wx/login\n}", wantErr: "must start with /"},
		{name: "bad api_base", input: "wechat_auth {\n app_id wx1\n app_secret s\n api_base ftp://x\n}", wantErr: "api_base: want an absolute http(s) URL"},
		{name: "bad errors mode", input: "wechat_auth {\n app_id wx1\n app_secret s\n errors html\n}", wantErr: "errors: want json or caddy"},
		{name: "bad token source", input: "wechat_auth {\n app_id wx1\n app_secret s\n token_source body tk\n}", wantErr: "want header, cookie or query"},
		{name: "cookie with scheme", input: "wechat_auth {\n app_id wx1\n app_secret s\n token_source cookie tk Bearer\n}", wantErr: "wrong argument count"},
		{name: "token source without name", input: "wechat_auth {\n app_id wx1\n app_secret s\n token_source header\n}", wantErr: "wrong argument count"},
		{name: "optional with argument", input: "wechat_auth {\n app_id wx1\n app_secret s\n optional yes\n}", wantErr: "wrong argument count"},
		{name: "key file without path", input: "wechat_auth {\n app_id wx1\n app_secret s\n signing_key_file\n}", wantErr: "wrong argument count"},
		{name: "both key kinds", input: "wechat_auth {\n app_id wx1\n app_secret s\n signing_key 0123456789abcdef0123456789abcdef\n signing_key_file /k.pem\n}", wantErr: "not both"},
		{name: "rate limit without window", input: "wechat_auth {\n app_id wx1\n app_secret s\n login_rate_limit 10\n}", wantErr: "wrong argument count"},
		{name: "rate limit zero", input: "wechat_auth {\n app_id wx1\n app_secret s\n login_rate_limit 0 1m\n}", wantErr: "positive number of requests"},
		{name: "rate limit bad window", input: "wechat_auth {\n app_id wx1\n app_secret s\n login_rate_limit 5 soon\n}", wantErr: "positive window"},
		{name: "leeway too long", input: "wechat_auth {\n app_id wx1\n app_secret s\n leeway 10m\n}", wantErr: "leeway: must not be negative and at most 5m"},
		{name: "empty header prefix", input: "wechat_auth {\n app_id wx1\n app_secret s\n header_prefix \"\"\n}", wantErr: "not a header name prefix"},
		{name: "refresh_ttl under access_ttl + leeway", input: "wechat_auth {\n app_id wx1\n app_secret s\n access_ttl 1h\n leeway 1m\n refresh_ttl 60m59s\n}", wantErr: "refresh_ttl: must be at least access_ttl + leeway (1h0m0s + 1m0s = 1h1m0s), got 1h0m59s"},
		{name: "refresh_ttl under the default access_ttl + leeway", input: "wechat_auth {\n app_id wx1\n app_secret s\n refresh_ttl 15m\n}", wantErr: "refresh_ttl: must be at least access_ttl + leeway (15m0s + 30s = 15m30s), got 15m0s"},
		{name: "bad header prefix", input: "wechat_auth {\n app_id wx1\n app_secret s\n header_prefix \"X Y\"\n}", wantErr: "not a header name prefix"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got WeChatAuth
			err := got.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tt.input))
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("want error containing %q, got none (%+v)", tt.wantErr, got)
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("want error containing %q, got %q", tt.wantErr, err)
				}
				if !strings.Contains(err.Error(), "Testfile:") {
					t.Errorf("error %q does not name the line", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestUnmarshalCaddyfileRefreshGrace(t *testing.T) {
	block := func(line string) string {
		return "wechat_auth {\n app_id wx1\n app_secret s\n " + line + "\n}"
	}
	tests := []struct {
		name    string
		line    string
		want    time.Duration
		wantErr string
	}{
		{name: "strict", line: "refresh_grace 0", want: 0},
		{name: "strict with unit", line: "refresh_grace 0s", want: 0},
		{name: "seconds", line: "refresh_grace 5s", want: 5 * time.Second},
		{name: "the maximum", line: "refresh_grace 1m", want: time.Minute},
		{name: "milliseconds", line: "refresh_grace 1500ms", want: 1500 * time.Millisecond},
		{name: "negative", line: "refresh_grace -1s", wantErr: "refresh_grace: must not be negative"},
		{name: "over a minute", line: "refresh_grace 61s", wantErr: "refresh_grace: at most 1m0s"},
		{name: "an hour", line: "refresh_grace 1h", wantErr: "refresh_grace: at most 1m0s"},
		{name: "bad duration", line: "refresh_grace soon", wantErr: "refresh_grace: bad duration"},
		{name: "missing argument", line: "refresh_grace", wantErr: "wrong argument count"},
		{name: "two arguments", line: "refresh_grace 1s 2s", wantErr: "wrong argument count"},
		{name: "given twice", line: "refresh_grace 1s\n refresh_grace 2s", wantErr: "refresh_grace given more than once"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got WeChatAuth
			err := got.UnmarshalCaddyfile(caddyfile.NewTestDispenser(block(tt.line)))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "Testfile:") {
					t.Fatalf("want error containing %q naming the line, got %v", tt.wantErr, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.RefreshGrace == nil || time.Duration(*got.RefreshGrace) != tt.want {
				t.Fatalf("RefreshGrace = %v, want %s", got.RefreshGrace, tt.want)
			}
		})
	}
}

func TestValidateRefreshGrace(t *testing.T) {
	for _, tt := range []struct {
		grace time.Duration
		ok    bool
	}{
		{0, true}, {10 * time.Second, true}, {time.Minute, true},
		{-time.Nanosecond, false}, {time.Minute + time.Nanosecond, false},
	} {
		m := WeChatAuth{AppID: "wx1", AppSecret: "s"}
		g := dur(tt.grace)
		m.RefreshGrace = &g
		m.applyDefaults()
		if err := m.Validate(); (err == nil) != tt.ok {
			t.Errorf("refresh_grace %s: Validate() = %v, want ok=%v", tt.grace, err, tt.ok)
		}
	}
	// Unset, it defaults to 10s.
	m := WeChatAuth{AppID: "wx1", AppSecret: "s"}
	m.applyDefaults()
	if m.RefreshGrace == nil || time.Duration(*m.RefreshGrace) != 10*time.Second {
		t.Fatalf("default refresh_grace = %v, want 10s", m.RefreshGrace)
	}
}

// TestDirectiveAddsStrip: every wechat_auth directive adds a matcher-less
// wechat_auth_strip step with its header_prefix ahead of its own route, and
// a bad directive fails the adaptation with its line.
func TestDirectiveAddsStrip(t *testing.T) {
	adapt := func(site string) (string, error) {
		out, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(":8080 {\n"+site+"\n}\n"), nil)
		return string(out), err
	}
	out, err := adapt("wechat_auth /api/* {\n app_id wx1\n app_secret s\n header_prefix X-A-\n}\nwechat_auth {\n app_id wx2\n app_secret s\n db /tmp/b.db\n}")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`{"handler":"wechat_auth_strip","header_prefix":"X-A-"}`,
		`{"handler":"wechat_auth_strip"}`,
		`"match":[{"path":["/api/*"]}],"handle":[{"app_id":"wx1"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("adapted config lacks %s:\n%s", want, out)
		}
	}
	if strings.Count(out, `"handler":"wechat_auth_strip"`) != 2 {
		t.Errorf("want one strip step per directive:\n%s", out)
	}
	if i, j := strings.Index(out, `"handler":"wechat_auth_strip"}`), strings.Index(out, `"app_id":"wx2"`); i < 0 || j < 0 || i > j {
		t.Errorf("the matcher-less directive's strip step must come before its handler:\n%s", out)
	}

	// wechat_auth_strip at the site's top level runs before handle blocks.
	out, err = adapt("handle /api/* {\n wechat_auth {\n  app_id wx1\n  app_secret s\n }\n}\nwechat_auth_strip\nwechat_auth_strip X-A-")
	if err != nil {
		t.Fatal(err)
	}
	first, second, inner := strings.Index(out, `{"handler":"wechat_auth_strip"}`), strings.Index(out, `{"handler":"wechat_auth_strip","header_prefix":"X-A-"}`), strings.Index(out, `"handler":"subroute"`)
	if first < 0 || second < 0 || inner < 0 || first > inner || second > inner {
		t.Errorf("wechat_auth_strip must come before the handle block:\n%s", out)
	}

	for _, tt := range []struct{ site, wantErr string }{
		{"wechat_auth_strip X-A- X-B-", "wrong argument count"},
		{"wechat_auth_strip \"X Y\"", "not a header name prefix"},
		{"wechat_auth_strip {\n x\n}", "wrong argument count"},
		{"wechat_auth @nope {\n app_id wx1\n app_secret s\n}", "nope"},
		{"wechat_auth /api/* {\n app_id wx1\n app_secret s\n header_prefix \"X Y\"\n}", "not a header name prefix"},
		{"wechat_auth /api/* {\n app_id wx1\n}", "app_secret is required"},
	} {
		if _, err := adapt(tt.site); err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("%q: want an error containing %q, got %v", tt.site, tt.wantErr, err)
		}
	}
}
