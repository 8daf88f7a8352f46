package handler

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/wxauth/caddy-wechat-auth/internal/platform"
)

// fakeExchanger is a platform's code exchange: single-use codes, the last
// Extra it was given, or a fixed error.
type fakeExchanger struct {
	name  string
	mu    sync.Mutex
	codes map[string]platform.Session
	extra platform.Extra
	err   error
}

func (f *fakeExchanger) Name() string { return f.name }

func (f *fakeExchanger) Exchange(_ context.Context, code string, extra platform.Extra) (*platform.Session, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.extra = extra
	if f.err != nil {
		return nil, f.err
	}
	s, ok := f.codes[code]
	if !ok {
		return nil, &platform.Error{Platform: f.name, API: "fake", Kind: platform.ErrInvalidCode}
	}
	delete(f.codes, code)
	return &s, nil
}

// platformHarness is a harness whose block serves platform p with a fake
// exchange; it shares the store, keys and clock of base when given.
func platformHarness(t *testing.T, p string, base *harness) (*harness, *fakeExchanger) {
	t.Helper()
	if base == nil {
		base = newHarness(t)
	}
	x := &fakeExchanger{name: p, codes: map[string]platform.Session{}}
	cfg := base.h.cfg
	cfg.Platform, cfg.Exchanger = p, x
	if p != platform.WeChat {
		cfg.WeChat = nil
	}
	h, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	hs := *base
	hs.h = h
	return &hs, x
}

// upstreamHeaders runs the guard with access and returns the headers the
// upstream would get.
func upstreamHeaders(t *testing.T, h *Handler, access string) (int, http.Header) {
	t.Helper()
	r := httptest.NewRequest("GET", "/api/thing", nil)
	r.Header.Set("Authorization", "Bearer "+access)
	r.Header.Set("X-WeChat-Platform", "spoofed")
	w := httptest.NewRecorder()
	res, _, _ := h.Serve(w, r)
	if res != ResultOK {
		return w.Code, nil
	}
	return http.StatusOK, r.Header
}

func platformLogin(t *testing.T, hs *harness, x *fakeExchanger, key []byte) (string, map[string]any) {
	t.Helper()
	hs.n++
	code := fmt.Sprintf("pcode-%d", hs.n)
	x.mu.Lock()
	x.codes[code] = platform.Session{OpenID: "open-" + x.name, SessionKey: key}
	x.mu.Unlock()
	r := hs.call("POST", "/wx/login", `{"code":"`+code+`","anonymous_code":"anon-1"}`)
	want(t, r, 200, "")
	return r.body["token"].(string), r.body
}

func TestPlatformTokensAndHeaders(t *testing.T) {
	for _, p := range platform.Names() {
		t.Run(p, func(t *testing.T) {
			hs, x := platformHarness(t, p, nil)
			access, _ := platformLogin(t, hs, x, []byte("0123456789abcdef"))
			c, err := hs.h.cfg.Tokens.Verify(access)
			if err != nil {
				t.Fatal(err)
			}
			wantClaim := p
			if p == platform.WeChat {
				wantClaim = ""
			}
			if c.Platform != wantClaim {
				t.Errorf("platform claim %q, want %q", c.Platform, wantClaim)
			}
			if x.extra.AnonymousCode != "anon-1" {
				t.Errorf("the exchange got anonymous_code %q", x.extra.AnonymousCode)
			}
			status, hdr := upstreamHeaders(t, hs.h, access)
			if status != 200 || hdr.Get("X-WeChat-Platform") != p || hdr.Get("X-WeChat-OpenID") != "open-"+p {
				t.Fatalf("guard %d, upstream platform %q openid %q", status, hdr.Get("X-WeChat-Platform"), hdr.Get("X-WeChat-OpenID"))
			}
		})
	}
}

// TestCrossPlatformTokenRefused: blocks of one app and one key on two
// platforms each refuse the other's tokens; a WeChat block refuses any
// token with a platform claim.
func TestCrossPlatformTokenRefused(t *testing.T) {
	base := newHarness(t)
	blocks := map[string]*harness{}
	tokens := map[string]string{}
	for _, p := range platform.Names() {
		hs, x := platformHarness(t, p, base)
		blocks[p] = hs
		tokens[p], _ = platformLogin(t, hs, x, []byte("0123456789abcdef"))
	}
	for from, tok := range tokens {
		for to, hs := range blocks {
			status, _ := upstreamHeaders(t, hs.h, tok)
			if (from == to) != (status == 200) {
				t.Errorf("a %s token at the %s block: %d", from, to, status)
			}
			if from != to && status != http.StatusUnauthorized {
				t.Errorf("a %s token at the %s block: %d, want 401", from, to, status)
			}
		}
	}
}

