package platform

import (
	"errors"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// okBody is a success answer of each platform with a 16- or 24-byte key.
func okBody(t *testing.T, p string) string {
	t.Helper()
	switch p {
	case QQ:
		return `{"openid":"o","session_key":"` + key16 + `"}`
	case Douyin:
		return `{"err_no":0,"data":{"openid":"o","session_key":"` + key16 + `"}}`
	case Baidu:
		return `{"openid":"o","session_key":"` + key24 + `"}`
	case Alipay:
		_, ali := rsaKeys(t)
		return signedBody(t, ali, alipayResponseNode, `{"open_id":"o"}`)
	}
	t.Fatalf("no answer for %s", p)
	return ""
}

// TestHTTPStatusDecisions: every 5xx status, 500 included, is the platform
// being busy and is tried once more; a status just below is an answer the
// platform's parser refuses, without a retry; 429 is its rate limit, never
// retried.
func TestHTTPStatusDecisions(t *testing.T) {
	for _, p := range []string{QQ, Douyin, Alipay, Baidu} {
		ok := okBody(t, p)
		runExchangeCases(t, p, []exchangeCase{
			{name: "http 500 twice", replies: []reply{{status: 500, body: ok}}, want: ErrUnavailable, calls: 2, inErr: "status 500"},
			{name: "http 500 then success", replies: []reply{{status: 500}, {body: ok}}, openid: "o", keyLen: keyLen(p), calls: 2},
			{name: "http 499 is not retried", replies: []reply{{status: 499, body: htmlBody}}, want: ErrBadResponse, calls: 1},
			{name: "http 429 is not retried", replies: []reply{{status: 429, body: ok}}, want: ErrRateLimited, calls: 1},
		})
	}
}

// keyLen is the length of a session key on platform p (Alipay has none).
func keyLen(p string) int {
	switch p {
	case Baidu:
		return baiduSessionKeyBytes
	case Alipay:
		return 0
	}
	return 16
}

// TestAnswerSizeBoundary: an answer of exactly maxResponseBytes is read and
// parsed; one byte more is refused unparsed.
func TestAnswerSizeBoundary(t *testing.T) {
	for _, p := range []string{QQ, Douyin, Alipay, Baidu} {
		ok := okBody(t, p)
		exact := ok + strings.Repeat(" ", maxResponseBytes-len(ok))
		runExchangeCases(t, p, []exchangeCase{
			{name: "exactly the limit", replies: []reply{{body: exact}}, openid: "o", keyLen: keyLen(p)},
			{name: "one byte over", replies: []reply{{body: exact + " "}}, want: ErrBadResponse, inErr: "larger than"},
		})
	}
}

// TestCodeLengthBoundary: a code of exactly maxCodeBytes goes to the
// platform; the next length is refused without a request (as is Douyin's
// anonymous_code).
func TestCodeLengthBoundary(t *testing.T) {
	longest := strings.Repeat("c", maxCodeBytes)
	for _, p := range []string{QQ, Douyin, Alipay, Baidu} {
		f, base := newFake(t, reply{body: okBody(t, p)})
		x := newExchanger(t, p, base)
		if _, err := exchange(x, longest, Extra{}); err != nil || f.calls.Load() != 1 {
			t.Errorf("%s: code of %d bytes: %v after %d requests, want a login", p, maxCodeBytes, err, f.calls.Load())
		}
		if _, err := exchange(x, longest+"c", Extra{}); !errors.Is(err, ErrInvalidCode) || f.calls.Load() != 1 {
			t.Errorf("%s: code of %d bytes: %v after %d requests, want ErrInvalidCode without a request", p, maxCodeBytes+1, err, f.calls.Load())
		}
	}
	f, base := newFake(t, reply{body: okBody(t, Douyin)})
	x := newExchanger(t, Douyin, base)
	if _, err := exchange(x, testCode, Extra{AnonymousCode: longest}); err != nil || f.calls.Load() != 1 {
		t.Fatalf("anonymous_code of %d bytes: %v after %d requests, want a login", maxCodeBytes, err, f.calls.Load())
	}
	if !strings.Contains(f.bodies[0], `"anonymous_code":"`+longest+`"`) {
		t.Fatal("the anonymous_code was not sent")
	}
	if _, err := exchange(x, testCode, Extra{AnonymousCode: longest + "c"}); !errors.Is(err, ErrInvalidCode) || f.calls.Load() != 1 {
		t.Fatalf("anonymous_code of %d bytes: %v after %d requests, want ErrInvalidCode without a request", maxCodeBytes+1, err, f.calls.Load())
	}
}

// TestTimeoutAndBaseConfig: a zero timeout means the default, a negative
// one is refused, and the base URL may carry neither credentials, a query
// nor a fragment (the secret goes wherever it points).
func TestTimeoutAndBaseConfig(t *testing.T) {
	_, base := newFake(t, reply{body: okBody(t, QQ)})
	x, err := New(Config{Platform: QQ, BaseURL: base, AppID: testAppID, AppSecret: testSecret})
	if err != nil {
		t.Fatalf("zero timeout: %v", err)
	}
	if _, err := exchange(x, testCode, Extra{}); err != nil {
		t.Fatalf("exchange with the default timeout: %v", err)
	}
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"negative timeout", Config{Timeout: -time.Nanosecond}, "negative"},
		{"user in base", Config{BaseURL: "https://user:pw@api.q.qq.com"}, "base url"},
		{"query in base", Config{BaseURL: "https://api.q.qq.com/?x=1"}, "base url"},
		{"fragment in base", Config{BaseURL: "https://api.q.qq.com/#f"}, "base url"},
		{"no host", Config{BaseURL: "https:///path"}, "base url"},
		{"blank app id", Config{AppID: " "}, "app id"},
	} {
		cfg := tc.cfg
		cfg.Platform, cfg.AppSecret = QQ, testSecret
		if cfg.AppID == "" {
			cfg.AppID = testAppID
		}
		if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error containing %q", tc.name, err, tc.want)
		}
	}
}

