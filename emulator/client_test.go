package emulator

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/wxauth/caddy-wechat-auth/internal/wechat"
)

// TestWithWeChatClient runs the project's own WeChat client against the
// emulator over loopback HTTP: the two sides of every API must agree.
func TestWithWeChatClient(t *testing.T) {
	e, _ := configured(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		notFound := caddyhttp.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) error {
			http.NotFound(w, nil)
			return nil
		})
		if err := e.ServeHTTP(w, r, notFound); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
	}))
	t.Cleanup(srv.Close)
	c, err := wechat.New(wechat.Config{BaseURL: srv.URL, AppID: testAppID, AppSecret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	code, openid := mintCode(t, e, `{"unionid":"u_client"}`)
	s, err := c.Code2Session(ctx, code)
	if err != nil {
		t.Fatalf("Code2Session: %v", err)
	}
	if s.OpenID != openid || s.UnionID != "u_client" || len(s.SessionKey) != 16 {
		t.Fatalf("session: %+v", s)
	}
	if _, err := c.Code2Session(ctx, code); !errors.Is(err, wechat.ErrInvalidCode) {
		t.Fatalf("reused code: %v", err)
	}

	// checksession: the current key is valid, a wrong one is not.
	if err := c.CheckSession(ctx, openid, s.SessionKey); err != nil {
		t.Fatalf("CheckSession with the current key: %v", err)
	}
	if err := c.CheckSession(ctx, openid, []byte("0123456789abcdef")); !errors.Is(err, wechat.ErrSessionKeyInvalid) {
		t.Fatalf("CheckSession with a wrong key: %v", err)
	}

	// Phone number through a stable token.
	_, m := call(t, e, http.MethodPost, "/emulator/phone_code", `{"phone_number":"13800138000"}`)
	info, err := c.PhoneNumber(ctx, m["code"].(string))
	if err != nil {
		t.Fatalf("PhoneNumber: %v", err)
	}
	if info.PurePhoneNumber != "13800138000" || info.CountryCode != "86" || info.WatermarkAppID != testAppID {
		t.Fatalf("phone: %+v", info)
	}

	// Open data made by the emulator opens with the client's decryption.
	_, m = call(t, e, http.MethodPost, "/emulator/encrypt", `{"openid":"`+openid+`","data":{"nickName":"Ann"}}`)
	data, err := wechat.DecryptOpenData(s.SessionKey, m["encrypted_data"].(string), m["iv"].(string), testAppID)
	if err != nil {
		t.Fatalf("DecryptOpenData: %v", err)
	}
	var got map[string]any
	if err := json.Unmarshal(data, &got); err != nil || got["nickName"] != "Ann" {
		t.Fatalf("open data: %s %v", data, err)
	}
	if !wechat.VerifyRawSignature(m["raw_data"].(string), s.SessionKey, m["signature"].(string)) {
		t.Fatal("rawData signature from the emulator does not verify")
	}
}
