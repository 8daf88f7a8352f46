package platform

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// signedBody is a gateway answer: node holding obj (its raw text kept as
// given) and the sign of obj by key.
func signedBody(t *testing.T, key *rsa.PrivateKey, node, obj string) string {
	t.Helper()
	sig, err := AlipaySign(key, obj)
	if err != nil {
		t.Fatal(err)
	}
	return `{"` + node + `":` + obj + `,"sign":"` + sig + `"}`
}

func TestAlipayExchange(t *testing.T) {
	app, ali := rsaKeys(t)
	resp := func(obj string) string { return signedBody(t, ali, alipayResponseNode, obj) }
	errResp := func(obj string) string { return signedBody(t, ali, alipayErrorNode, obj) }
	okObj := `{"user_id":"2088102150477652","open_id":"074a1CcTG1LelxKe4xQC0zgNdId0nxi95b5lsNpazWYoCo5","access_token":"publicpBa869cad0990e4e17a57ecf7c5469a4b2","expires_in":300,"refresh_token":"publicpB0ff17e364f0743c79b0b0d7f55e20bfc","re_expires_in":300}`
	spaced := "{ \"user_id\" : \"2088000000000001\",\n  \"access_token\": \"t\" }"
	cases := []exchangeCase{
		{name: "success prefers open_id", replies: []reply{{body: resp(okObj)}}, openid: "074a1CcTG1LelxKe4xQC0zgNdId0nxi95b5lsNpazWYoCo5"},
		{name: "success with user_id only", replies: []reply{{body: resp(`{"user_id":"2088102150477652","access_token":"t"}`)}}, openid: "2088102150477652"},
		{name: "signature over the raw text, whitespace kept", replies: []reply{{body: resp(spaced)}}, openid: "2088000000000001"},
		{name: "success with code 10000", replies: []reply{{body: resp(`{"code":"10000","msg":"Success","open_id":"o1"}`)}}, openid: "o1"},
		{name: "isv.code-invalid", replies: []reply{{body: errResp(`{"code":"40002","msg":"Invalid Arguments","sub_code":"isv.code-invalid","sub_msg":"授权码code无效"}`)}}, want: ErrInvalidCode, inErr: "code 40002/isv.code-invalid: Invalid Arguments: 授权码code无效"},
		{name: "20000 then success", replies: []reply{{body: errResp(`{"code":"20000","msg":"Service Currently Unavailable","sub_code":"isp.unknow-error","sub_msg":"系统繁忙"}`)}, {body: resp(okObj)}}, openid: "074a1CcTG1LelxKe4xQC0zgNdId0nxi95b5lsNpazWYoCo5", calls: 2},
		{name: "20000 twice", replies: []reply{{body: errResp(`{"code":"20000","msg":"Service Currently Unavailable","sub_code":"isp.unknow-error"}`)}}, want: ErrUnavailable, calls: 2},
		{name: "40005 call limit", replies: []reply{{body: errResp(`{"code":"40005","msg":"Call Limited","sub_code":"isv.app-call-limited"}`)}}, want: ErrRateLimited},
		{name: "40006 permission", replies: []reply{{body: errResp(`{"code":"40006","msg":"Insufficient Permissions","sub_code":"isv.insufficient-isv-permissions"}`)}}, want: ErrAPI},
		{name: "error inside the response object", replies: []reply{{body: resp(`{"code":"40004","msg":"Business Failed","sub_code":"isv.x"}`)}}, want: ErrAPI},
		{name: "error_response without code", replies: []reply{{body: errResp(`{"msg":"?"}`)}}, want: ErrBadResponse},
		{name: "neither open_id nor user_id", replies: []reply{{body: resp(`{"access_token":"t"}`)}}, want: ErrBadResponse, inErr: "neither open_id nor user_id"},
		{name: "unsigned success", replies: []reply{{body: `{"` + alipayResponseNode + `":` + okObj + `}`}}, want: ErrBadSignature, inErr: "not signed"},
		{name: "unsigned error", replies: []reply{{body: `{"error_response":{"code":"40002","sub_code":"isv.code-invalid"}}`}}, want: ErrBadSignature},
		{name: "signed by another key", replies: []reply{{body: signedBody(t, app, alipayResponseNode, okObj)}}, want: ErrBadSignature, inErr: "does not verify"},
		{name: "signature over the compact text, body re-spaced", replies: []reply{{body: strings.Replace(resp(`{"user_id":"2088000000000001"}`), `{"user_id":`, `{"user_id" :`, 1)}}, want: ErrBadSignature},
		{name: "user id swapped after signing", replies: []reply{{body: strings.Replace(resp(`{"user_id":"2088000000000001"}`), "0001", "0002", 1)}}, want: ErrBadSignature},
		{name: "sign not base64", replies: []reply{{body: `{"` + alipayResponseNode + `":{"user_id":"1"},"sign":"***"}`}}, want: ErrBadSignature},
		{name: "sign not a string", replies: []reply{{body: `{"` + alipayResponseNode + `":{"user_id":"1"},"sign":5}`}}, want: ErrBadResponse},
		{name: "both nodes", replies: []reply{{body: `{"` + alipayResponseNode + `":{"user_id":"1"},"error_response":{"code":"40002"},"sign":"x"}`}}, want: ErrBadResponse, inErr: "both"},
		{name: "node twice", replies: []reply{{body: `{"` + alipayResponseNode + `":{"user_id":"1"},"` + alipayResponseNode + `":{"user_id":"2"},"sign":"x"}`}}, want: ErrBadResponse, inErr: "twice"},
		{name: "node not an object", replies: []reply{{body: `{"` + alipayResponseNode + `":"x","sign":"x"}`}}, want: ErrBadResponse},
		{name: "no node", replies: []reply{{body: `{"sign":"x"}`}}, want: ErrBadResponse, inErr: "neither"},
		{name: "trailing data", replies: []reply{{body: resp(okObj) + `{}`}}, want: ErrBadResponse},
	}
	runExchangeCases(t, Alipay, append(cases, commonFailures()...))
}

