// Package wechatauth is a Caddy HTTP handler module that gives any site
// WeChat mini-program login and JWT protection: the wechat_auth directive.
//
// The module is the Caddy glue only: it reads the configuration, opens the
// shared store, loads the keys and builds a handler.Handler, which does the
// HTTP work without Caddy types.
package wechatauth

import (
	"cmp"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/wxauth/caddy-wechat-auth/internal/handler"
	"github.com/wxauth/caddy-wechat-auth/internal/platform"
	"github.com/wxauth/caddy-wechat-auth/internal/token"
	"github.com/wxauth/caddy-wechat-auth/internal/wechat"
)

func init() {
	caddy.RegisterModule(WeChatAuth{})
}

// WeChatAuth authenticates mini-program users with WeChat login and
// protects everything behind it with access tokens (JWT). Requests to its
// endpoint paths are answered by the module; every other request needs a
// valid access token, whose identity is handed to the next handler in
// X-WeChat-* headers and {http.auth.user.*} placeholders.
type WeChatAuth struct {
	// The mini-program platform whose login this block serves: wechat,
	// qq, douyin, alipay or baidu. Everything but the code exchange (and
	// the phone and open-data endpoints a platform lacks) is the same on
	// every platform. Default: wechat
	Platform string `json:"platform,omitempty"`

	// The mini-program's AppID (Baidu: the AppKey, sent as client_id).
	// Required. Placeholders such as {env.WECHAT_APPID} are resolved at
	// provision.
	AppID string `json:"app_id,omitempty"`

	// The mini-program's AppSecret (Baidu: the AppSecret, sent as sk).
	// Required; on Alipay it is never sent (the keys below sign), yet still
	// required because it seals the generated keys kept in the database.
	// Give it as a placeholder ({env.*} or {file.*}) so it stays out of
	// config files and `caddy adapt` output. Every instance sharing a
	// database needs the same one (an instance with another refuses to
	// start); change it with `caddy wechat-auth rotate-secret`.
	AppSecret string `json:"app_secret,omitempty"`

	// Alipay only: the app's RSA private key (PEM, or the bare base64 of
	// Alipay's key tool), which signs the gateway calls (RSA2). Required
	// on Alipay, refused elsewhere. Default: none
	AlipayPrivateKeyFile string `json:"alipay_private_key_file,omitempty"`

	// Alipay only: Alipay's RSA public key (PEM or bare base64, as the
	// Alipay console shows it), which verifies Alipay's answers. Required
	// on Alipay, refused elsewhere. Default: none
	AlipayPublicKeyFile string `json:"alipay_public_key_file,omitempty"`

	// Base URL of the platform's server API. Default: the platform's own
	// host: https://api.weixin.qq.com (WeChat), https://api.q.qq.com (QQ),
	// https://developer.toutiao.com (Douyin), https://openapi.alipay.com
	// (Alipay), https://spapi.baidu.com (Baidu)
	APIBase string `json:"api_base,omitempty"`

	// Time limit of one WeChat API call, connect to last byte. Default: 5s
	Timeout caddy.Duration `json:"timeout,omitempty"`

	// Where users and sessions are kept: the path of a bbolt database
	// file, or a PostgreSQL URL (postgres://... or postgresql://...,
	// placeholders such as {env.DATABASE_URL} allowed) so that several
	// instances share one database. Default:
	// {caddy AppDataDir}/wechat_auth/<app_id>.db
	DB string `json:"db,omitempty"`

	// An HS256 signing secret of at least 32 bytes. Placeholders allowed.
	// Default: none (an Ed25519 key is generated and kept in the store).
	SigningKey string `json:"signing_key,omitempty"`

	// PEM key files (Ed25519, ECDSA P-256 or RSA ≥ 2048 bits). The first
	// signs; all verify, so an old key kept after a new first one keeps
	// its tokens valid. Default: none.
	SigningKeyFiles []KeyFile `json:"signing_key_files,omitempty"`

	// The iss claim of access tokens. Default: caddy-wechat-auth
	Issuer string `json:"issuer,omitempty"`

	// The aud claim of access tokens. Default: the app_id
	Audience string `json:"audience,omitempty"`

	// Lifetime of access tokens, at most 24h. Default: 15m
	AccessTTL caddy.Duration `json:"access_ttl,omitempty"`

	// Lifetime of refresh tokens; a refresh starts a new one. Default: 720h
	RefreshTTL caddy.Duration `json:"refresh_ttl,omitempty"`

	// Clock skew allowed when checking exp, iat and nbf. Default: 30s
	Leeway *caddy.Duration `json:"leeway,omitempty"`

	// How long a refresh token that was just rotated may be presented
	// again and get the same new pair (a client retrying after a lost
	// answer), at most 60s. After it, or at once with 0, a second
	// presentation is treated as theft and revokes the whole session.
	// Default: 10s
	RefreshGrace *caddy.Duration `json:"refresh_grace,omitempty"`

	// Where the guard looks for the access token, in order. Default: the
	// Authorization header with the Bearer scheme, then the token header.
	TokenSources []handler.TokenSource `json:"token_sources,omitempty"`

	// Let requests without a token through as anonymous; a token that is
	// present but invalid still gets 401. Default: false
	Optional bool `json:"optional,omitempty"`

	// Endpoint paths. Defaults: /wx/login, /wx/refresh, /wx/logout,
	// /wx/profile, /wx/phone, /wx/decrypt, /.well-known/jwks.json (the JWK
	// Set is served only with asymmetric keys).
	LoginPath   string `json:"login_path,omitempty"`
	RefreshPath string `json:"refresh_path,omitempty"`
	LogoutPath  string `json:"logout_path,omitempty"`
	ProfilePath string `json:"profile_path,omitempty"`
	PhonePath   string `json:"phone_path,omitempty"`
	DecryptPath string `json:"decrypt_path,omitempty"`
	JWKSPath    string `json:"jwks_path,omitempty"`

	// Prefix of the identity headers set for the upstream; client-sent
	// headers with this prefix are always removed. Default: X-WeChat-
	HeaderPrefix string `json:"header_prefix,omitempty"`

	// How guard failures are answered: "json" writes the JSON error body
	// itself; "caddy" returns the error to Caddy so handle_errors routes
	// shape it. Default: json
	Errors string `json:"errors,omitempty"`

	// When a login's openid is new but its unionid belongs to a user of
	// this app, log in as that user instead of creating one. Default: false
	LinkUnionID bool `json:"link_unionid,omitempty"`

	// Limits login attempts per client IP (as Caddy sees it, honouring
	// trusted_proxies), before WeChat is asked: over it, 429 rate_limited
	// with Retry-After. IPv6 clients count by /64. The limiter's state is
	// shared by the handlers of one app with one limit and survives config
	// reloads. Default: no limit.
	LoginRateLimit *LoginRateLimit `json:"login_rate_limit,omitempty"`

	// Path of the avatar upload: POST an image there (multipart part
	// "file", as wx.uploadFile sends it, or a raw image/* body) with an
	// access token; stored avatars are served to anyone below it, at
	// <avatar_path>/<hash>.<ext>. Default: /wx/avatar
	AvatarPath string `json:"avatar_path,omitempty"`

	// Largest avatar upload in bytes (an upload over it gets 413), from
	// 1 KiB to 32 MiB. Default: 2097152 (2MiB)
	AvatarMaxSize int64 `json:"avatar_max_size,omitempty"`

	// Check every nickname a login (of a new user) or a profile update
	// would store with WeChat's msg_sec_check first: a nickname WeChat
	// does not pass gets 400 content_rejected, and when WeChat cannot be
	// asked the answer is 503, never a nickname stored unchecked.
	// Default: false
	ContentCheck bool `json:"content_check,omitempty"`

	// Cookie sessions for browser pages: web-view tickets, WeChat web
	// OAuth and the access cookie as a token source. Default: none (no
	// cookies, no browser endpoints).
	Web *WebConfig `json:"web,omitempty"`

	handler    *handler.Handler
	live       *liveApp
	wx         *wechat.Client
	exch       platform.Exchanger
	webClients []*wechat.Client // the web block's OAuth clients
	db         *sharedDB
	dbKey      string
	limitKey   string     // key of the shared login rate limiter, if any
	mark       string     // request variable telling wechat_auth_strip this handler ran
	cookieVar  string     // request variable where wechat_auth_strip keeps this block's web cookies
	prefixes   *prefixSet // the identity header prefixes of every handler of the config
	decoder    bool       // holds a reference to the shared avatar decoder
	logger     *zap.Logger
}

