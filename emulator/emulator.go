package emulator

import (
	"bytes"
	"context"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/wxauth/caddy-wechat-auth/internal/platform"
)

func init() {
	caddy.RegisterModule(Emulator{})
}

// Defaults of the module's config fields.
const (
	// DefaultCodeTTL is how long a login or phone code stays valid, as on WeChat.
	DefaultCodeTTL = 5 * time.Minute
	// DefaultTokenTTL is the lifetime of a stable_token access token, as on WeChat.
	DefaultTokenTTL = 2 * time.Hour
)

// maxBodyBytes bounds every request body.
const maxBodyBytes = 64 << 10

// Body-reading errors.
var (
	errBodyTooLarge = errors.New("request body too large")
	errEmptyBody    = errors.New("request body is empty")
	errTrailingData = errors.New("unexpected data after the JSON value")
)

// Emulator is an HTTP middleware that answers, from memory, the WeChat server
// API calls a mini-program backend makes (jscode2session, stable_token,
// getuserphonenumber, checksession, msg_sec_check) and WeChat's web OAuth
// (the authorize and QR login pages, sns/oauth2, sns/userinfo), with
// WeChat's shapes and errcodes, plus emulator-only helper endpoints under
// /emulator/ to mint codes, encrypt open data and inject faults. Every
// other request is passed to the next handler.
//
// It is for local development and tests only: see the package documentation.
type Emulator struct {
	// The mini-program appid the emulator answers for. When set, API calls
	// with any other appid get errcode 40013 "invalid appid". Placeholders
	// such as {env.WECHAT_APPID} are resolved at provision; one that
	// resolves to nothing is an error. Default: empty (any appid accepted).
	AppID string `json:"app_id,omitempty"`

	// The app secret the emulator expects. When set, API calls with any other
	// secret get errcode 40125 "invalid appsecret". Placeholders such as
	// {env.WECHAT_SECRET} or {file.path} are resolved at provision.
	// Default: empty (any secret accepted).
	AppSecret string `json:"app_secret,omitempty"`

	// How long a code minted by /emulator/code or /emulator/phone_code can be
	// redeemed. Default: 5m.
	CodeTTL caddy.Duration `json:"code_ttl,omitempty"`

	// Lifetime of an access token issued by /cgi-bin/stable_token; its
	// expires_in counts down from this. At least 1s. Default: 2h.
	TokenTTL caddy.Duration `json:"token_ttl,omitempty"`

	// UnionIDs maps openids to the unionid jscode2session returns for them,
	// as for a mini-program bound to an Open Platform account. A unionid
	// given to POST /emulator/code overrides it. Default: none.
	UnionIDs map[string]string `json:"unionids,omitempty"`

	// The mini-program platform whose code exchange is emulated, at its
	// real path and in its real shapes, beside WeChat's API: wechat, qq
	// (WeChat's /sns/jscode2session), douyin (/api/apps/v2/jscode2session),
	// alipay (/gateway.do) or baidu (/oauth/jscode2sessionkey). Codes from
	// POST /emulator/code are that platform's codes. Default: wechat
	Platform string `json:"platform,omitempty"`

	// Alipay only: the app's RSA public key (PEM or bare base64), which
	// verifies the RSA2 signature of every gateway call. Default: none
	// (the sign parameter must be present but is not verified)
	AlipayAppPublicKeyFile string `json:"alipay_app_public_key_file,omitempty"`

	// Alipay only: the RSA private key the emulator signs its answers
	// with; its public half is served at GET /emulator/alipay/public_key.
	// Default: a key generated at start
	AlipayKeyFile string `json:"alipay_key_file,omitempty"`

	// OAuthApps maps the appids of Official Accounts and Open Platform
	// website apps to their secrets, for the web OAuth pages and API
	// (/connect/oauth2/authorize, /connect/qrconnect, /sns/oauth2/*,
	// /sns/userinfo). When set, only these appids are served, and
	// /sns/oauth2/access_token checks the secret (40013, 40125). Secrets
	// may be placeholders such as {env.OA_SECRET}, resolved at provision.
	// Default: none (any appid and any secret accepted).
	OAuthApps map[string]string `json:"oauth_apps,omitempty"`

	appID     string            // AppID with placeholders resolved
	appSecret string            // AppSecret with placeholders resolved
	oauthApps map[string]string // OAuthApps with placeholders resolved

	now    func() time.Time                                 // clock; time.Now unless a test sets it
	sleep  func(ctx context.Context, d time.Duration) error // waits out fault delays
	state  *state
	faults *faultQueue
	logger *zap.Logger

	alipayKey    *rsa.PrivateKey // signs Alipay answers
	alipayAppKey *rsa.PublicKey  // verifies Alipay requests; nil: not checked
}

