package wechatauth

import (
	"reflect"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

func TestUnmarshalCaddyfilePlatform(t *testing.T) {
	block := func(lines string) string {
		return "wechat_auth {\n app_id a1\n app_secret s\n" + lines + "\n}"
	}
	tests := []struct {
		name    string
		input   string
		want    WeChatAuth
		wantErr string
	}{
		{name: "qq", input: block("platform qq"), want: WeChatAuth{AppID: "a1", AppSecret: "s", Platform: "qq"}},
		{name: "douyin with api_base", input: block("platform douyin\n api_base http://127.0.0.1:9000"), want: WeChatAuth{AppID: "a1", AppSecret: "s", Platform: "douyin", APIBase: "http://127.0.0.1:9000"}},
		{name: "baidu", input: block("platform baidu"), want: WeChatAuth{AppID: "a1", AppSecret: "s", Platform: "baidu"}},
		{name: "wechat explicit", input: block("platform wechat"), want: WeChatAuth{AppID: "a1", AppSecret: "s", Platform: "wechat"}},
		{
			name:  "alipay with keys",
			input: block("platform alipay\n alipay_private_key_file /keys/app.pem\n alipay_public_key_file {env.ALIPAY_PUB}"),
			want:  WeChatAuth{AppID: "a1", AppSecret: "s", Platform: "alipay", AlipayPrivateKeyFile: "/keys/app.pem", AlipayPublicKeyFile: "{env.ALIPAY_PUB}"},
		},
		{name: "unknown platform", input: block("platform line"), wantErr: `platform: want one of wechat, qq, douyin, alipay, baidu, got "line"`},
		{name: "platform without value", input: block("platform"), wantErr: "wrong argument count"},
		{name: "platform with two values", input: block("platform qq baidu"), wantErr: "wrong argument count"},
		{name: "platform twice", input: block("platform qq\n platform baidu"), wantErr: "platform given more than once"},
		{name: "platform upper case", input: block("platform QQ"), wantErr: "want one of"},
		{name: "alipay without keys", input: block("platform alipay"), wantErr: "needs alipay_private_key_file"},
		{name: "alipay without public key", input: block("platform alipay\n alipay_private_key_file /k.pem"), wantErr: "alipay_public_key_file"},
		{name: "alipay keys on wechat", input: block("alipay_private_key_file /k.pem\n alipay_public_key_file /p.pem"), wantErr: "for platform alipay only, not wechat"},
		{name: "alipay key on baidu", input: block("platform baidu\n alipay_public_key_file /p.pem"), wantErr: "for platform alipay only, not baidu"},
		{name: "content_check on qq", input: block("platform qq\n content_check on"), wantErr: "content_check: WeChat's msg_sec_check checks nicknames of WeChat users only, not on platform qq"},
		{name: "alipay key file without path", input: block("platform alipay\n alipay_private_key_file\n alipay_public_key_file /p.pem"), wantErr: "wrong argument count"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got WeChatAuth
			err := got.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tt.input))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("want error containing %q, got %v", tt.wantErr, err)
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

func TestValidatePlatformFromJSON(t *testing.T) {
	for _, tc := range []struct {
		m       WeChatAuth
		wantErr string
	}{
		{WeChatAuth{AppID: "a", AppSecret: "s", Platform: "tiktok"}, "want one of"},
		{WeChatAuth{AppID: "a", AppSecret: "s", Platform: "alipay", AlipayPublicKeyFile: "/p"}, "needs alipay_private_key_file"},
		{WeChatAuth{AppID: "a", AppSecret: "s", AlipayPrivateKeyFile: "/k"}, "alipay only"},
		{WeChatAuth{AppID: "a", AppSecret: "s", Platform: "baidu"}, ""},
	} {
		err := tc.m.Validate()
		if (tc.wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("%+v: %v, want %q", tc.m, err, tc.wantErr)
		}
	}
}
