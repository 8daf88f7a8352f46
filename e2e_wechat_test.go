package wechatauth_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/caddyserver/caddy/v2/caddytest"
	"github.com/golang-jwt/jwt/v5"
)

func TestE2EPhoneAndDecrypt(t *testing.T) {
	e := newE2E(t, "")
	body := e.login("o_e2e_phone")
	tok := body["token"].(string)

	// Phone: a code minted as the getPhoneNumber button would give it.
	a := e.postJSON(wechatURL+"/emulator/phone_code", map[string]string{"phone_number": "13800138000", "country_code": "86"}, nil)
	expect(t, a, 200, "")
	phoneCode := a.body["code"].(string)
	a = e.postJSON(siteURL+"/wx/phone", map[string]string{"code": phoneCode}, bearer(tok))
	expect(t, a, 200, "")
	noSecrets(t, a, phoneCode)
	if p := a.body["phone"].(map[string]any); p["pure_phone_number"] != "13800138000" || p["country_code"] != "86" {
		t.Fatalf("phone: %s", a.raw)
	}
	a = e.do("GET", siteURL+"/wx/profile", "", "", bearer(tok))
	if u := a.body["user"].(map[string]any); !strings.Contains(u["phone"].(string), "13800138000") {
		t.Fatalf("phone not stored: %s", a.raw)
	}
	// The same phone code twice: WeChat refuses it.
	expect(t, e.postJSON(siteURL+"/wx/phone", map[string]string{"code": phoneCode}, bearer(tok)), 400, "invalid_code")
	// A phone number made for another app: refused, nothing stored.
	a = e.postJSON(wechatURL+"/emulator/phone_code", map[string]string{"phone_number": "13900139000", "watermark_appid": "wxsomeoneelse"}, nil)
	expect(t, e.postJSON(siteURL+"/wx/phone", map[string]string{"code": a.body["code"].(string)}, bearer(tok)), 502, "wechat_error")
	a = e.do("GET", siteURL+"/wx/profile", "", "", bearer(tok))
	if u := a.body["user"].(map[string]any); strings.Contains(u["phone"].(string), "13900139000") {
		t.Fatalf("mismatched phone stored: %s", a.raw)
	}
	// Without a token.
	expect(t, e.postJSON(siteURL+"/wx/phone", map[string]string{"code": "x"}, nil), 401, "invalid_token")

	// Open data encrypted by "WeChat" with this login's real session_key.
	a = e.postJSON(wechatURL+"/emulator/encrypt", map[string]any{"openid": "o_e2e_phone", "data": map[string]any{"nickName": "Ann", "openId": "o_e2e_phone"}}, nil)
	expect(t, a, 200, "")
	enc := a.body
	a = e.postJSON(siteURL+"/wx/decrypt", map[string]any{
		"encrypted_data": enc["encrypted_data"], "iv": enc["iv"], "raw_data": enc["raw_data"], "signature": enc["signature"],
	}, bearer(tok))
	expect(t, a, 200, "")
	noSecrets(t, a)
	if d := a.body["data"].(map[string]any); d["nickName"] != "Ann" || d["watermark"].(map[string]any)["appid"] != e2eAppID {
		t.Fatalf("decrypt: %s", a.raw)
	}
	// Tampered signature, bad base64, bad padding, wrong IV length: 400.
	ed := enc["encrypted_data"].(string)
	raw, _ := base64.StdEncoding.DecodeString(ed)
	raw[len(raw)-1] ^= 0xff
	for name, req := range map[string]map[string]any{
		"signature":  {"encrypted_data": ed, "iv": enc["iv"], "raw_data": enc["raw_data"], "signature": strings.Repeat("0", 40)},
		"base64":     {"encrypted_data": "%%%", "iv": enc["iv"]},
		"padding":    {"encrypted_data": base64.StdEncoding.EncodeToString(raw), "iv": enc["iv"]},
		"iv length":  {"encrypted_data": ed, "iv": "AAAA"},
		"truncated":  {"encrypted_data": ed[:len(ed)-4], "iv": enc["iv"]},
		"no iv":      {"encrypted_data": ed},
		"empty data": {"encrypted_data": "", "iv": enc["iv"]},
	} {
		t.Run(name, func(t *testing.T) {
			expect(t, e.postJSON(siteURL+"/wx/decrypt", req, bearer(tok)), 400, "invalid_request")
		})
	}
	// Another app's data (watermark mismatch).
	a = e.postJSON(wechatURL+"/emulator/encrypt", map[string]any{"openid": "o_e2e_phone", "appid": "wxsomeoneelse", "data": map[string]any{"x": 1}}, nil)
	expect(t, e.postJSON(siteURL+"/wx/decrypt", map[string]any{"encrypted_data": a.body["encrypted_data"], "iv": a.body["iv"]}, bearer(tok)), 400, "invalid_request")

	// One byte flipped in the middle of the ciphertext: CBC garbles the
	// block inside the long nickname and the padding still checks. About
	// one variant in ten still parses as JSON; every one must be refused,
	// and no answer may carry invalid UTF-8.
	a = e.postJSON(wechatURL+"/emulator/encrypt", map[string]any{"openid": "o_e2e_phone", "data": map[string]any{"nickName": strings.Repeat("n", 200)}}, nil)
	expect(t, a, 200, "")
	ct, err := base64.StdEncoding.DecodeString(a.body["encrypted_data"].(string))
	if err != nil {
		t.Fatal(err)
	}
	expect(t, e.postJSON(siteURL+"/wx/decrypt", map[string]any{"encrypted_data": a.body["encrypted_data"], "iv": a.body["iv"]}, bearer(tok)), 200, "")
	for v := 1; v < 64; v++ {
		bad := bytes.Clone(ct)
		bad[len(bad)/2] ^= byte(v)
		r := e.postJSON(siteURL+"/wx/decrypt", map[string]any{"encrypted_data": base64.StdEncoding.EncodeToString(bad), "iv": a.body["iv"]}, bearer(tok))
		if !utf8.ValidString(r.raw) {
			t.Fatalf("flipped byte (xor %#x): answer is not valid UTF-8: %q", v, r.raw)
		}
		expect(t, r, 400, "invalid_request")
	}
}

