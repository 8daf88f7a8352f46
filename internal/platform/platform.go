package platform

import (
	"context"
	"crypto/rsa"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/wxauth/caddy-wechat-auth/internal/wechat"
)

// The platforms, by the name the configuration uses.
const (
	WeChat = "wechat"
	QQ     = "qq"
	Douyin = "douyin"
	Alipay = "alipay"
	Baidu  = "baidu"
)

// Names lists every platform, WeChat first.
func Names() []string { return []string{WeChat, QQ, Douyin, Alipay, Baidu} }

// Valid reports whether name is one of Names.
func Valid(name string) bool {
	switch name {
	case WeChat, QQ, Douyin, Alipay, Baidu:
		return true
	}
	return false
}

// DefaultBaseURL is the platform's own API server: the scheme and host the
// code exchange goes to when no api_base is configured. It is "" for an
// unknown name.
func DefaultBaseURL(name string) string {
	switch name {
	case WeChat:
		return wechat.DefaultBaseURL
	case QQ:
		return "https://api.q.qq.com"
	case Douyin:
		return "https://developer.toutiao.com"
	case Alipay:
		return "https://openapi.alipay.com"
	case Baidu:
		return "https://spapi.baidu.com"
	}
	return ""
}

// DisplayName is the platform's name as users know it: "WeChat", "QQ",
// "Douyin", "Alipay" or "Baidu".
func DisplayName(name string) string {
	switch name {
	case QQ:
		return "QQ"
	case Douyin:
		return "Douyin"
	case Alipay:
		return "Alipay"
	case Baidu:
		return "Baidu"
	}
	return "WeChat"
}

// LoginCall names the mini-program call that yields a login code on the
// platform, for messages that tell a client what to do again.
func LoginCall(name string) string {
	switch name {
	case QQ:
		return "qq.login"
	case Douyin:
		return "tt.login"
	case Alipay:
		return "my.getAuthCode"
	case Baidu:
		return "swan.login"
	}
	return "wx.login"
}

// HasPhone reports whether the platform has WeChat's phone-number API
// (getuserphonenumber): only WeChat does.
func HasPhone(name string) bool { return name == WeChat }

// HasOpenData reports whether the platform hands out encrypted open data a
// server decrypts with the session key: every platform but Alipay.
func HasOpenData(name string) bool { return Valid(name) && name != Alipay }

// Session is the result of a successful code exchange.
type Session struct {
	// OpenID identifies the user within this app. On Alipay it is the
	// open_id when the answer has one, else the user_id.
	OpenID string
	// UnionID identifies the user across the apps of one developer
	// account; empty when the platform does not give it.
	UnionID string
	// SessionKey is the decoded session key (16 bytes on WeChat, QQ and
	// Douyin, 24 on Baidu); nil on Alipay, which has none. It must never
	// leave the server.
	SessionKey []byte
}

// Extra carries what a login may send beside the code.
type Extra struct {
	// AnonymousCode is Douyin's anonymousCode from tt.login, passed on to
	// its exchange as anonymous_code. Other platforms ignore it.
	AnonymousCode string
}

// Exchanger exchanges a mini-program login code for the user's identity on
// one platform.
type Exchanger interface {
	// Name is the platform's name: one of Names.
	Name() string
	// Exchange redeems code. Its errors match the sentinels of this
	// package (ErrInvalidCode, ErrUserBlocked, ErrRateLimited,
	// ErrUnavailable, ErrBadResponse, ErrAPI); a failure never yields a
	// Session.
	Exchange(ctx context.Context, code string, extra Extra) (*Session, error)
}

// Sentinel errors, shared with the WeChat client so that one mapping onto
// the answers' error codes covers every platform.
var (
	// ErrInvalidCode: the code is bad, expired or already used.
	ErrInvalidCode = wechat.ErrInvalidCode
	// ErrUserBlocked: the platform refuses to log this user in.
	ErrUserBlocked = wechat.ErrUserBlocked
	// ErrRateLimited: the platform's rate limit was reached.
	ErrRateLimited = wechat.ErrRateLimited
	// ErrUnavailable: the platform was busy after the one retry, did not
	// answer in time, or could not be reached.
	ErrUnavailable = wechat.ErrUnavailable
	// ErrBadResponse: an answer this package cannot use: not the expected
	// JSON, too large, an unexpected HTTP status, a success missing the
	// user's id or a usable session key, or (Alipay) a signature that does
	// not verify.
	ErrBadResponse = wechat.ErrBadResponse
	// ErrAPI: any other error the platform reported.
	ErrAPI = wechat.ErrAPI
	// ErrBadSignature: an Alipay answer whose signature is missing or does
	// not verify with Alipay's public key. It also matches ErrBadResponse.
	ErrBadSignature = errors.New("platform: answer signature does not verify")
	// ErrNoCode: a login without a code; on Douyin the user is not logged
	// in to the host app (tt.login gave only an anonymousCode). It also
	// matches ErrInvalidCode.
	ErrNoCode = errors.New("platform: no login code")
)

