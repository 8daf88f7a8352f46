package emulator

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/wxauth/caddy-wechat-auth/internal/platform"
)

var platformKeys struct {
	once        sync.Once
	app, other  *rsa.PrivateKey
	appFile     string // the app's private key, PEM
	appPubFile  string // the app's public key, PEM
	otherPubPEM string // an unrelated public key, PEM
}

// alipayKeyFiles writes the test keys once: the app's key pair, and an
// unrelated public key.
func alipayKeyFiles(t *testing.T) (appKey *rsa.PrivateKey, appPub, otherPub string) {
	t.Helper()
	platformKeys.once.Do(func() {
		dir, err := os.MkdirTemp("", "emulator-alipay-")
		if err != nil {
			panic(err)
		}
		platformKeys.app, _ = rsa.GenerateKey(rand.Reader, 2048)
		platformKeys.other, _ = rsa.GenerateKey(rand.Reader, 2048)
		write := func(name string, b *pem.Block) string {
			p := filepath.Join(dir, name)
			if err := os.WriteFile(p, pem.EncodeToMemory(b), 0o600); err != nil {
				panic(err)
			}
			return p
		}
		der, _ := x509.MarshalPKIXPublicKey(&platformKeys.app.PublicKey)
		platformKeys.appPubFile = write("app_pub.pem", &pem.Block{Type: "PUBLIC KEY", Bytes: der})
		der, _ = x509.MarshalPKIXPublicKey(&platformKeys.other.PublicKey)
		platformKeys.otherPubPEM = write("other_pub.pem", &pem.Block{Type: "PUBLIC KEY", Bytes: der})
	})
	return platformKeys.app, platformKeys.appPubFile, platformKeys.otherPubPEM
}

// platformServer runs an emulator of platform p behind a test HTTP server.
func platformServer(t *testing.T, e *Emulator) (*Emulator, *fakeClock, string) {
	t.Helper()
	e, clock := newEmulator(t, e)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
			http.NotFound(w, r)
			return nil
		})
		if err := e.ServeHTTP(w, r, next); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
	}))
	t.Cleanup(srv.Close)
	return e, clock, srv.URL
}

// alipayPublicKey fetches the emulator's public key.
func alipayPublicKey(t *testing.T, base string) *rsa.PublicKey {
	t.Helper()
	resp, err := http.Get(base + "/emulator/alipay/public_key")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	k, err := platform.ParseRSAPublicKey(body)
	if err != nil {
		t.Fatalf("public key %d %q: %v", resp.StatusCode, body, err)
	}
	return k
}

func postJSON(t *testing.T, url, body string) map[string]any {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return m
}

