package platform

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
)

// exchangeCase is one scripted exchange and what must come of it.
type exchangeCase struct {
	name    string
	replies []reply
	code    string
	extra   Extra
	want    error  // sentinel the error must match; nil: success
	openid  string // on success
	unionid string
	keyLen  int
	calls   int    // requests the platform must see; 0: 1
	inErr   string // text the error must contain
}

// runExchangeCases runs cases against the platform; every failure must be a
// clear error matching its sentinel, with no session, no secret and no code
// in its text.
func runExchangeCases(t *testing.T, platform string, cases []exchangeCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f, base := newFake(t, tc.replies...)
			x := newExchanger(t, platform, base)
			code := tc.code
			if code == "" {
				code = testCode
			}
			s, err := exchange(x, code, tc.extra)
			wantCalls := tc.calls
			if wantCalls == 0 {
				wantCalls = 1
			}
			if got := int(f.calls.Load()); got != wantCalls {
				t.Errorf("platform saw %d requests, want %d", got, wantCalls)
			}
			if tc.want == nil {
				if err != nil {
					t.Fatalf("Exchange: %v", err)
				}
				if s.OpenID != tc.openid || s.UnionID != tc.unionid || len(s.SessionKey) != tc.keyLen {
					t.Fatalf("session = %q %q %d-byte key, want %q %q %d", s.OpenID, s.UnionID, len(s.SessionKey), tc.openid, tc.unionid, tc.keyLen)
				}
				return
			}
			if s != nil {
				t.Fatalf("a failed exchange returned a session: %+v", s)
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("error %v, want it to match %v", err, tc.want)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, platform+" ") {
				t.Errorf("error %q does not name the platform", msg)
			}
			if strings.Contains(msg, testSecret) || strings.Contains(msg, testCode) {
				t.Errorf("error %q leaks the secret or the code", msg)
			}
			if tc.inErr != "" && !strings.Contains(msg, tc.inErr) {
				t.Errorf("error %q does not contain %q", msg, tc.inErr)
			}
		})
	}
}

// commonFailures are the answers every platform refuses the same way.
func commonFailures() []exchangeCase {
	return []exchangeCase{
		{name: "html", replies: []reply{{body: htmlBody}}, want: ErrBadResponse, inErr: "JSON"},
		{name: "garbage", replies: []reply{{body: garbageBody}}, want: ErrBadResponse},
		{name: "empty", replies: []reply{{body: ""}}, want: ErrBadResponse},
		{name: "oversize", replies: []reply{{body: oversizeBody}}, want: ErrBadResponse, inErr: "larger than"},
		{name: "json array", replies: []reply{{body: `[1,2]`}}, want: ErrBadResponse},
		{name: "json null", replies: []reply{{body: `null`}}, want: ErrBadResponse},
		{name: "http 502 twice", replies: []reply{{status: 502, body: htmlBody}}, want: ErrUnavailable, calls: 2},
		{name: "http 429", replies: []reply{{status: 429, header: map[string]string{"Retry-After": "7"}}}, want: ErrRateLimited},
		{name: "http 404", replies: []reply{{status: 404, body: htmlBody}}, want: ErrBadResponse},
		{name: "http 302", replies: []reply{{status: 302, header: map[string]string{"Location": "http://127.0.0.1:1/"}}}, want: ErrBadResponse},
		{name: "timeout is not retried", replies: []reply{{delay: 3 * time.Second}}, want: context.DeadlineExceeded},
	}
}

