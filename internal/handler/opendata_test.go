package handler

import (
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"

	"github.com/wxauth/caddy-wechat-auth/internal/wechat"
)

func TestPhone(t *testing.T) {
	hs := newHarness(t)
	access, _ := hs.login("o1")
	hs.wx.phones["p1"] = wechat.PhoneInfo{PhoneNumber: "+86 13800138000", PurePhoneNumber: "13800138000", CountryCode: "86", WatermarkAppID: testApp}
	hs.wx.phones["p2"] = wechat.PhoneInfo{PhoneNumber: "13900139000", WatermarkAppID: "wxother"}
	r := hs.call("POST", "/wx/phone", `{"code":"p1"}`, "token", access)
	want(t, r, 200, "")
	if p := r.body["phone"].(map[string]any); p["pure_phone_number"] != "13800138000" || p["country_code"] != "86" {
		t.Fatalf("phone: %s", r.raw)
	}
	want(t, hs.call("POST", "/wx/phone", `{"code":"p2"}`, "token", access), 502, CodeWeChatError)
	want(t, hs.call("POST", "/wx/phone", `{"code":"p1"}`), 401, CodeInvalidToken)
	want(t, hs.call("POST", "/wx/phone", `{}`, "token", access), 400, CodeInvalidRequest)
	r = hs.call("GET", "/wx/profile", "", "token", access)
	if r.body["user"].(map[string]any)["phone"] != "+86 13800138000" {
		t.Fatalf("phone not stored (or overwritten by the mismatch): %s", r.raw)
	}
}

func TestDecrypt(t *testing.T) {
	hs := newHarness(t)
	access, _ := hs.login("o1") // session_key "0123456789abcdef"
	key := []byte("0123456789abcdef")
	ed, iv, err := wechat.EncryptOpenData(key, []byte(`{"openId":"o1","watermark":{"appid":"`+testApp+`","timestamp":1}}`))
	if err != nil {
		t.Fatal(err)
	}
	r := hs.call("POST", "/wx/decrypt", `{"encrypted_data":"`+ed+`","iv":"`+iv+`"}`, "token", access)
	want(t, r, 200, "")
	if d := r.body["data"].(map[string]any); d["openId"] != "o1" {
		t.Fatalf("decrypt: %s", r.raw)
	}
	// rawData signature: sha1(rawData + session_key as WeChat's base64).
	raw := `{"nickName":"x"}`
	sum := sha1.Sum([]byte(raw + base64.StdEncoding.EncodeToString(key)))
	withSig := func(sig string) string {
		b, _ := json.Marshal(map[string]string{"encrypted_data": ed, "iv": iv, "raw_data": raw, "signature": sig})
		return string(b)
	}
	want(t, hs.call("POST", "/wx/decrypt", withSig(hex.EncodeToString(sum[:])), "token", access), 200, "")
	want(t, hs.call("POST", "/wx/decrypt", withSig(strings.Repeat("0", 40)), "token", access), 400, CodeInvalidRequest)
	other, _, _ := wechat.EncryptOpenData(key, []byte(`{"watermark":{"appid":"wxother","timestamp":1}}`))
	for _, body := range []string{
		`{"encrypted_data":"` + other + `","iv":"` + iv + `"}`,
		`{"encrypted_data":"!!!","iv":"` + iv + `"}`,
		`{"encrypted_data":"` + ed + `","iv":"c2hvcnQ="}`,
		`{"encrypted_data":"` + ed[:len(ed)-8] + `","iv":"` + iv + `"}`,
		`{"iv":"` + iv + `"}`,
	} {
		want(t, hs.call("POST", "/wx/decrypt", body, "token", access), 400, CodeInvalidRequest)
	}
}

func TestSealer(t *testing.T) {
	s, err := NewSealer("secret")
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := s.Seal("app", "sid", []byte("session-key-1234"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(sealed), "session-key-1234") {
		t.Fatal("not encrypted")
	}
	if pt, err := s.Open("app", "sid", sealed); err != nil || string(pt) != "session-key-1234" {
		t.Fatalf("open: %q %v", pt, err)
	}
	if _, err := s.Open("app", "other-sid", sealed); err == nil {
		t.Fatal("opened under another session")
	}
	other, _ := NewSealer("other-secret")
	if _, err := other.Open("app", "sid", sealed); err == nil {
		t.Fatal("opened under another secret")
	}
	if _, err := s.Open("app", "sid", []byte("short")); err == nil {
		t.Fatal("opened garbage")
	}
}