// LoginRateLimit allows Requests login attempts per client per Window
// (a token bucket: all at once, then one back every Window/Requests).
type LoginRateLimit struct {
	// Login attempts a client may make at once, at least 1. Required.
	Requests int `json:"requests"`
	// Time in which a client regains all Requests attempts. Required.
	Window caddy.Duration `json:"window"`
}

// KeyFile is one signing_key_file entry.
type KeyFile struct {
	// Path of the PEM file.
	Path string `json:"path"`
	// Key ID. Default: the RFC 7638 thumbprint of the public key.
	KID string `json:"kid,omitempty"`
}

// CaddyModule returns the Caddy module information.
func (WeChatAuth) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.wechat_auth",
		New: func() caddy.Module { return new(WeChatAuth) },
	}
}

// Provision resolves the configuration, opens the store and builds the
// handler. A reload does no database I/O when the app's state is already
// in this process (its generated secrets and revocation list, kept with
// the shared store), so it succeeds while the database is unreachable; the
// endpoints then answer 503 store_unavailable until it returns. At the
// first start the database must answer.
func (m *WeChatAuth) Provision(ctx caddy.Context) error {
	m.logger = ctx.Logger()
	repl := caddy.NewReplacer()
	appID := strings.TrimSpace(repl.ReplaceKnown(m.AppID, ""))
	secret := strings.TrimSpace(repl.ReplaceKnown(m.AppSecret, ""))
	if appID == "" {
		return errors.New("app_id is required (it resolved to an empty value)")
	}
	if secret == "" {
		return errors.New("app_secret is required (it resolved to an empty value)")
	}
	m.applyDefaults()
	if err := m.Validate(); err != nil {
		return err
	}
	apiBase := repl.ReplaceKnown(m.APIBase, "")
	if err := checkAPIBase(apiBase); err != nil {
		return fmt.Errorf("api_base: %w", err)
	}
	paths, prefix, err := m.resolvePaths(repl)
	if err != nil {
		return err
	}

	dbPath := repl.ReplaceKnown(m.DB, "")
	if dbPath == "" {
		dbPath = filepath.Join(caddy.AppDataDir(), "wechat_auth", safeFileName(appID)+".db")
	}
	db, key, err := openShared(dbPath)
	if err != nil {
		return err
	}
	m.db, m.dbKey = db, key
	st := db.store
	sealer, err := handler.NewSealer(secret)
	if err != nil {
		return err
	}

	keys, err := m.loadKeys(ctx, repl, db, sealer, appID)
	if err != nil {
		return err
	}
	audience := repl.ReplaceKnown(m.Audience, "")
	if audience == "" {
		audience = appID
	}
	tokens, err := token.New(token.Config{
		Keys:      keys,
		Issuer:    repl.ReplaceKnown(m.Issuer, ""),
		Audience:  audience,
		AccessTTL: time.Duration(m.AccessTTL),
		Leeway:    time.Duration(*m.Leeway),
	})
	if err != nil {
		return fmt.Errorf("setting up tokens: %w", err)
	}
	refreshSecret, err := db.generatedSecret(ctx, sealer, appID, handler.SecretRefresh, m.logger)
	if err != nil {
		return fmt.Errorf("loading refresh-token secret: %w", err)
	}
	if err := m.provisionExchange(repl, apiBase, appID, secret); err != nil {
		return err
	}
	revs, err := db.revocations(ctx, appID, tokens.AccessTTL(), tokens.Leeway())
	if err != nil {
		return err
	}
	metrics, err := provisionMetrics(ctx, appID)
	if err != nil {
		return err
	}
	if metrics != nil {
		db.countUsers(appID)
	}
	var limiter *handler.RateLimiter
	if m.LoginRateLimit != nil {
		if limiter, m.limitKey, err = acquireLoginLimiter(appID, m.LoginRateLimit, time.Now); err != nil {
			return err
		}
	}
	decoder, err := acquireDecoder()
	if err != nil {
		return err
	}
	m.decoder = true
	var checker handler.ContentChecker
	if m.ContentCheck && m.wx != nil {
		checker = m.wx
	}
	var web *handler.WebConfig
	if m.Web != nil {
		if web, err = m.provisionWeb(ctx, repl, st, sealer, appID, apiBase); err != nil {
			return err
		}
		m.cookieVar = cookieStashPrefix + web.Cookies.Name
	}
	m.handler, err = handler.New(handler.Config{
		AppID:         appID,
		Store:         st,
		Tokens:        tokens,
		WeChat:        m.phoneClient(),
		Platform:      m.Platform,
		Exchanger:     m.exch,
		Sealer:        sealer,
		Revocations:   revs,
		RefreshSecret: refreshSecret,
		RefreshTTL:    time.Duration(m.RefreshTTL),
		RefreshGrace:  (*time.Duration)(m.RefreshGrace),
		Paths:         paths,
		Sources:       m.TokenSources,
		Optional:      m.Optional,
		HeaderPrefix:  prefix,
		LinkUnionID:   m.LinkUnionID,
		CaddyErrors:   m.Errors == "caddy",
		LoginLimit:    limiter,
		ClientKey:     clientIP,
		Metrics:       metrics.observer(),
		Logger:        m.logger,
		AvatarMaxSize: m.AvatarMaxSize,
		Avatars:       decoder,
		ContentCheck:  checker,
		Web:           web,
	})
	if err != nil {
		return err
	}
	m.mark = guardMark(m.handler.FoldedHeaderPrefix())
	webCookie := ""
	if web != nil {
		webCookie = web.Cookies.Name
	}
	m.prefixes = configPrefixes.add(ctx, m.handler.FoldedHeaderPrefix(), webCookie)
	m.live = newLiveApp(m.handler, st)
	liveApps.add(m.live)
	return nil
}