func TestAlipayRequestIsSigned(t *testing.T) {
	app, ali := rsaKeys(t)
	f, base := newFake(t, reply{body: signedBody(t, ali, alipayResponseNode, `{"user_id":"1"}`)})
	x := newExchanger(t, Alipay, base)
	x.(*alipayExchanger).c.now = func() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) }
	if _, err := exchange(x, testCode, Extra{}); err != nil {
		t.Fatal(err)
	}
	r, form := f.reqs[0], url.Values(f.forms[0])
	if r.Method != http.MethodPost || r.URL.Path != "/gateway.do" {
		t.Fatalf("request %s %s", r.Method, r.URL)
	}
	for k, want := range map[string]string{
		"app_id": testAppID, "method": "alipay.system.oauth.token", "format": "JSON", "charset": "utf-8",
		"sign_type": "RSA2", "timestamp": "2026-01-02 11:04:05", "version": "1.0",
		"grant_type": "authorization_code", "code": testCode,
	} {
		if got := form.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if form.Get("app_secret") != "" || strings.Contains(form.Encode(), testSecret) {
		t.Error("the app secret was sent to Alipay")
	}
	if err := AlipayVerify(&app.PublicKey, []byte(AlipaySignContent(form)), form.Get("sign")); err != nil {
		t.Fatalf("the request's sign does not verify with the app's public key: %v", err)
	}
}

func TestAlipaySignContent(t *testing.T) {
	got := AlipaySignContent(url.Values{
		"sign": {"x"}, "b": {"2"}, "a": {"1 & 2"}, "empty": {""}, "charset": {"utf-8"}, "biz": {`{"k":"v"}`},
	})
	want := `a=1 & 2&b=2&biz={"k":"v"}&charset=utf-8`
	if got != want {
		t.Fatalf("sign content %q, want %q", got, want)
	}
}

func TestAlipaySplitResponseKeepsRawText(t *testing.T) {
	body := "{\"sign\":\"S\", \"alipay_system_oauth_token_response\" :  {\"a\" : 1,\n \"b\":\"\\u0041\"} }"
	name, obj, sign, err := AlipaySplitResponse([]byte(body), alipayResponseNode)
	if err != nil || name != alipayResponseNode || sign != "S" {
		t.Fatalf("split: %q %q %v", name, sign, err)
	}
	if want := "{\"a\" : 1,\n \"b\":\"\\u0041\"}"; string(obj) != want {
		t.Fatalf("object %q, want the raw text %q", obj, want)
	}
	var v map[string]any
	if json.Unmarshal(obj, &v) != nil {
		t.Fatal("object is not JSON")
	}
}

func TestParseRSAKeys(t *testing.T) {
	if _, err := ParseRSAPrivateKey([]byte("not a key")); err == nil {
		t.Error("garbage private key accepted")
	}
	if _, err := ParseRSAPublicKey([]byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")); err == nil || !strings.Contains(err.Error(), "CERTIFICATE") {
		t.Errorf("certificate as public key: %v", err)
	}
	if _, err := ParseRSAPublicKey(nil); err == nil {
		t.Error("empty public key accepted")
	}
}

