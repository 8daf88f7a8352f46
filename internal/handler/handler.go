package handler

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/textproto"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/wxauth/caddy-wechat-auth/internal/avatar"
	"github.com/wxauth/caddy-wechat-auth/internal/platform"
	"github.com/wxauth/caddy-wechat-auth/internal/token"
	"github.com/wxauth/caddy-wechat-auth/internal/wechat"
	"github.com/wxauth/caddy-wechat-auth/store"
)

// WeChat is the part of the WeChat server API the endpoints use;
// *wechat.Client implements it.
type WeChat interface {
	Code2Session(ctx context.Context, code string) (*wechat.Session, error)
	PhoneNumber(ctx context.Context, code string) (*wechat.PhoneInfo, error)
}

// Store is the part of store.Store the endpoints use; every store.Store
// implements it.
type Store interface {
	Login(ctx context.Context, app string, nu store.NewUser, s store.Session, tok store.RefreshToken, now time.Time) (store.User, store.Session, bool, error)
	User(ctx context.Context, app string, id uint64) (store.User, error)
	UpdateUser(ctx context.Context, app string, id uint64, patch store.ProfilePatch, now time.Time) (store.User, error)
	Session(ctx context.Context, app, id string) (store.Session, error)
	Rotate(ctx context.Context, app string, hash [32]byte, next store.RefreshToken, now time.Time, grace time.Duration) (store.RotateResult, error)
	RefreshToken(ctx context.Context, app string, hash [32]byte) (store.RefreshToken, error)
	RevokeSession(ctx context.Context, app, id string, reason string, now time.Time) (store.Session, error)
	RevokeUserSessions(ctx context.Context, app string, userID uint64, reason string, now time.Time) ([]store.Session, error)
	Ban(ctx context.Context, app string, userID uint64, reason string, now time.Time) (store.User, []store.Session, error)
	Unban(ctx context.Context, app string, userID uint64, now time.Time) (store.User, error)
	UserByOpenID(ctx context.Context, app, openID string) (store.User, error)
	SetAvatar(ctx context.Context, app string, userID uint64, a store.Avatar, avatarURL string, now time.Time) (store.User, error)
	Avatar(ctx context.Context, app, hash string) (store.Avatar, error)
}

// Paths are the endpoint paths. An empty path disables that endpoint.
type Paths struct {
	Login   string
	Refresh string
	Logout  string
	Profile string
	Phone   string
	Decrypt string
	JWKS    string
	// Avatar is the upload path (POST); the images are served below it,
	// at Avatar/<hash>.<ext>. It must not be "/" nor end in "/".
	Avatar string
}

// Config is everything a Handler needs. Store, Tokens, Sealer,
// Revocations, AppID and RefreshSecret are required, and WeChat or
// Exchanger (WeChat alone on the WeChat platform when phone_path is served).
type Config struct {
	AppID  string
	Store  Store
	Tokens *token.Service
	WeChat WeChat
	// Platform is the mini-program platform of the block (platform.Names).
	// Default: wechat.
	Platform string
	// Exchanger exchanges login codes. Default: WeChat's jscode2session
	// through WeChat.
	Exchanger     platform.Exchanger
	Sealer        *Sealer
	Revocations   *Revocations
	RefreshSecret []byte        // derives a rotation's child refresh token from its parent
	RefreshTTL    time.Duration // default DefaultRefreshTTL
	Paths         Paths         // an empty path disables its endpoint
	Sources       []TokenSource // default: header Authorization Bearer, then header token
	Optional      bool          // a request without a token passes as anonymous
	CaddyErrors   bool          // guard failures are returned by Serve, not written
	HeaderPrefix  string        // default DefaultHeaderPrefix
	LinkUnionID   bool          // a new openid whose unionid is known joins that user
	LoginLimit    *RateLimiter  // optional: login attempts per client, checked before WeChat is asked
	// ClientKey names the client a LoginLimit counts against. Default: the
	// host part of the request's RemoteAddr.
	ClientKey func(*http.Request) string
	// Metrics observes logins, guard outcomes, refreshes and revocations.
	// Default: none.
	Metrics Metrics
	Now     func() time.Time
	Logger  *zap.Logger

	// AvatarMaxSize is the largest avatar upload in bytes, at most
	// MaxAvatarMaxSize. Default (0): DefaultAvatarMaxSize.
	AvatarMaxSize int64
	// Avatars checks, scales and re-encodes uploads; sharing one bounds
	// the decodes in flight across handlers. Default: a processor of the
	// handler's own with avatar.DefaultConcurrency slots.
	Avatars AvatarProcessor
	// ContentCheck, when set, checks every nickname a login (of a new
	// user) or a profile update would store; see nickname.go. Default:
	// none (nicknames are not checked).
	ContentCheck ContentChecker
	// Web turns on cookie sessions for browser pages: the browser
	// endpoints, the access cookie as a token source after Sources,
	// inline rotation from the refresh cookie, login redirects and CSRF
	// refusal. Default (nil): none of it.
	Web *WebConfig

	// RefreshGrace is the retry window of rotated refresh tokens, at most
	// MaxRefreshGrace; 0 means none (a second presentation is reuse).
	// Default (nil): DefaultRefreshGrace.
	RefreshGrace *time.Duration
}