// applyDefaults fills in every unset field.
func (m *WeChatAuth) applyDefaults() {
	setDefault := func(s *string, def string) {
		if *s == "" {
			*s = def
		}
	}
	p := handler.DefaultPaths()
	setDefault(&m.Platform, platform.WeChat)
	setDefault(&m.APIBase, platform.DefaultBaseURL(m.Platform))
	setDefault(&m.Issuer, handler.DefaultIssuer)
	setDefault(&m.LoginPath, p.Login)
	setDefault(&m.RefreshPath, p.Refresh)
	setDefault(&m.LogoutPath, p.Logout)
	setDefault(&m.ProfilePath, p.Profile)
	setDefault(&m.PhonePath, p.Phone)
	setDefault(&m.DecryptPath, p.Decrypt)
	setDefault(&m.JWKSPath, p.JWKS)
	setDefault(&m.AvatarPath, p.Avatar)
	if m.AvatarMaxSize == 0 {
		m.AvatarMaxSize = handler.DefaultAvatarMaxSize
	}
	setDefault(&m.HeaderPrefix, handler.DefaultHeaderPrefix)
	setDefault(&m.Errors, "json")
	if m.Timeout == 0 {
		m.Timeout = caddy.Duration(wechat.DefaultTimeout)
	}
	if m.AccessTTL == 0 {
		m.AccessTTL = caddy.Duration(handler.DefaultAccessTTL)
	}
	if m.RefreshTTL == 0 {
		m.RefreshTTL = caddy.Duration(handler.DefaultRefreshTTL)
	}
	if m.Leeway == nil {
		l := caddy.Duration(handler.DefaultLeeway)
		m.Leeway = &l
	}
	if m.RefreshGrace == nil {
		g := caddy.Duration(handler.DefaultRefreshGrace)
		m.RefreshGrace = &g
	}
}