// maxMessageBytes is the bound the WeChat client's Sanitize puts on a
// platform's error text, which the exchangers share.
const maxMessageBytes = 256

// TestFailureLogs: a bad code is logged at debug level only, every other
// failure at error level, and no entry holds the code or the secret.
func TestFailureLogs(t *testing.T) {
	for _, tc := range []struct {
		body  string
		level zapcore.Level
	}{
		{`{"errcode":40029,"errmsg":"invalid code ` + testCode + `"}`, zap.DebugLevel},
		{`{"errcode":40013,"errmsg":"invalid appid, secret ` + testSecret + `"}`, zap.ErrorLevel},
	} {
		core, logs := observer.New(zap.DebugLevel)
		_, base := newFake(t, reply{body: tc.body})
		x, err := New(Config{Platform: QQ, BaseURL: base, AppID: testAppID, AppSecret: testSecret, Timeout: time.Second, Logger: zap.New(core)})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := exchange(x, testCode, Extra{}); err == nil {
			t.Fatal("an error answer logged in")
		}
		entries := logs.All()
		if len(entries) != 1 || entries[0].Level != tc.level {
			t.Fatalf("%s: logged %v, want one entry at %v", tc.body, entries, tc.level)
		}
		text := entries[0].Message + " " + entries[0].ContextMap()["error"].(string)
		if strings.Contains(text, testCode) || strings.Contains(text, testSecret) {
			t.Fatalf("log entry leaks the code or the secret: %s", text)
		}
	}
}

// TestErrorMessageBound: the platform's error text is kept up to
// maxMessageBytes, cut beyond, and its control characters are dropped.
func TestErrorMessageBound(t *testing.T) {
	exact := strings.Repeat("m", maxMessageBytes)
	for _, tc := range []struct{ msg, want string }{
		{exact, exact},
		{exact + "x", exact + "…"},
		{"line\nbreak\x00", "linebreak"},
	} {
		_, base := newFake(t, reply{body: `{"errcode":40013,"errmsg":"` + strings.NewReplacer("\n", `\n`, "\x00", `\u0000`).Replace(tc.msg) + `"}`})
		_, err := exchange(newExchanger(t, QQ, base), testCode, Extra{})
		var pe *Error
		if !errors.As(err, &pe) || pe.Message != tc.want {
			t.Errorf("message of %d bytes: %v, want %q", len(tc.msg), err, tc.want)
		}
	}
}