// Handler serves the endpoints and guards everything else.
type Handler struct {
	cfg       Config
	metrics   Metrics
	now       func() time.Time
	log       *zap.Logger
	endpoints map[string]func(http.ResponseWriter, *http.Request) *Error
	prefix    string // lower-case header prefix, '_' and '.' as '-'
	hdrUserID string // canonical identity header names
	hdrOpenID string
	hdrUnion  string
	hdrAppID  string
	hdrPlat   string
	jwksBody  []byte // the JWK Set, nil with symmetric keys only

	exchanger platform.Exchanger
	claim     string // the platform claim of this block's tokens: "" for WeChat

	grace  time.Duration // retry window of rotated refresh tokens
	logins loginSharer   // logins in flight, by code

	avatars      AvatarProcessor
	avatarPrefix string // Paths.Avatar + "/": the served images; "" when off
	web          *web   // browser sessions; nil without Config.Web
}

// New checks cfg and builds a Handler.
func New(cfg Config) (*Handler, error) {
	switch {
	case cfg.AppID == "":
		return nil, errors.New("handler: missing app id")
	case cfg.Store == nil:
		return nil, errors.New("handler: missing store")
	case cfg.Tokens == nil:
		return nil, errors.New("handler: missing token service")
	case cfg.WeChat == nil && cfg.Exchanger == nil:
		return nil, errors.New("handler: missing code exchange (WeChat client or Exchanger)")
	case cfg.Sealer == nil:
		return nil, errors.New("handler: missing sealer")
	case cfg.Revocations == nil:
		return nil, errors.New("handler: missing revocation list")
	case len(cfg.RefreshSecret) < MinSecretLen:
		return nil, fmt.Errorf("handler: refresh secret shorter than %d bytes", MinSecretLen)
	}
	if cfg.Platform == "" {
		cfg.Platform = platform.WeChat
	}
	if !platform.Valid(cfg.Platform) {
		return nil, fmt.Errorf("handler: unknown platform %q", cfg.Platform)
	}
	// The default exchanger is derived, not stored in cfg, so that a copy
	// of the config with another WeChat client gets its own.
	exchanger := cfg.Exchanger
	if exchanger == nil {
		exchanger = platform.NewWeChat(cfg.WeChat)
	}
	if exchanger.Name() != cfg.Platform {
		return nil, fmt.Errorf("handler: a %s code exchange for a %s block", exchanger.Name(), cfg.Platform)
	}
	if cfg.WeChat == nil && cfg.Platform == platform.WeChat && cfg.Paths.Phone != "" {
		return nil, errors.New("handler: the phone endpoint needs the WeChat client")
	}
	if cfg.RefreshTTL <= 0 {
		cfg.RefreshTTL = DefaultRefreshTTL
	}
	// The app's list may be shared with handlers whose tokens live less
	// long: make it keep entries as long as this handler's tokens live.
	cfg.Revocations.Widen(revocationWindow(cfg.Tokens.AccessTTL(), cfg.Tokens.Leeway()))
	if g := cfg.RefreshGrace; g != nil && (*g < 0 || *g > MaxRefreshGrace) {
		return nil, fmt.Errorf("handler: refresh grace %s is outside 0 to %s", *g, MaxRefreshGrace)
	}
	if len(cfg.Sources) == 0 {
		cfg.Sources = DefaultSources()
	}
	cfg.Sources = append([]TokenSource(nil), cfg.Sources...) // the caller's slice stays as given: names are canonicalized below
	for i, s := range cfg.Sources {
		if err := s.validate(); err != nil {
			return nil, fmt.Errorf("handler: token source %d: %w", i, err)
		}
		cfg.Sources[i].Name = canonicalSourceName(s)
	}
	if cfg.ClientKey == nil {
		cfg.ClientKey = RemoteHost
	}
	if cfg.HeaderPrefix == "" {
		cfg.HeaderPrefix = DefaultHeaderPrefix
	}
	if cfg.AvatarMaxSize == 0 {
		cfg.AvatarMaxSize = DefaultAvatarMaxSize
	}
	if cfg.AvatarMaxSize < MinAvatarMaxSize || cfg.AvatarMaxSize > MaxAvatarMaxSize {
		return nil, fmt.Errorf("handler: avatar max size %d is outside %s to %s", cfg.AvatarMaxSize, FormatSize(MinAvatarMaxSize), FormatSize(MaxAvatarMaxSize))
	}
	if a := cfg.Paths.Avatar; a != "" && (a == "/" || strings.HasSuffix(a, "/")) {
		return nil, fmt.Errorf("handler: avatar path %q must not end in /", a)
	}
	h := &Handler{
		cfg:       cfg,
		now:       cfg.Now,
		log:       cfg.Logger,
		prefix:    foldHeaderName(cfg.HeaderPrefix),
		hdrUserID: textproto.CanonicalMIMEHeaderKey(cfg.HeaderPrefix + "User-ID"),
		hdrOpenID: textproto.CanonicalMIMEHeaderKey(cfg.HeaderPrefix + "OpenID"),
		hdrUnion:  textproto.CanonicalMIMEHeaderKey(cfg.HeaderPrefix + "UnionID"),
		hdrAppID:  textproto.CanonicalMIMEHeaderKey(cfg.HeaderPrefix + "AppID"),
		hdrPlat:   textproto.CanonicalMIMEHeaderKey(cfg.HeaderPrefix + "Platform"),
		exchanger: exchanger,
	}
	if cfg.Platform != platform.WeChat {
		h.claim = cfg.Platform
	}
	if h.now == nil {
		h.now = time.Now
	}
	h.logins = newLoginFlights()
	if h.avatars = cfg.Avatars; h.avatars == nil {
		h.avatars = avatar.NewProcessor(avatar.DefaultConcurrency)
	}
	h.grace = DefaultRefreshGrace
	if cfg.RefreshGrace != nil {
		h.grace = *cfg.RefreshGrace
	}
	if h.metrics = cfg.Metrics; h.metrics == nil {
		h.metrics = noMetrics{}
	}
	if h.log == nil {
		h.log = zap.NewNop()
	}
	h.endpoints = make(map[string]func(http.ResponseWriter, *http.Request) *Error)
	add := func(path string, fn func(http.ResponseWriter, *http.Request) *Error) error {
		if path == "" {
			return nil
		}
		if path[0] != '/' {
			return fmt.Errorf("handler: endpoint path %q must start with /", path)
		}
		if _, dup := h.endpoints[path]; dup {
			return fmt.Errorf("handler: endpoint path %q used twice", path)
		}
		h.endpoints[path] = fn
		return nil
	}
	p := cfg.Paths
	phone, decrypt := h.phone, h.decrypt
	if !platform.HasPhone(cfg.Platform) {
		phone = h.notServed("phone numbers are WeChat's alone; this endpoint is not served on " + platform.DisplayName(cfg.Platform))
	}
	if !platform.HasOpenData(cfg.Platform) {
		decrypt = h.notServed(platform.DisplayName(cfg.Platform) + " has no encrypted open data; this endpoint is not served")
	}
	for _, e := range []struct {
		path string
		fn   func(http.ResponseWriter, *http.Request) *Error
	}{
		{p.Login, h.countLogin(h.login)},
		{p.Refresh, h.refresh},
		{p.Logout, h.logout},
		{p.Profile, h.profile},
		{p.Phone, phone},
		{p.Decrypt, decrypt},
		{p.Avatar, h.avatarUpload},
	} {
		if err := add(e.path, e.fn); err != nil {
			return nil, err
		}
	}
	if p.Avatar != "" {
		h.avatarPrefix = p.Avatar + "/"
	}
	if cfg.Web != nil {
		if err := h.newWeb(cfg.Web, add); err != nil {
			return nil, err
		}
	}
	// The JWK Set is served only when there are public keys to publish.
	if h.jwksBody = cfg.Tokens.JWKS(); h.jwksBody != nil {
		if err := add(p.JWKS, h.jwks); err != nil {
			return nil, err
		}
	}
	return h, nil
}

