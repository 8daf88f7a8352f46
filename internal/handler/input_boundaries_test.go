package handler

import (
	"net/http/httptest"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/wxauth/caddy-wechat-auth/internal/wechat"
)

// TestCodeLengthBoundary: a login or phone code of 256 bytes goes to
// WeChat; one byte more is refused without asking WeChat.
func TestCodeLengthBoundary(t *testing.T) {
	hs := newHarness(t)
	access, _ := hs.login("o1")
	atLimit := strings.Repeat("c", maxCodeLen)
	over := atLimit + "c"

	hs.wx.addCode(atLimit, "o2", "")
	want(t, hs.call("POST", "/wx/login", `{"code":"`+atLimit+`"}`), 200, "")
	hs.wx.addCode(over, "o3", "")
	want(t, hs.call("POST", "/wx/login", `{"code":"`+over+`"}`), 400, CodeInvalidRequest)
	if _, asked := hs.wx.codes[over]; !asked {
		t.Fatal("an over-long code reached WeChat")
	}

	hs.wx.phones[atLimit] = wechat.PhoneInfo{PhoneNumber: "13800138000", PurePhoneNumber: "13800138000", CountryCode: "86", WatermarkAppID: testApp}
	hs.wx.phones[over] = hs.wx.phones[atLimit]
	want(t, hs.call("POST", "/wx/phone", `{"code":"`+atLimit+`"}`, "token", access), 200, "")
	want(t, hs.call("POST", "/wx/phone", `{"code":"`+over+`"}`, "token", access), 400, CodeInvalidRequest)
}

// TestRefreshSecretLength: the refresh-token derivation secret must have
// at least MinSecretLen bytes.
func TestRefreshSecretLength(t *testing.T) {
	hs := newHarness(t)
	cfg := hs.h.cfg
	cfg.RefreshSecret = []byte(strings.Repeat("r", MinSecretLen))
	if _, err := New(cfg); err != nil {
		t.Fatalf("%d bytes: %v", MinSecretLen, err)
	}
	cfg.RefreshSecret = cfg.RefreshSecret[:MinSecretLen-1]
	if _, err := New(cfg); err == nil {
		t.Fatalf("%d bytes accepted", MinSecretLen-1)
	}
}

// TestCustomPrefixStripsEveryCase: with a header prefix holding letters
// at both ends of the alphabet, spoofed identity headers are removed in
// any case and with '_' for '-', and only those.
func TestCustomPrefixStripsEveryCase(t *testing.T) {
	hs := newHarness(t)
	cfg := hs.h.cfg
	cfg.HeaderPrefix = "X-Zone-Auth-"
	h, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest("GET", "/api", nil)
	r.Header = map[string][]string{
		"X-Zone-Auth-User-Id": {"1"},
		"x_zone_auth_openid":  {"o"},
		"X-ZONE-AUTH-APPID":   {"a"},
		"X-Zone-Authority":    {"keep"},
		"X-Zone-Aut":          {"keep"},
	}
	h.stripHeaders(r.Header)
	if len(r.Header) != 2 || r.Header.Get("X-Zone-Authority") != "keep" || r.Header.Get("X-Zone-Aut") != "keep" {
		t.Fatalf("after strip: %v", r.Header)
	}
}

// TestInternalErrorLoggedAtErrorLevel: a storage failure is answered 500
// and logged at error level for the operator, with its cause.
func TestInternalErrorLoggedAtErrorLevel(t *testing.T) {
	hs := newHarness(t)
	core, logs := observer.New(zapcore.DebugLevel)
	cfg := hs.h.cfg
	cfg.Logger = zap.New(core)
	h, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	hs.h = h
	if err := hs.st.Close(); err != nil {
		t.Fatal(err)
	}
	hs.wx.addCode("c1", "o1", "")
	want(t, hs.call("POST", "/wx/login", `{"code":"c1"}`), 500, CodeInternalError)
	for _, e := range logs.All() {
		if e.Message == "wechat_auth endpoint error" && e.Level == zapcore.ErrorLevel && e.ContextMap()["error"] == CodeInternalError {
			if _, ok := e.ContextMap()["cause"]; !ok {
				t.Fatalf("the entry does not say what failed: %v", e.ContextMap())
			}
			return
		}
	}
	t.Fatalf("no error-level entry for the 500: %v", logs.All())
}