func TestQQExchange(t *testing.T) {
	ok := `{"openid":"qq-open-1","session_key":"` + key16 + `","unionid":"qq-union-1"}`
	cases := []exchangeCase{
		{name: "success", replies: []reply{{body: ok}}, openid: "qq-open-1", unionid: "qq-union-1", keyLen: 16},
		{name: "success without unionid", replies: []reply{{body: `{"openid":"o2","session_key":"` + key16 + `","errcode":0,"errmsg":"ok"}`}}, openid: "o2", keyLen: 16},
		{name: "40029", replies: []reply{{body: `{"errcode":40029,"errmsg":"invalid code"}`}}, want: ErrInvalidCode, inErr: "code 40029"},
		{name: "40163", replies: []reply{{body: `{"errcode":40163,"errmsg":"code been used"}`}}, want: ErrInvalidCode},
		{name: "45011", replies: []reply{{body: `{"errcode":45011,"errmsg":"api freq out of limit"}`}}, want: ErrRateLimited},
		{name: "-1 then success", replies: []reply{{body: `{"errcode":-1,"errmsg":"system busy"}`}, {body: ok}}, openid: "qq-open-1", unionid: "qq-union-1", keyLen: 16, calls: 2},
		{name: "-1 twice", replies: []reply{{body: `{"errcode":-1,"errmsg":"system busy"}`}}, want: ErrUnavailable, calls: 2},
		{name: "other errcode", replies: []reply{{body: `{"errcode":40013,"errmsg":"invalid appid"}`}}, want: ErrAPI},
		{name: "errcode beside an openid", replies: []reply{{body: `{"errcode":40029,"errmsg":"invalid code","openid":"o3","session_key":"` + key16 + `"}`}}, want: ErrInvalidCode},
		{name: "errcode 0 without openid", replies: []reply{{body: `{"errcode":0,"errmsg":"ok","session_key":"` + key16 + `"}`}}, want: ErrBadResponse, inErr: "no openid"},
		{name: "secret echoed in errmsg", replies: []reply{{body: `{"errcode":40125,"errmsg":"invalid appsecret ` + testSecret + `"}`}}, want: ErrAPI, inErr: "[redacted]"},
		{name: "short session key", replies: []reply{{body: `{"openid":"o","session_key":"` + key24 + `"}`}}, want: ErrBadResponse, inErr: "24 bytes"},
		{name: "errcode wrong type", replies: []reply{{body: `{"errcode":"x"}`}}, want: ErrBadResponse, inErr: "wrong type"},
	}
	runExchangeCases(t, QQ, append(cases, commonFailures()...))
}

func TestQQRequestShape(t *testing.T) {
	f, base := newFake(t, reply{body: `{"openid":"o","session_key":"` + key16 + `"}`})
	if _, err := exchange(newExchanger(t, QQ, base), testCode, Extra{}); err != nil {
		t.Fatal(err)
	}
	r := f.reqs[0]
	q := r.URL.Query()
	if r.Method != http.MethodGet || r.URL.Path != "/sns/jscode2session" || q.Get("appid") != testAppID ||
		q.Get("secret") != testSecret || q.Get("js_code") != testCode || q.Get("grant_type") != "authorization_code" {
		t.Fatalf("request %s %s", r.Method, r.URL)
	}
}