// resolvePaths resolves placeholders in the endpoint paths and the header
// prefix, then checks the values.
func (m *WeChatAuth) resolvePaths(repl *caddy.Replacer) (handler.Paths, string, error) {
	p := handler.Paths{
		Login:   m.LoginPath,
		Refresh: m.RefreshPath,
		Logout:  m.LogoutPath,
		Profile: m.ProfilePath,
		Phone:   m.PhonePath,
		Decrypt: m.DecryptPath,
		JWKS:    m.JWKSPath,
		Avatar:  m.AvatarPath,
	}
	prefix := m.HeaderPrefix
	for _, f := range []struct {
		name string
		v    *string
	}{
		{"login_path", &p.Login}, {"refresh_path", &p.Refresh}, {"logout_path", &p.Logout},
		{"profile_path", &p.Profile}, {"phone_path", &p.Phone}, {"decrypt_path", &p.Decrypt},
		{"jwks_path", &p.JWKS}, {"avatar_path", &p.Avatar}, {"header_prefix", &prefix},
	} {
		*f.v = repl.ReplaceKnown(*f.v, "")
		if err := checkField(f.name, *f.v); err != nil {
			return p, "", fmt.Errorf("%s: %w", f.name, err)
		}
	}
	return p, prefix, nil
}

// Validate checks what can be checked without resolving placeholders:
// every check of the configuration's values is here or in checkField,
// which the Caddyfile parser also runs so that its errors name the line.
func (m *WeChatAuth) Validate() error {
	if m.AppID == "" {
		return errors.New("app_id is required")
	}
	if m.AppSecret == "" {
		return errors.New("app_secret is required")
	}
	if m.Platform != "" && !platform.Valid(m.Platform) {
		return fmt.Errorf("platform: want one of %s, got %q", strings.Join(platform.Names(), ", "), m.Platform)
	}
	if m.Platform == platform.Alipay {
		if m.AlipayPrivateKeyFile == "" || m.AlipayPublicKeyFile == "" {
			return errors.New("platform alipay needs alipay_private_key_file (the app's private key) and alipay_public_key_file (Alipay's public key)")
		}
	} else if m.AlipayPrivateKeyFile != "" || m.AlipayPublicKeyFile != "" {
		return fmt.Errorf("alipay_private_key_file and alipay_public_key_file are for platform alipay only, not %s", cmp.Or(m.Platform, platform.WeChat))
	}
	if m.ContentCheck && cmp.Or(m.Platform, platform.WeChat) != platform.WeChat {
		return fmt.Errorf("content_check: WeChat's msg_sec_check checks nicknames of WeChat users only, not on platform %s", m.Platform)
	}
	if m.Errors != "" && m.Errors != "json" && m.Errors != "caddy" {
		return fmt.Errorf("errors: want json or caddy, got %q", m.Errors)
	}
	if time.Duration(m.Timeout) < 0 || time.Duration(m.RefreshTTL) < 0 {
		return errors.New("timeout and refresh_ttl must not be negative")
	}
	if ttl := time.Duration(m.AccessTTL); ttl < 0 || ttl > handler.MaxAccessTTL {
		return fmt.Errorf("access_ttl: at most %s", handler.MaxAccessTTL)
	}
	if m.Leeway != nil && (*m.Leeway < 0 || time.Duration(*m.Leeway) > handler.MaxLeeway) {
		return fmt.Errorf("leeway: must not be negative and at most %s", handler.MaxLeeway)
	}
	if err := m.checkRefreshTTL(); err != nil {
		return err
	}
	if m.SigningKey != "" && len(m.SigningKeyFiles) > 0 {
		return errors.New("use either signing_key or signing_key_file, not both")
	}
	if g := m.RefreshGrace; g != nil && (*g < 0 || time.Duration(*g) > handler.MaxRefreshGrace) {
		return fmt.Errorf("refresh_grace: at most %s, got %s", handler.MaxRefreshGrace, time.Duration(*g))
	}
	if l := m.LoginRateLimit; l != nil && (l.Requests < 1 || l.Window <= 0) {
		return errors.New("login_rate_limit: want at least 1 request per positive window")
	}
	if n := m.AvatarMaxSize; n != 0 && (n < handler.MinAvatarMaxSize || n > handler.MaxAvatarMaxSize) {
		return fmt.Errorf("avatar_max_size: want %s to %s, got %d bytes", handler.FormatSize(handler.MinAvatarMaxSize), handler.FormatSize(handler.MaxAvatarMaxSize), n)
	}
	if m.Web != nil {
		if err := m.Web.validate(); err != nil {
			return err
		}
	}
	for name, v := range map[string]string{
		"api_base": m.APIBase, "signing_key": m.SigningKey, "header_prefix": m.HeaderPrefix,
		"login_path": m.LoginPath, "refresh_path": m.RefreshPath, "logout_path": m.LogoutPath,
		"profile_path": m.ProfilePath, "phone_path": m.PhonePath, "decrypt_path": m.DecryptPath,
		"jwks_path": m.JWKSPath, "avatar_path": m.AvatarPath,
	} {
		if v == "" || strings.Contains(v, "{") {
			continue // unset, or checked once its placeholders are resolved
		}
		if err := checkField(name, v); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	return nil
}

// clientIP is the client address Caddy determined for r (honouring
// trusted_proxies), or the connection's peer.
func clientIP(r *http.Request) string {
	if ip, ok := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string); ok && ip != "" {
		return ip
	}
	return handler.RemoteHost(r)
}