func TestDouyinLoginWithoutCode(t *testing.T) {
	hs, x := platformHarness(t, platform.Douyin, nil)
	r := hs.call("POST", "/wx/login", `{"anonymous_code":"anon-1"}`)
	want(t, r, 400, CodeInvalidRequest)
	if msg, _ := r.body["message"].(string); !strings.Contains(msg, "not logged in to the Douyin app") {
		t.Errorf("message %q", msg)
	}
	if x.extra.AnonymousCode != "" {
		t.Error("the exchange was called without a code")
	}
	hs, _ = platformHarness(t, platform.QQ, nil)
	r = hs.call("POST", "/wx/login", `{}`)
	want(t, r, 400, CodeInvalidRequest)
	if msg, _ := r.body["message"].(string); !strings.Contains(msg, "qq.login") {
		t.Errorf("message %q does not name qq.login", msg)
	}
}

func TestEndpointsAPlatformLacks(t *testing.T) {
	for _, p := range platform.Names() {
		hs, x := platformHarness(t, p, nil)
		access, _ := platformLogin(t, hs, x, []byte("0123456789abcdef"))
		for _, tc := range []struct {
			path   string
			served bool
		}{{"/wx/phone", platform.HasPhone(p)}, {"/wx/decrypt", platform.HasOpenData(p)}} {
			for _, auth := range []string{"", "Bearer " + access} {
				r := hs.call("POST", tc.path, `{}`, "Authorization", auth)
				if served := r.status != http.StatusNotFound; served != tc.served {
					t.Errorf("%s %s (auth %v): %d %s", p, tc.path, auth != "", r.status, r.raw)
				}
				if !tc.served && r.body["error"] != CodeNotFound {
					t.Errorf("%s %s: %s", p, tc.path, r.raw)
				}
			}
		}
	}
}

func TestBaiduDecrypt(t *testing.T) {
	hs, x := platformHarness(t, platform.Baidu, nil)
	key := []byte("0123456789abcdef01234567")
	access, _ := platformLogin(t, hs, x, key)
	enc, iv, err := platform.EncryptBaiduOpenData(key, []byte(`{"nickname":"bd"}`), testApp)
	if err != nil {
		t.Fatal(err)
	}
	r := hs.call("POST", "/wx/decrypt", `{"encrypted_data":"`+enc+`","iv":"`+iv+`"}`, "Authorization", "Bearer "+access)
	want(t, r, 200, "")
	if d, _ := r.body["data"].(map[string]any); d["nickname"] != "bd" {
		t.Fatalf("data %s", r.raw)
	}
	enc, iv, _ = platform.EncryptBaiduOpenData(key, []byte(`{"nickname":"bd"}`), "other-app-key")
	r = hs.call("POST", "/wx/decrypt", `{"encrypted_data":"`+enc+`","iv":"`+iv+`"}`, "Authorization", "Bearer "+access)
	want(t, r, 400, CodeInvalidRequest)
}

func TestPlatformErrorsNameThePlatform(t *testing.T) {
	for _, tc := range []struct {
		p      string
		err    error
		status int
		code   string
		inMsg  string
	}{
		{platform.Douyin, &platform.Error{Platform: "douyin", API: "x", Kind: platform.ErrInvalidCode}, 400, CodeInvalidCode, "tt.login"},
		{platform.Alipay, &platform.Error{Platform: "alipay", API: "x", Kind: platform.ErrBadResponse, Cause: platform.ErrBadSignature}, 502, CodeWeChatError, "Alipay's answer could not be verified"},
		{platform.Baidu, &platform.Error{Platform: "baidu", API: "x", Kind: platform.ErrUnavailable}, 503, CodeWeChatUnavailable, "Baidu is unavailable"},
		{platform.QQ, &platform.Error{Platform: "qq", API: "x", Kind: platform.ErrRateLimited}, 429, CodeRateLimited, "QQ"},
		{platform.Alipay, errors.Join(platform.ErrAPI), 502, CodeWeChatError, "Alipay returned an error"},
	} {
		hs, x := platformHarness(t, tc.p, nil)
		x.err = tc.err
		r := hs.call("POST", "/wx/login", `{"code":"c"}`)
		want(t, r, tc.status, tc.code)
		if msg, _ := r.body["message"].(string); !strings.Contains(msg, tc.inMsg) {
			t.Errorf("%s: message %q does not contain %q", tc.p, msg, tc.inMsg)
		}
	}
}

func TestNewRefusesMismatchedExchanger(t *testing.T) {
	base := newHarness(t)
	cfg := base.h.cfg
	cfg.Platform, cfg.Exchanger, cfg.WeChat = platform.QQ, &fakeExchanger{name: platform.Baidu}, nil
	if _, err := New(cfg); err == nil {
		t.Fatal("a baidu exchange accepted for a qq block")
	}
	cfg.Platform, cfg.Exchanger = "line", nil
	if _, err := New(cfg); err == nil {
		t.Fatal("unknown platform accepted")
	}
}