func TestDouyinExchange(t *testing.T) {
	ok := `{"err_no":0,"err_tips":"success","data":{"session_key":"` + key16 + `","openid":"dy-open","anonymous_openid":"dy-anon","unionid":"dy-union"}}`
	cases := []exchangeCase{
		{name: "success", replies: []reply{{body: ok}}, openid: "dy-open", unionid: "dy-union", keyLen: 16},
		{name: "success with anonymous code", replies: []reply{{body: ok}}, extra: Extra{AnonymousCode: "anon-code"}, openid: "dy-open", unionid: "dy-union", keyLen: 16},
		{name: "40018 bad code", replies: []reply{{body: `{"err_no":40018,"err_tips":"bad code","data":{}}`}}, want: ErrInvalidCode, inErr: "code 40018"},
		{name: "40019 bad anonymous code", replies: []reply{{body: `{"err_no":40019,"err_tips":"bad anonymous_code"}`}}, want: ErrInvalidCode},
		{name: "40015 bad appid", replies: []reply{{body: `{"err_no":40015,"err_tips":"bad appid"}`}}, want: ErrAPI},
		{name: "-1 then success", replies: []reply{{body: `{"err_no":-1,"err_tips":"system error"}`}, {body: ok}}, openid: "dy-open", unionid: "dy-union", keyLen: 16, calls: 2},
		{name: "-1 twice", replies: []reply{{body: `{"err_no":-1,"err_tips":"system error"}`}}, want: ErrUnavailable, calls: 2},
		{name: "anonymous only answer", replies: []reply{{body: `{"err_no":0,"err_tips":"success","data":{"anonymous_openid":"dy-anon"}}`}}, want: ErrBadResponse, inErr: "no openid"},
		{name: "v1 shape without err_no", replies: []reply{{body: `{"errcode":40018,"errmsg":"bad code","error":3,"message":"bad code"}`}}, want: ErrBadResponse, inErr: "no err_no"},
		{name: "bad session key", replies: []reply{{body: `{"err_no":0,"data":{"openid":"o","session_key":"not base64!"}}`}}, want: ErrBadResponse, inErr: "base64"},
	}
	runExchangeCases(t, Douyin, append(cases, commonFailures()...))

	// A login without a code is refused before any request.
	f, base := newFake(t, reply{body: ok})
	_, err := exchange(newExchanger(t, Douyin, base), "", Extra{AnonymousCode: "anon"})
	if !errors.Is(err, ErrNoCode) || !errors.Is(err, ErrInvalidCode) || f.calls.Load() != 0 {
		t.Fatalf("empty code: %v after %d requests", err, f.calls.Load())
	}
}

func TestDouyinRequestShape(t *testing.T) {
	f, base := newFake(t, reply{body: `{"err_no":0,"data":{"openid":"o","session_key":"` + key16 + `"}}`})
	if _, err := exchange(newExchanger(t, Douyin, base), testCode, Extra{AnonymousCode: "anon-1"}); err != nil {
		t.Fatal(err)
	}
	r := f.reqs[0]
	want := `{"appid":"` + testAppID + `","secret":"` + testSecret + `","code":"` + testCode + `","anonymous_code":"anon-1"}`
	if r.Method != http.MethodPost || r.URL.Path != "/api/apps/v2/jscode2session" || f.bodies[0] != want {
		t.Fatalf("request %s %s %s", r.Method, r.URL, f.bodies[0])
	}
}

func TestBaiduExchange(t *testing.T) {
	ok := `{"openid":"bd-open","session_key":"` + key24 + `"}`
	cases := []exchangeCase{
		{name: "success", replies: []reply{{body: ok}}, openid: "bd-open", keyLen: 24},
		{name: "invalid_grant", replies: []reply{{status: 400, body: `{"error":"invalid_grant","error_description":"Invalid authorization code: ` + testCode + `"}`}}, want: ErrInvalidCode, inErr: "[redacted]"},
		{name: "invalid_grant with 200", replies: []reply{{body: `{"error":"invalid_grant","error_description":"invalid code"}`}}, want: ErrInvalidCode},
		{name: "invalid_client", replies: []reply{{status: 401, body: `{"error":"invalid_client","error_description":"unknown client id"}`}}, want: ErrAPI},
		{name: "temporarily_unavailable then success", replies: []reply{{status: 400, body: `{"error":"temporarily_unavailable"}`}, {body: ok}}, openid: "bd-open", keyLen: 24, calls: 2},
		{name: "server_error twice", replies: []reply{{status: 400, body: `{"error":"server_error"}`}}, want: ErrUnavailable, calls: 2},
		{name: "errno qps limit", replies: []reply{{body: `{"errno":18,"errmsg":"Open api qps request limit reached"}`}}, want: ErrRateLimited},
		{name: "error_code unavailable twice", replies: []reply{{body: `{"error_code":2,"error_msg":"Service temporarily unavailable"}`}}, want: ErrUnavailable, calls: 2},
		{name: "error_code other", replies: []reply{{body: `{"error_code":110,"error_msg":"Access token invalid"}`}}, want: ErrAPI},
		{name: "16-byte key", replies: []reply{{body: `{"openid":"o","session_key":"` + key16 + `"}`}}, want: ErrBadResponse, inErr: "want 24"},
		{name: "no openid", replies: []reply{{body: `{"session_key":"` + key24 + `"}`}}, want: ErrBadResponse, inErr: "no openid"},
		{name: "html with 400", replies: []reply{{status: 400, body: htmlBody}}, want: ErrBadResponse, inErr: "JSON (syntax error at offset 1), http status 400"},
		{name: "400 without error", replies: []reply{{status: 400, body: `{}`}}, want: ErrBadResponse, inErr: "status 400"},
	}
	runExchangeCases(t, Baidu, append(cases, commonFailures()...))
}

