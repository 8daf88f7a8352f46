package platform

import (
	"bytes"
	"encoding/base64"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wxauth/caddy-wechat-auth/internal/testenv"
)

// openssl runs openssl with args in dir and returns its standard output.
func openssl(t *testing.T, dir string, stdin []byte, args ...string) []byte {
	t.Helper()
	cmd := exec.Command("openssl", args...)
	cmd.Dir = dir
	cmd.Stdin = bytes.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("openssl %s: %v: %s", strings.Join(args, " "), err, errb.String())
	}
	return out.Bytes()
}

// TestAlipaySignatureMatchesOpenSSL checks RSA2 signing and verification
// against a known vector made by openssl: a key from `openssl genrsa`, a
// signature from `openssl dgst -sha256 -sign` over a request's sign content
// and over an answer's raw response object.
func TestAlipaySignatureMatchesOpenSSL(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		testenv.Missing(t, "openssl not found", "install OpenSSL to check Alipay's RSA2 signatures against it")
		return
	}
	dir := t.TempDir()
	openssl(t, dir, nil, "genrsa", "-out", "key.pem", "2048")
	openssl(t, dir, nil, "rsa", "-in", "key.pem", "-pubout", "-out", "pub.pem")
	keyPEM, err := os.ReadFile(filepath.Join(dir, "key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pubPEM, err := os.ReadFile(filepath.Join(dir, "pub.pem"))
	if err != nil {
		t.Fatal(err)
	}
	priv, err := ParseRSAPrivateKey(keyPEM)
	if err != nil {
		t.Fatalf("parsing openssl's private key: %v", err)
	}
	pub, err := ParseRSAPublicKey(pubPEM)
	if err != nil {
		t.Fatalf("parsing openssl's public key: %v", err)
	}
	// The bare base64 form Alipay's tools give parses to the same key.
	bare := strings.Join(strings.Split(strings.TrimSpace(string(pubPEM)), "\n")[1:], "")
	bare = strings.TrimSuffix(bare, "-----END PUBLIC KEY-----")
	if pub2, err := ParseRSAPublicKey([]byte(bare)); err != nil || !pub2.Equal(pub) {
		t.Fatalf("bare base64 public key: %v", err)
	}

	// A request: our signature equals openssl's (PKCS #1 v1.5 is deterministic).
	content := "app_id=2021000000000001&charset=utf-8&code=4b203fe6c11548bcabd8da5bb087a83b&format=JSON&grant_type=authorization_code&method=alipay.system.oauth.token&sign_type=RSA2&timestamp=2026-01-02 11:04:05&version=1.0"
	want := base64.StdEncoding.EncodeToString(openssl(t, dir, []byte(content), "dgst", "-sha256", "-sign", "key.pem"))
	got, err := AlipaySign(priv, content)
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("AlipaySign differs from openssl:\n got %s\nwant %s", got, want)
	}

	// An answer signed by openssl over the raw text of its response object
	// verifies; the same object re-encoded does not.
	obj := "{\"user_id\":\"2088102150477652\", \"access_token\" : \"publicpBa869cad0990e4e17a57ecf7c5469a4b2\",\"expires_in\":300}"
	sig := base64.StdEncoding.EncodeToString(openssl(t, dir, []byte(obj), "dgst", "-sha256", "-sign", "key.pem"))
	body := `{"alipay_system_oauth_token_response":` + obj + `,"sign":"` + sig + `"}`
	_, raw, sign, err := AlipaySplitResponse([]byte(body), alipayResponseNode)
	if err != nil {
		t.Fatal(err)
	}
	if err := AlipayVerify(pub, raw, sign); err != nil {
		t.Fatalf("openssl's signature over the raw object does not verify: %v", err)
	}
	if err := AlipayVerify(pub, []byte(strings.ReplaceAll(obj, " ", "")), sign); err == nil {
		t.Fatal("a re-encoded object verified")
	}
}