func TestE2ETwoAppsOneDatabase(t *testing.T) {
	tester := caddytest.NewTester(t)
	db := filepath.Join(t.TempDir(), "shared.db")
	block := func(app, prefix string) string {
		return appBlock(app, prefix, db, app+" user={http.auth.user.id} app={http.auth.user.appid}")
	}
	tester.InitServer(`{
	admin localhost:2999
	http_port 9080
	https_port 9443
	skip_install_trust
}
http://127.0.0.1:9081 {
	wechat_emulator
}
http://127.0.0.1:9080 {`+block("wxappaaaaaaaaaaaa1", "/a")+block("wxappbbbbbbbbbbbb2", "/b")+`
}
`, "caddyfile")
	t.Cleanup(func() { tester.InitServer(emptyConfig, "caddyfile") })
	e := &e2e{t: t, tester: tester, client: tester.Client}

	loginAt := func(prefix, openid string) map[string]any {
		a := e.postJSON(siteURL+prefix+"/wx/login", map[string]string{"code": e.mint(openid)}, nil)
		expect(t, a, 200, "")
		return a.body
	}
	// The same openid in two apps: two users, each new, each id 1.
	a1 := loginAt("/a", "o_same_person")
	b1 := loginAt("/b", "o_same_person")
	if a1["new_user"] != true || b1["new_user"] != true {
		t.Fatalf("users shared across apps: %v / %v", a1, b1)
	}
	// A token of app A is worthless at app B, and the other way round.
	expect(t, e.do("GET", siteURL+"/b/thing", "", "", bearer(a1["token"].(string))), 401, "invalid_token")
	expect(t, e.do("GET", siteURL+"/a/thing", "", "", bearer(b1["token"].(string))), 401, "invalid_token")
	a := e.do("GET", siteURL+"/a/thing", "", "", bearer(a1["token"].(string)))
	expect(t, a, 200, "")
	if a.raw != "wxappaaaaaaaaaaaa1 user=1 app=wxappaaaaaaaaaaaa1" {
		t.Fatalf("app A: %q", a.raw)
	}
	// Refresh tokens do not cross either.
	expect(t, e.postJSON(siteURL+"/b/wx/refresh", map[string]any{"refresh_token": a1["refresh_token"]}, nil), 401, "invalid_grant")
	// A profile change in A stays in A.
	expect(t, e.do("PATCH", siteURL+"/a/wx/profile", "application/json", `{"nickname":"only in A"}`, bearer(a1["token"].(string))), 200, "")
	a = e.do("GET", siteURL+"/b/wx/profile", "", "", bearer(b1["token"].(string)))
	if a.body["user"].(map[string]any)["nickname"] == "only in A" {
		t.Fatalf("profile leaked across apps: %s", a.raw)
	}
}

func writeEd25519PEM(t *testing.T, path string) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