// CaddyModule returns the Caddy module information.
func (Emulator) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.wechat_emulator",
		New: func() caddy.Module { return new(Emulator) },
	}
}

// Provision resolves placeholders in the app credentials, applies defaults
// and creates the module's in-memory state.
func (e *Emulator) Provision(ctx caddy.Context) error {
	e.logger = ctx.Logger()

	repl := caddy.NewReplacer()
	var err error
	if e.appID, err = repl.ReplaceOrErr(e.AppID, true, true); err != nil {
		return fmt.Errorf("resolving app_id: %v", err)
	}
	if e.appSecret, err = repl.ReplaceOrErr(e.AppSecret, true, true); err != nil {
		return fmt.Errorf("resolving app_secret: %v", err)
	}
	if err := e.provisionOAuth(repl); err != nil {
		return err
	}

	if e.CodeTTL == 0 {
		e.CodeTTL = caddy.Duration(DefaultCodeTTL)
	}
	if e.TokenTTL == 0 {
		e.TokenTTL = caddy.Duration(DefaultTokenTTL)
	}
	if e.now == nil {
		e.now = time.Now
	}
	if e.sleep == nil {
		e.sleep = sleepContext
	}
	e.state = newState(time.Duration(e.CodeTTL), time.Duration(e.TokenTTL))
	for openid, unionid := range e.UnionIDs {
		if !validID(openid) || !validID(unionid) {
			return fmt.Errorf("unionids: openid and unionid must be 1 to 128 characters of A-Z a-z 0-9 - _ (got %q → %q)", openid, unionid)
		}
		e.state.setUnionID(openid, unionid)
	}
	e.faults = new(faultQueue)
	if e.platformName() == platform.Alipay {
		if err := e.provisionAlipay(); err != nil {
			return err
		}
		if e.alipayAppKey == nil {
			e.logger.Warn("emulated Alipay gateway does not verify request signatures: set alipay_app_public_key_file")
		}
	}

	e.logger.Warn("WeChat API emulator enabled: for local development and tests only, never for production",
		zap.String("platform", e.platformName()),
		zap.Bool("app_id_checked", e.appID != ""),
		zap.Bool("app_secret_checked", e.appSecret != ""))
	return nil
}

// Validate checks the configuration after provisioning.
func (e *Emulator) Validate() error {
	if e.CodeTTL <= 0 {
		return fmt.Errorf("code_ttl must be positive, got %s", time.Duration(e.CodeTTL))
	}
	if time.Duration(e.TokenTTL) < time.Second {
		return fmt.Errorf("token_ttl must be at least 1s, got %s", time.Duration(e.TokenTTL))
	}
	return e.validatePlatform()
}

// ServeHTTP answers the emulated WeChat API paths, the /emulator/ helper
// paths and the playground page, and passes every other request to next.
func (e *Emulator) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	path := r.URL.Path
	if isPlaygroundPath(path) {
		return e.servePlayground(w, r)
	}
	isAPI, isHelper, isOAuth := apiPaths[path], helperPaths[path], isOAuthPath(path)
	isPlatform := platformPaths[path] != "" || path == pathAlipayPublicKey
	if !isAPI && !isHelper && !isOAuth && !isPlatform {
		return next.ServeHTTP(w, r)
	}
	if e.state == nil {
		return caddyhttp.Error(http.StatusInternalServerError, errors.New("wechat_emulator used before provisioning"))
	}
	if isPlatform {
		if served, err := e.servePlatform(w, r, path); served || err != nil {
			return err
		}
		if !isAPI && !isHelper && !isOAuth {
			return next.ServeHTTP(w, r) // another platform's path
		}
	}
	if isOAuth {
		return e.serveOAuth(w, r, path)
	}
	if isAPI {
		return e.serveAPI(w, r, path)
	}
	return e.serveHelper(w, r, path)
}

// readJSON decodes the request body, at most maxBodyBytes, into v. With
// strict, unknown fields are an error. An empty body gives errEmptyBody.
func readJSON(w http.ResponseWriter, r *http.Request, v any, strict bool) error {
	if r.Body == nil {
		return errEmptyBody
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return errBodyTooLarge
		}
		return fmt.Errorf("reading request body: %w", err)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return errEmptyBody
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if strict {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("decoding request body: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return errTrailingData
	}
	return nil
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Emulator)(nil)
	_ caddy.Validator             = (*Emulator)(nil)
	_ caddyhttp.MiddlewareHandler = (*Emulator)(nil)
)