// Cleanup releases the shared store, the shared login rate limiter and the
// WeChat client's connections, and takes the handler off the admin API.
func (m *WeChatAuth) Cleanup() error {
	if m.live != nil {
		liveApps.remove(m.live)
		m.live = nil
	}
	if m.wx != nil {
		m.wx.CloseIdleConnections()
	}
	platform.CloseIdleConnections(m.exch)
	for _, c := range m.webClients {
		c.CloseIdleConnections()
	}
	m.webClients = nil
	configPrefixes.release(m.prefixes)
	m.prefixes = nil
	if m.limitKey != "" {
		_, _ = limiterPool.Delete(m.limitKey)
		m.limitKey = ""
	}
	if m.decoder {
		_, _ = decoderPool.Delete(decoderKey)
		m.decoder = false
	}
	if m.db == nil {
		return nil
	}
	_, err := storePool.Delete(m.dbKey)
	m.db = nil
	return err
}

// ServeHTTP adapts the handler's decision to Caddy: the handler answers
// endpoints and guard failures itself; a request it lets through gets the
// {http.auth.user.*} placeholders and goes to next. With `errors caddy` a
// guard failure is returned as a caddyhttp.Error for handle_errors.
func (m *WeChatAuth) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	// Serve removes the client's headers with this handler's prefix first;
	// a wechat_auth_strip step later in the route keeps what is set after.
	caddyhttp.SetVar(r.Context(), m.mark, true)
	if m.cookieVar != "" {
		// A strip step ahead took this block's cookies off; the guard
		// takes them itself (and off the request again).
		unstashCookies(r, m.cookieVar)
	}
	res, c, err := m.handler.Serve(w, r)
	if err != nil {
		// The request goes to handle_errors, which may proxy it, before
		// the strip steps of the config's other prefixes have run.
		m.prefixes.strip(r.Header)
		status := http.StatusUnauthorized
		var he *handler.Error
		if errors.As(err, &he) && he.Status != 0 {
			status = he.Status // 403 for a refused cross-origin request
		}
		return caddyhttp.Error(status, err)
	}
	switch res {
	case handler.ResultOK:
		setPlaceholders(r, c)
	case handler.ResultAnonymous:
		setPlaceholders(r, nil)
	}
	if !res.Next() {
		return nil
	}
	return next.ServeHTTP(w, r)
}

// safeFileName keeps an app id usable as a file name.
func safeFileName(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
			return r
		}
		return '_'
	}, s)
}

// Interface guards
var (
	_ caddy.Provisioner           = (*WeChatAuth)(nil)
	_ caddy.Validator             = (*WeChatAuth)(nil)
	_ caddy.CleanerUpper          = (*WeChatAuth)(nil)
	_ caddyhttp.MiddlewareHandler = (*WeChatAuth)(nil)
)