func tokenKID(t *testing.T, tok string) string {
	t.Helper()
	h, _, _ := strings.Cut(tok, ".")
	b, err := base64.RawURLEncoding.DecodeString(h)
	if err != nil {
		t.Fatal(err)
	}
	var hdr map[string]any
	if err := json.Unmarshal(b, &hdr); err != nil {
		t.Fatal(err)
	}
	kid, _ := hdr["kid"].(string)
	return kid
}

func TestE2EKeyRotationAndJWKS(t *testing.T) {
	dir := t.TempDir()
	oldKey, newKey := filepath.Join(dir, "old.pem"), filepath.Join(dir, "new.pem")
	writeEd25519PEM(t, oldKey)
	writeEd25519PEM(t, newKey)
	e := newE2E(t, "")
	config := func(keys ...string) string {
		lines := make([]string, len(keys))
		for i, k := range keys {
			lines[i] = "signing_key_file " + k
		}
		return e2eConfigKeys(e.db, strings.Join(lines, "\n\t\t"), "")
	}

	e.loadRaw(config(oldKey))
	oldTok := e.login("o_e2e_rotate")["token"].(string)
	jwks := e.do("GET", siteURL+"/.well-known/jwks.json", "", "", nil)
	expect(t, jwks, 200, "")
	if jwks.header.Get("Cache-Control") == "" || len(jwks.body["keys"].([]any)) != 1 {
		t.Fatalf("jwks: %v %s", jwks.header, jwks.raw)
	}

	// Step 1, publish: the new key listed after the current one. The
	// current key still signs, and the JWK Set has both, so outside
	// verifiers that cached it for its max-age learn the new key before
	// any token uses it.
	e.loadRaw(config(oldKey, newKey))
	jwks = e.do("GET", siteURL+"/.well-known/jwks.json", "", "", nil)
	if jwks.header.Get("Cache-Control") != "public, max-age=300" {
		t.Fatalf("jwks Cache-Control %q", jwks.header.Get("Cache-Control"))
	}
	published := map[string]bool{}
	for _, k := range jwks.body["keys"].([]any) {
		published[k.(map[string]any)["kid"].(string)] = true
	}
	overlapTok := e.login("o_e2e_rotate")["token"].(string)
	if len(published) != 2 || !published[tokenKID(t, oldTok)] || tokenKID(t, overlapTok) != tokenKID(t, oldTok) {
		t.Fatalf("during the overlap: published %v, signing kid %q, old kid %q", published, tokenKID(t, overlapTok), tokenKID(t, oldTok))
	}

	// Step 2, after the JWK Set's max-age: the new key first, the old one
	// kept. Old tokens stay valid, new ones are signed with the new key
	// (already published), the JWK Set has both.
	e.loadRaw(config(newKey, oldKey))
	expect(t, e.do("GET", siteURL+"/x", "", "", bearer(oldTok)), 200, "")
	newTok := e.login("o_e2e_rotate")["token"].(string)
	if tokenKID(t, newTok) == tokenKID(t, oldTok) {
		t.Fatal("new tokens still signed with the old key")
	}
	jwks = e.do("GET", siteURL+"/.well-known/jwks.json", "", "", nil)
	set := jwks.body["keys"].([]any)
	if len(set) != 2 || !published[tokenKID(t, newTok)] {
		t.Fatalf("jwks after rotation: %s", jwks.raw)
	}
	// Verify the new token independently with the published key.
	for _, k := range set {
		jwk := k.(map[string]any)
		if jwk["kid"] != tokenKID(t, newTok) {
			continue
		}
		if _, ok := jwk["d"]; ok {
			t.Fatal("private key published")
		}
		x, err := base64.RawURLEncoding.DecodeString(jwk["x"].(string))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := jwt.Parse(newTok, func(*jwt.Token) (any, error) { return ed25519.PublicKey(x), nil },
			jwt.WithValidMethods([]string{"EdDSA"}), jwt.WithAudience(e2eAppID)); err != nil {
			t.Fatalf("token does not verify with the published key: %v", err)
		}
	}

	// The old key removed: its tokens are refused.
	e.loadRaw(config(newKey))
	expect(t, e.do("GET", siteURL+"/x", "", "", bearer(oldTok)), 401, "invalid_token")
	expect(t, e.do("GET", siteURL+"/x", "", "", bearer(newTok)), 200, "")

	// HS256: no JWK Set; the path is then guarded like any other.
	e.load("")
	expect(t, e.do("GET", siteURL+"/.well-known/jwks.json", "", "", nil), 401, "invalid_token")
}

func tokenPayload(t *testing.T, tok string) string {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", tok)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