// Error is a failed exchange. It matches its Kind (one of the sentinels)
// and its Cause with errors.Is. Its text never holds a secret or a code.
type Error struct {
	// Platform and API name the call ("douyin", "jscode2session").
	Platform string
	API      string
	// Kind is the sentinel the failure maps to.
	Kind error
	// Code is the platform's own error code as text ("40018",
	// "isv.code-invalid", "invalid_grant"); empty for failures below the
	// platform's JSON (transport, HTTP status, undecodable answers).
	Code string
	// Message is the platform's error text, bounded and with the request's
	// secrets redacted.
	Message string
	// Detail is this package's description of the failure.
	Detail string
	// Cause is an underlying error, such as context.DeadlineExceeded.
	Cause error
	// RetryAfter is the wait the platform asked for (a Retry-After header).
	RetryAfter time.Duration

	busy bool // the platform said it is busy: the exchange may be retried once
}

// Error returns "<platform> <api>: <kind>[: <detail>][: code <code>[: <message>]][: <cause>]".
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Platform)
	b.WriteByte(' ')
	b.WriteString(e.API)
	b.WriteString(": ")
	b.WriteString(strings.TrimPrefix(strings.TrimPrefix(e.Kind.Error(), "wechat: "), "platform: "))
	if e.Detail != "" {
		b.WriteString(": ")
		b.WriteString(e.Detail)
	}
	if e.Code != "" {
		b.WriteString(": code ")
		b.WriteString(e.Code)
		if e.Message != "" {
			b.WriteString(": ")
			b.WriteString(e.Message)
		}
	}
	if e.Cause != nil {
		b.WriteString(": ")
		b.WriteString(e.Cause.Error())
	}
	return b.String()
}

// Unwrap returns the kind and the cause.
func (e *Error) Unwrap() []error {
	if e.Cause == nil {
		return []error{e.Kind}
	}
	return []error{e.Kind, e.Cause}
}

// RetryAfter suggests how long a client should wait after err: the
// platform's Retry-After header when it sent one, else 60s for
// ErrRateLimited and 5s for ErrUnavailable, else 0.
func RetryAfter(err error) time.Duration {
	var pe *Error
	if errors.As(err, &pe) && pe.RetryAfter > 0 {
		return pe.RetryAfter
	}
	return wechat.RetryAfter(err)
}

// Config configures New.
type Config struct {
	// Platform is one of Names. Default: wechat.
	Platform string
	// BaseURL is the scheme and host (and optional path prefix) of the
	// platform's API, or of a stand-in such as the emulator. Default:
	// DefaultBaseURL(Platform).
	BaseURL string
	// AppID is the app's id: the AppID, or Baidu's AppKey. Required.
	AppID string
	// AppSecret is the app's secret (Baidu's AppSecret, sent as sk).
	// Required except on Alipay, whose calls are signed with
	// AlipayPrivateKey instead.
	AppSecret string
	// Timeout bounds one HTTP attempt, connect to last byte; a retry
	// after "busy" gets a new Timeout. Default: 5s.
	Timeout time.Duration
	// HTTPClient sends the requests. Default: a dedicated client that does
	// not follow redirects.
	HTTPClient *http.Client
	// Now is the clock (Alipay's timestamp, durations). Default: time.Now.
	Now func() time.Time
	// Logger receives secret-free entries about failures. Default: none.
	Logger *zap.Logger
	// Observe, when set, is called after every HTTP attempt with the API
	// name, its result (wechat.Result) and how long it took. Default: none.
	Observe func(api, result string, d time.Duration)
	// AlipayPrivateKey signs Alipay gateway calls (RSA2). Alipay only; required there.
	AlipayPrivateKey *rsa.PrivateKey
	// AlipayPublicKey is Alipay's public key; it verifies Alipay's
	// answers. Alipay only; required there.
	AlipayPublicKey *rsa.PublicKey
	// WeChat is the client the WeChat exchanger wraps. WeChat only;
	// required there.
	WeChat *wechat.Client
}

// New returns the Exchanger of cfg.Platform.
func New(cfg Config) (Exchanger, error) {
	if cfg.Platform == "" {
		cfg.Platform = WeChat
	}
	if !Valid(cfg.Platform) {
		return nil, fmt.Errorf("creating code exchange: unknown platform %q (want one of %s)", cfg.Platform, strings.Join(Names(), ", "))
	}
	if (cfg.AlipayPrivateKey != nil || cfg.AlipayPublicKey != nil) && cfg.Platform != Alipay {
		return nil, fmt.Errorf("creating %s code exchange: Alipay keys are for the alipay platform only", cfg.Platform)
	}
	if cfg.Platform == WeChat {
		if cfg.WeChat == nil {
			return nil, errors.New("creating wechat code exchange: a WeChat client is required")
		}
		return NewWeChat(cfg.WeChat), nil
	}
	c, err := newCaller(cfg)
	if err != nil {
		return nil, err
	}
	switch cfg.Platform {
	case QQ:
		return &qqExchanger{c: c}, nil
	case Douyin:
		return &douyinExchanger{c: c}, nil
	case Baidu:
		return &baiduExchanger{c: c}, nil
	default:
		return newAlipay(c, cfg.AlipayPrivateKey, cfg.AlipayPublicKey)
	}
}