// platformExchanger is the module's exchanger of p against the emulator.
func platformExchanger(t *testing.T, p, base string, clock *fakeClock) platform.Exchanger {
	t.Helper()
	cfg := platform.Config{Platform: p, BaseURL: base, AppID: testAppID, AppSecret: testSecret, Now: clock.Now, Timeout: 5 * time.Second}
	if p == platform.Alipay {
		app, _, _ := alipayKeyFiles(t)
		cfg.AlipayPrivateKey, cfg.AlipayPublicKey = app, alipayPublicKey(t, base)
	}
	x, err := platform.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

func emulatorFor(t *testing.T, p string) *Emulator {
	e := &Emulator{AppID: testAppID, AppSecret: testSecret, Platform: p}
	if p == platform.Alipay {
		_, appPub, _ := alipayKeyFiles(t)
		e.AlipayAppPublicKeyFile = appPub
	}
	return e
}

// TestPlatformExchanges runs each platform's real exchanger against the
// emulator: a minted code works once, faults come in the platform's shape.
func TestPlatformExchanges(t *testing.T) {
	for _, p := range []string{platform.QQ, platform.Douyin, platform.Alipay, platform.Baidu} {
		t.Run(p, func(t *testing.T) {
			_, clock, base := platformServer(t, emulatorFor(t, p))
			x := platformExchanger(t, p, base, clock)
			ctx := context.Background()
			mint := func() string {
				got := postJSON(t, base+"/emulator/code", `{"openid":"user-`+p+`","unionid":"union-`+p+`"}`)
				if got["platform"] != p {
					t.Errorf("the code answer names platform %v, want %s", got["platform"], p)
				}
				return got["code"].(string)
			}
			code := mint()
			s, err := x.Exchange(ctx, code, platform.Extra{AnonymousCode: "anon-x"})
			if err != nil {
				t.Fatalf("exchange: %v", err)
			}
			wantKey := map[string]int{platform.QQ: 16, platform.Douyin: 16, platform.Baidu: 24, platform.Alipay: 0}[p]
			if s.OpenID != "user-"+p || len(s.SessionKey) != wantKey {
				t.Fatalf("session %q with a %d-byte key", s.OpenID, len(s.SessionKey))
			}
			if wantUnion := p == platform.QQ || p == platform.Douyin; (s.UnionID == "union-"+p) != wantUnion {
				t.Errorf("unionid %q", s.UnionID)
			}
			if _, err := x.Exchange(ctx, code, platform.Extra{}); !errors.Is(err, platform.ErrInvalidCode) {
				t.Fatalf("reused code: %v", err)
			}
			if _, err := x.Exchange(ctx, "never-minted", platform.Extra{}); !errors.Is(err, platform.ErrInvalidCode) {
				t.Fatalf("unknown code: %v", err)
			}
			rateLimit := platform.ErrRateLimited
			if p == platform.Douyin {
				rateLimit = platform.ErrAPI // Douyin documents no rate-limit err_no: only HTTP 429 is one
			}
			for _, tc := range []struct {
				fault string
				want  error
			}{
				{`{"errcode":-1}`, nil},
				{`{"errcode":-1,"times":2}`, platform.ErrUnavailable},
				{`{"errcode":45011}`, rateLimit},
				{`{"status":429}`, platform.ErrRateLimited},
				{`{"errcode":40029}`, platform.ErrInvalidCode},
				{`{"garbage":true}`, platform.ErrBadResponse},
				{`{"status":503,"times":2}`, platform.ErrUnavailable},
			} {
				if m := postJSON(t, base+"/emulator/fault", tc.fault); m["queued"] == nil {
					t.Fatalf("fault %s: %v", tc.fault, m)
				}
				_, err := x.Exchange(ctx, mint(), platform.Extra{})
				if (tc.want == nil) != (err == nil) || (tc.want != nil && !errors.Is(err, tc.want)) {
					t.Errorf("fault %s: %v, want %v", tc.fault, err, tc.want)
				}
				req, _ := http.NewRequest(http.MethodDelete, base+"/emulator/fault", nil)
				if resp, err := http.DefaultClient.Do(req); err == nil {
					resp.Body.Close()
				}
			}
		})
	}
}

func TestAlipayEmulatorRefusesBadSignatures(t *testing.T) {
	_, clock, base := platformServer(t, emulatorFor(t, platform.Alipay))
	// The module holding another app key: the gateway refuses its calls.
	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	x, err := platform.New(platform.Config{Platform: platform.Alipay, BaseURL: base, AppID: testAppID, Now: clock.Now,
		AlipayPrivateKey: other, AlipayPublicKey: alipayPublicKey(t, base)})
	if err != nil {
		t.Fatal(err)
	}
	code := postJSON(t, base+"/emulator/code", `{}`)["code"].(string)
	_, err = x.Exchange(context.Background(), code, platform.Extra{})
	if !errors.Is(err, platform.ErrAPI) || !strings.Contains(err.Error(), "isv.invalid-signature") {
		t.Fatalf("request signed by a foreign key: %v", err)
	}
	// The module holding the wrong Alipay public key: the answers do not verify.
	app, _, otherPub := alipayKeyFiles(t)
	data, _ := os.ReadFile(otherPub)
	wrong, _ := platform.ParseRSAPublicKey(data)
	x, _ = platform.New(platform.Config{Platform: platform.Alipay, BaseURL: base, AppID: testAppID, Now: clock.Now,
		AlipayPrivateKey: app, AlipayPublicKey: wrong})
	_, err = x.Exchange(context.Background(), code, platform.Extra{})
	if !errors.Is(err, platform.ErrBadSignature) {
		t.Fatalf("answer checked with the wrong public key: %v", err)
	}
	// A stale timestamp is refused.
	clock.Advance(time.Hour)
	x, _ = platform.New(platform.Config{Platform: platform.Alipay, BaseURL: base, AppID: testAppID, Now: func() time.Time { return clock.Now().Add(-time.Hour) },
		AlipayPrivateKey: app, AlipayPublicKey: alipayPublicKey(t, base)})
	if _, err = x.Exchange(context.Background(), code, platform.Extra{}); err == nil || !strings.Contains(err.Error(), "isv.invalid-timestamp") {
		t.Fatalf("stale timestamp: %v", err)
	}
}

func TestDouyinEmulatorAnonymousOnly(t *testing.T) {
	_, _, base := platformServer(t, emulatorFor(t, platform.Douyin))
	m := postJSON(t, base+"/api/apps/v2/jscode2session", `{"appid":"`+testAppID+`","secret":"`+testSecret+`","anonymous_code":"a1"}`)
	d, _ := m["data"].(map[string]any)
	if m["err_no"] != float64(0) || d["anonymous_openid"] == "" || d["openid"] != "" {
		t.Fatalf("anonymous-only answer %v", m)
	}
	m = postJSON(t, base+"/api/apps/v2/jscode2session", `{"appid":"wrong","secret":"`+testSecret+`","code":"c"}`)
	if m["err_no"] != float64(40015) {
		t.Fatalf("wrong appid: %v", m)
	}
}

func TestBaiduEmulatorOpenData(t *testing.T) {
	_, clock, base := platformServer(t, emulatorFor(t, platform.Baidu))
	x := platformExchanger(t, platform.Baidu, base, clock)
	code := postJSON(t, base+"/emulator/code", `{"openid":"bd-1"}`)["code"].(string)
	s, err := x.Exchange(context.Background(), code, platform.Extra{})
	if err != nil {
		t.Fatal(err)
	}
	m := postJSON(t, base+"/emulator/encrypt", `{"openid":"bd-1","data":{"nickName":"百度"}}`)
	enc, iv := m["encrypted_data"].(string), m["iv"].(string)
	data, err := platform.DecryptOpenData(platform.Baidu, s.SessionKey, enc, iv, testAppID)
	if err != nil || !bytes.Contains(data, []byte("百度")) {
		t.Fatalf("decrypt: %s %v", data, err)
	}
	if !platform.VerifyRawSignature(m["raw_data"].(string), s.SessionKey, m["signature"].(string)) {
		t.Fatal("signature of the raw data does not verify")
	}
}

func TestEmulatorPlatformCaddyfile(t *testing.T) {
	for _, tc := range []struct {
		in, wantErr string
	}{
		{"wechat_emulator {\n platform douyin\n}", ""},
		{"wechat_emulator {\n platform alipay\n alipay_app_public_key_file /a.pem\n alipay_key_file /k.pem\n}", ""},
		{"wechat_emulator {\n platform line\n}", "want one of"},
		{"wechat_emulator {\n platform\n}", "wrong argument count"},
		{"wechat_emulator {\n platform qq\n alipay_key_file /k.pem\n}", "alipay only"},
		{"wechat_emulator {\n platform baidu\n platform qq\n}", "more than once"},
	} {
		var e Emulator
		err := e.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tc.in))
		if (tc.wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("%q: %v, want %q", tc.in, err, tc.wantErr)
		}
	}
}