// TestAlipayRefusesWeakKeys: both RSA2 keys must have at least 2048 bits.
func TestAlipayRefusesWeakKeys(t *testing.T) {
	app, ali := rsaKeys(t)
	weak, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		priv *rsa.PrivateKey
		pub  *rsa.PublicKey
	}{
		{"weak private key", weak, &ali.PublicKey},
		{"weak public key", app, &weak.PublicKey},
	} {
		_, err := New(Config{Platform: Alipay, AppID: testAppID, AlipayPrivateKey: tc.priv, AlipayPublicKey: tc.pub})
		if err == nil || !strings.Contains(err.Error(), "2048 bits") {
			t.Errorf("%s: %v, want a refusal", tc.name, err)
		}
	}
}

// TestAlipayTopLevelMemberBound: a signed answer may have up to
// maxTopLevelMembers members at its top level (unknown ones are ignored);
// one more is refused before its signature is looked at.
func TestAlipayTopLevelMemberBound(t *testing.T) {
	_, ali := rsaKeys(t)
	body := func(extra int) string {
		b := signedBody(t, ali, alipayResponseNode, `{"open_id":"o"}`)
		var more strings.Builder
		for i := range extra {
			fmt.Fprintf(&more, `,"x%d":%d`, i, i)
		}
		return strings.TrimSuffix(b, "}") + more.String() + "}"
	}
	runExchangeCases(t, Alipay, []exchangeCase{
		{name: "exactly the limit", replies: []reply{{body: body(maxTopLevelMembers - 2)}}, openid: "o"},
		{name: "one member over", replies: []reply{{body: body(maxTopLevelMembers - 1)}}, want: ErrBadResponse, inErr: "too many members"},
	})
}

// TestParseRSAKeyForms: every form the Alipay tools hand out parses to the
// same key; other key types and block types are refused.
func TestParseRSAKeyForms(t *testing.T) {
	app, _ := rsaKeys(t)
	pemOf := func(typ string, der []byte) []byte { return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}) }
	bareOf := func(der []byte) []byte {
		b := base64.StdEncoding.EncodeToString(der)
		return []byte(b[:64] + "\n " + b[64:] + "\n")
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(app)
	if err != nil {
		t.Fatal(err)
	}
	pkix, err := x509.MarshalPKIXPublicKey(&app.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pkcs1 := x509.MarshalPKCS1PrivateKey(app)
	pkcs1Pub := x509.MarshalPKCS1PublicKey(&app.PublicKey)
	for name, in := range map[string][]byte{
		"PKCS #1 PEM":  pemOf("RSA PRIVATE KEY", pkcs1),
		"PKCS #8 PEM":  pemOf("PRIVATE KEY", pkcs8),
		"PKCS #1 bare": bareOf(pkcs1),
		"PKCS #8 bare": bareOf(pkcs8),
	} {
		k, err := ParseRSAPrivateKey(in)
		if err != nil || !k.Equal(app) {
			t.Errorf("private key, %s: %v", name, err)
		}
	}
	for name, in := range map[string][]byte{
		"PKIX PEM":     pemOf("PUBLIC KEY", pkix),
		"PKCS #1 PEM":  pemOf("RSA PUBLIC KEY", pkcs1Pub),
		"PKIX bare":    bareOf(pkix),
		"PKCS #1 bare": bareOf(pkcs1Pub),
	} {
		k, err := ParseRSAPublicKey(in)
		if err != nil || !k.Equal(&app.PublicKey) {
			t.Errorf("public key, %s: %v", name, err)
		}
	}

	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecPriv, _ := x509.MarshalPKCS8PrivateKey(ec)
	ecPub, _ := x509.MarshalPKIXPublicKey(&ec.PublicKey)
	if _, err := ParseRSAPrivateKey(pemOf("PRIVATE KEY", ecPriv)); err == nil || !strings.Contains(err.Error(), "want an RSA private key") {
		t.Errorf("EC private key: %v", err)
	}
	if _, err := ParseRSAPublicKey(pemOf("PUBLIC KEY", ecPub)); err == nil || !strings.Contains(err.Error(), "want an RSA public key") {
		t.Errorf("EC public key: %v", err)
	}
	if _, err := ParseRSAPrivateKey(pemOf("PUBLIC KEY", pkix)); err == nil {
		t.Error("a public key block parsed as a private key")
	}
	if _, err := ParseRSAPublicKey(pemOf("PUBLIC KEY", pkcs8)); err == nil {
		t.Error("a private key's DER parsed as a public key")
	}
	if _, err := ParseRSAPrivateKey([]byte(" \n\t")); err == nil || !strings.Contains(err.Error(), "empty key") {
		t.Errorf("blank private key: %v", err)
	}
}
