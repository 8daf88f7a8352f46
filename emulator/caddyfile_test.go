package emulator

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

func TestUnmarshalCaddyfile(t *testing.T) {
	tests := []struct {
		name    string
		input   string
		want    Emulator
		wantErr string // substring; empty: must succeed
	}{
		{name: "bare", input: `wechat_emulator`},
		{name: "empty block", input: "wechat_emulator {\n}"},
		{
			name: "all subdirectives",
			input: `wechat_emulator {
				app_id     wx0123456789abcdef
				app_secret {env.WECHAT_SECRET}
				code_ttl   10m
				token_ttl  1d
				unionid    oA uA
				unionid    oB uB
			}`,
			want: Emulator{
				AppID:     "wx0123456789abcdef",
				AppSecret: "{env.WECHAT_SECRET}",
				CodeTTL:   caddy.Duration(10 * time.Minute),
				TokenTTL:  caddy.Duration(24 * time.Hour),
				UnionIDs:  map[string]string{"oA": "uA", "oB": "uB"},
			},
		},
		{name: "argument after directive", input: `wechat_emulator wx1`, wantErr: "wrong argument count"},
		{name: "unknown subdirective", input: "wechat_emulator {\n appid wx1\n}", wantErr: "unrecognized wechat_emulator subdirective 'appid'"},
		{name: "app_id without value", input: "wechat_emulator {\n app_id\n}", wantErr: "wrong argument count"},
		{name: "app_id two values", input: "wechat_emulator {\n app_id a b\n}", wantErr: "wrong argument count"},
		{name: "app_id empty", input: "wechat_emulator {\n app_id \"\"\n}", wantErr: "app_id must not be empty"},
		{name: "app_secret without value", input: "wechat_emulator {\n app_secret\n}", wantErr: "wrong argument count"},
		{name: "app_secret empty", input: "wechat_emulator {\n app_secret \"\"\n}", wantErr: "app_secret must not be empty"},
		{name: "code_ttl bad", input: "wechat_emulator {\n code_ttl soon\n}", wantErr: "parsing code_ttl"},
		{name: "code_ttl zero", input: "wechat_emulator {\n code_ttl 0s\n}", wantErr: "code_ttl must be positive"},
		{name: "code_ttl negative", input: "wechat_emulator {\n code_ttl -5m\n}", wantErr: "code_ttl must be positive"},
		{name: "code_ttl two values", input: "wechat_emulator {\n code_ttl 5m 6m\n}", wantErr: "wrong argument count"},
		{name: "token_ttl missing", input: "wechat_emulator {\n token_ttl\n}", wantErr: "wrong argument count"},
		{name: "token_ttl sub-second", input: "wechat_emulator {\n token_ttl 500ms\n}", wantErr: "token_ttl must be at least 1s"},
		{name: "unionid one value", input: "wechat_emulator {\n unionid oA\n}", wantErr: "wrong argument count"},
		{name: "unionid bad characters", input: "wechat_emulator {\n unionid oA u/A\n}", wantErr: "1 to 128 characters"},
		{name: "unionid twice for an openid", input: "wechat_emulator {\n unionid oA uA\n unionid oA uB\n}", wantErr: `unionid for openid "oA" given twice`},
		{name: "duplicate", input: "wechat_emulator {\n app_id a\n app_id b\n}", wantErr: "app_id specified more than once"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got Emulator
			err := got.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tt.input))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				if !strings.Contains(err.Error(), "Testfile:") {
					t.Errorf("err %q does not name the line", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if got.AppID != tt.want.AppID || got.AppSecret != tt.want.AppSecret ||
				got.CodeTTL != tt.want.CodeTTL || got.TokenTTL != tt.want.TokenTTL {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

// adaptCaddyfile runs the Caddyfile adapter over input.
func adaptCaddyfile(t *testing.T, input string) (string, error) {
	t.Helper()
	adapter := caddyconfig.GetAdapter("caddyfile")
	if adapter == nil {
		t.Fatal("caddyfile adapter not registered")
	}
	out, _, err := adapter.Adapt([]byte(input), nil)
	return string(out), err
}

func TestAdaptCaddyfile(t *testing.T) {
	out, err := adaptCaddyfile(t, `:8081 {
		respond "not an emulated path" 404
		wechat_emulator {
			app_id     wx0123456789abcdef
			app_secret {env.WECHAT_SECRET}
			code_ttl   10m
		}
	}`)
	if err != nil {
		t.Fatalf("adapting: %v", err)
	}
	var cfg struct {
		Apps struct {
			HTTP struct {
				Servers map[string]struct {
					Routes []struct {
						Handle []map[string]any `json:"handle"`
					} `json:"routes"`
				} `json:"servers"`
			} `json:"http"`
		} `json:"apps"`
	}
	if err := json.Unmarshal([]byte(out), &cfg); err != nil {
		t.Fatalf("adapted config is not JSON: %v\n%s", err, out)
	}
	var handlers []map[string]any
	for _, srv := range cfg.Apps.HTTP.Servers {
		for _, r := range srv.Routes {
			handlers = append(handlers, r.Handle...)
		}
	}
	// The directive sorts before respond even though it is written after.
	if len(handlers) != 2 || handlers[0]["handler"] != "wechat_emulator" || handlers[1]["handler"] != "static_response" {
		t.Fatalf("handlers = %v, want wechat_emulator then static_response\n%s", handlers, out)
	}
	h := handlers[0]
	if h["app_id"] != "wx0123456789abcdef" || h["app_secret"] != "{env.WECHAT_SECRET}" || h["code_ttl"] != float64(10*time.Minute) {
		t.Fatalf("emulator config = %v", h)
	}
	if _, ok := h["token_ttl"]; ok {
		t.Fatalf("unset token_ttl appears in the config: %v", h)
	}
}

func TestAdaptCaddyfileErrorNamesLine(t *testing.T) {
	_, err := adaptCaddyfile(t, ":8081 {\n\twechat_emulator {\n\t\tcode_ttl never\n\t}\n}\n")
	if err == nil || !strings.Contains(err.Error(), "Caddyfile:3") {
		t.Fatalf("err = %v, want one naming Caddyfile line 3", err)
	}
}
