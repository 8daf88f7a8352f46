package handler

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/textproto"
	"time"

	"go.uber.org/zap"

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
}

// Config is everything a Handler needs. Store, Tokens, WeChat, Sealer,
// Revocations, AppID and RefreshSecret are required.
type Config struct {
	AppID         string
	Store         Store
	Tokens        *token.Service
	WeChat        WeChat
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
	prefix    string // lower-case header prefix, '_' as '-'
	hdrUserID string // canonical identity header names
	hdrOpenID string
	hdrUnion  string
	hdrAppID  string
	jwksBody  []byte // the JWK Set, nil with symmetric keys only

	grace  time.Duration // retry window of rotated refresh tokens
	logins loginSharer   // logins in flight, by code
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
	case cfg.WeChat == nil:
		return nil, errors.New("handler: missing WeChat client")
	case cfg.Sealer == nil:
		return nil, errors.New("handler: missing sealer")
	case cfg.Revocations == nil:
		return nil, errors.New("handler: missing revocation list")
	case len(cfg.RefreshSecret) < MinSecretLen:
		return nil, fmt.Errorf("handler: refresh secret shorter than %d bytes", MinSecretLen)
	}
	if cfg.RefreshTTL <= 0 {
		cfg.RefreshTTL = DefaultRefreshTTL
	}
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
	h := &Handler{
		cfg:       cfg,
		now:       cfg.Now,
		log:       cfg.Logger,
		prefix:    foldHeaderName(cfg.HeaderPrefix),
		hdrUserID: textproto.CanonicalMIMEHeaderKey(cfg.HeaderPrefix + "User-ID"),
		hdrOpenID: textproto.CanonicalMIMEHeaderKey(cfg.HeaderPrefix + "OpenID"),
		hdrUnion:  textproto.CanonicalMIMEHeaderKey(cfg.HeaderPrefix + "UnionID"),
		hdrAppID:  textproto.CanonicalMIMEHeaderKey(cfg.HeaderPrefix + "AppID"),
	}
	if h.now == nil {
		h.now = time.Now
	}
	h.logins = newLoginFlights()
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
	for _, e := range []struct {
		path string
		fn   func(http.ResponseWriter, *http.Request) *Error
	}{
		{p.Login, h.countLogin(h.login)},
		{p.Refresh, h.refresh},
		{p.Logout, h.logout},
		{p.Profile, h.profile},
		{p.Phone, h.phone},
		{p.Decrypt, h.decrypt},
	} {
		if err := add(e.path, e.fn); err != nil {
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