// notServed answers an endpoint the block's platform lacks: 404, whatever
// the method, so a client learns at once that it is not there.
func (h *Handler) notServed(msg string) func(http.ResponseWriter, *http.Request) *Error {
	return func(http.ResponseWriter, *http.Request) *Error {
		return newError(http.StatusNotFound, CodeNotFound, msg)
	}
}

// logError logs failures that an operator must see: internal errors and
// WeChat failures, never with secrets (the wrapped errors carry none).
func (h *Handler) logError(r *http.Request, e *Error) {
	var lvl = zap.DebugLevel
	switch {
	case r.Context().Err() != nil:
		// The client went away mid-request: nothing for an operator.
	case e.Status >= 500:
		lvl = zap.ErrorLevel
	case e.Code == CodeRateLimited || e.Code == CodeUserBlocked:
		lvl = zap.WarnLevel
	}
	if ce := h.log.Check(lvl, "wechat_auth endpoint error"); ce != nil {
		fields := []zap.Field{
			zap.String("path", r.URL.Path),
			zap.Int("status", e.Status),
			zap.String("error", e.Code),
		}
		if e.Err != nil {
			fields = append(fields, zap.NamedError("cause", e.Err))
		}
		ce.Write(fields...)
	}
}

// jwks serves the public keys as a JWK Set.
func (h *Handler) jwks(w http.ResponseWriter, r *http.Request) *Error {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return methodNotAllowed("GET, HEAD")
	}
	hd := w.Header()
	hd.Set("Content-Type", "application/jwk-set+json")
	hd.Set("Cache-Control", jwksCacheControl)
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = w.Write(h.jwksBody)
	}
	return nil
}

// RemoteHost is the host part of r.RemoteAddr: the connection's peer.
func RemoteHost(r *http.Request) string {
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return host
	}
	return r.RemoteAddr
}