func TestBaiduRequestShape(t *testing.T) {
	f, base := newFake(t, reply{body: `{"openid":"o","session_key":"` + key24 + `"}`})
	if _, err := exchange(newExchanger(t, Baidu, base), testCode, Extra{}); err != nil {
		t.Fatal(err)
	}
	r, form := f.reqs[0], f.forms[0]
	if r.Method != http.MethodPost || r.URL.Path != "/oauth/jscode2sessionkey" || r.URL.RawQuery != "" ||
		form["code"][0] != testCode || form["client_id"][0] != testAppID || form["sk"][0] != testSecret {
		t.Fatalf("request %s %s %v", r.Method, r.URL, form)
	}
}

func TestEmptyAndLongCodesNeedNoRequest(t *testing.T) {
	for _, p := range []string{QQ, Douyin, Alipay, Baidu} {
		f, base := newFake(t, reply{body: "{}"})
		x := newExchanger(t, p, base)
		for _, code := range []string{"", strings.Repeat("c", maxCodeBytes+1)} {
			if _, err := exchange(x, code, Extra{}); !errors.Is(err, ErrInvalidCode) {
				t.Errorf("%s: code of %d bytes: %v, want ErrInvalidCode", p, len(code), err)
			}
		}
		if f.calls.Load() != 0 {
			t.Errorf("%s: %d requests for codes refused locally", p, f.calls.Load())
		}
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	app, ali := rsaKeys(t)
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"unknown platform", Config{Platform: "line", AppID: "a", AppSecret: "s"}, "unknown platform"},
		{"no app id", Config{Platform: QQ, AppSecret: "s"}, "app id"},
		{"no secret", Config{Platform: Baidu, AppID: "a"}, "app secret"},
		{"bad base", Config{Platform: Douyin, AppID: "a", AppSecret: "s", BaseURL: "ftp://x"}, "base url"},
		{"alipay without keys", Config{Platform: Alipay, AppID: "a"}, "private key"},
		{"alipay without public key", Config{Platform: Alipay, AppID: "a", AlipayPrivateKey: app}, "public key"},
		{"alipay keys elsewhere", Config{Platform: QQ, AppID: "a", AppSecret: "s", AlipayPublicKey: &ali.PublicKey}, "alipay platform only"},
		{"wechat without client", Config{AppID: "a", AppSecret: "s"}, "WeChat client"},
	} {
		if _, err := New(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error containing %q", tc.name, err, tc.want)
		}
	}
}

func TestRetryAfterFromHeader(t *testing.T) {
	_, base := newFake(t, reply{status: 429, header: map[string]string{"Retry-After": "7"}})
	_, err := exchange(newExchanger(t, QQ, base), testCode, Extra{})
	if got := RetryAfter(err); got != 7*time.Second {
		t.Fatalf("RetryAfter = %v, want 7s (%v)", got, err)
	}
	_, base = newFake(t, reply{body: `{"errcode":45011}`})
	_, err = exchange(newExchanger(t, QQ, base), testCode, Extra{})
	if got := RetryAfter(err); got != 60*time.Second {
		t.Fatalf("RetryAfter = %v, want the 60s default (%v)", got, err)
	}
}
