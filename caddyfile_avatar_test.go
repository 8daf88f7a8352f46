package wechatauth

import (
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

func TestUnmarshalCaddyfileAvatar(t *testing.T) {
	block := func(lines string) string {
		return "wechat_auth {\n app_id wx1\n app_secret s\n " + lines + "\n}"
	}
	tests := []struct {
		name    string
		lines   string
		path    string
		size    int64
		check   bool
		wantErr string
	}{
		{name: "path", lines: "avatar_path /me/avatar", path: "/me/avatar"},
		{name: "path placeholder", lines: "avatar_path {env.AVATAR}", path: "{env.AVATAR}"},
		{name: "size MiB", lines: "avatar_max_size 2MiB", size: 2 << 20},
		{name: "size KiB", lines: "avatar_max_size 512KiB", size: 512 << 10},
		{name: "size bytes", lines: "avatar_max_size 1048576", size: 1 << 20},
		{name: "size MB", lines: "avatar_max_size 5MB", size: 5000000},
		{name: "smallest size", lines: "avatar_max_size 1KiB", size: 1 << 10},
		{name: "largest size", lines: "avatar_max_size 32MiB", size: 32 << 20},
		{name: "check on", lines: "content_check on", check: true},
		{name: "check off", lines: "content_check off"},
		{name: "all three", lines: "avatar_path /a\n avatar_max_size 3MiB\n content_check on", path: "/a", size: 3 << 20, check: true},

		{name: "relative path", lines: "avatar_path avatar", wantErr: "avatar_path: must start with /"},
		{name: "root path", lines: "avatar_path /", wantErr: "avatar_path: must not end in /"},
		{name: "trailing slash", lines: "avatar_path /wx/avatar/", wantErr: "must not end in /"},
		{name: "path twice", lines: "avatar_path /a\n avatar_path /b", wantErr: "avatar_path given more than once"},
		{name: "size missing", lines: "avatar_max_size", wantErr: "wrong argument count"},
		{name: "size two values", lines: "avatar_max_size 1MiB 2MiB", wantErr: "wrong argument count"},
		{name: "size nonsense", lines: "avatar_max_size big", wantErr: "avatar_max_size: size \"big\" is not a whole number"},
		{name: "size negative", lines: "avatar_max_size -1", wantErr: "avatar_max_size: size"},
		{name: "size fraction", lines: "avatar_max_size 1.5MiB", wantErr: "avatar_max_size: size"},
		{name: "size lower-case unit", lines: "avatar_max_size 2mib", wantErr: "avatar_max_size: size"},
		{name: "size GiB", lines: "avatar_max_size 1GiB", wantErr: "avatar_max_size: size"},
		{name: "size zero", lines: "avatar_max_size 0", wantErr: "avatar_max_size: want 1KiB to 32MiB"},
		{name: "size tiny", lines: "avatar_max_size 100", wantErr: "avatar_max_size: want 1KiB to 32MiB"},
		{name: "size absurd", lines: "avatar_max_size 33MiB", wantErr: "avatar_max_size: want 1KiB to 32MiB"},
		{name: "size overflow", lines: "avatar_max_size 99999999999999999999999", wantErr: "too large"},
		{name: "check missing", lines: "content_check", wantErr: "wrong argument count"},
		{name: "check yes", lines: "content_check yes", wantErr: `content_check: want on or off, got "yes"`},
		{name: "check two values", lines: "content_check on off", wantErr: "wrong argument count"},
		{name: "check twice", lines: "content_check on\n content_check off", wantErr: "content_check given more than once"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got WeChatAuth
			err := got.UnmarshalCaddyfile(caddyfile.NewTestDispenser(block(tt.lines)))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "Testfile:") {
					t.Fatalf("want error containing %q naming the line, got %v", tt.wantErr, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.AvatarPath != tt.path || got.AvatarMaxSize != tt.size || got.ContentCheck != tt.check {
				t.Fatalf("got avatar_path %q, avatar_max_size %d, content_check %v", got.AvatarPath, got.AvatarMaxSize, got.ContentCheck)
			}
		})
	}
}

// TestValidateAvatar covers JSON configs, which skip the Caddyfile parser.
func TestValidateAvatar(t *testing.T) {
	for _, tt := range []struct {
		m  WeChatAuth
		ok bool
	}{
		{WeChatAuth{AvatarMaxSize: 2 << 20}, true},
		{WeChatAuth{AvatarPath: "/x"}, true},
		{WeChatAuth{AvatarMaxSize: -1}, false},
		{WeChatAuth{AvatarMaxSize: 1 << 40}, false},
		{WeChatAuth{AvatarPath: "/"}, false},
		{WeChatAuth{AvatarPath: "x"}, false},
	} {
		m := tt.m
		m.AppID, m.AppSecret = "wx1", "s"
		m.applyDefaults()
		if err := m.Validate(); (err == nil) != tt.ok {
			t.Errorf("%+v: Validate() = %v, want ok=%v", tt.m, err, tt.ok)
		}
	}
	m := WeChatAuth{AppID: "wx1", AppSecret: "s"}
	m.applyDefaults()
	if m.AvatarPath != "/wx/avatar" || m.AvatarMaxSize != 2<<20 || m.ContentCheck {
		t.Fatalf("defaults: avatar_path %q, avatar_max_size %d, content_check %v", m.AvatarPath, m.AvatarMaxSize, m.ContentCheck)
	}
}
