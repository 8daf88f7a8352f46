package platform

import (
	"crypto/rsa"
	"encoding/json"
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
		{name: "isv.code-invalid", replies: []reply{{body: errResp(`{"code":"40002","msg":"Invalid Arguments","sub_code":"isv.code-invalid","sub_msg":"授权码code无效"}`)}}, want: ErrInvalidCode, inErr: "isv.code-invalid"},
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
