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

// Retry window of refresh tokens: how long an already-rotated refresh token
// may be presented again and get the same new pair (a client that retried);
// after it, a presented rotated token is treated as stolen.
const (
	// DefaultRefreshGrace is the retry window when none is configured.
	DefaultRefreshGrace = 10 * time.Second
	// MaxRefreshGrace is the longest retry window allowed.
	MaxRefreshGrace = 60 * time.Second
	// RefreshGrace is DefaultRefreshGrace under its earlier name.
	RefreshGrace = DefaultRefreshGrace
)

// Config is everything a Handler needs. Store, Tokens, WeChat, Sealer,
// Revocations, AppID and RefreshSecret are required.
type Config struct {
	AppID         string
	Store         store.Store
	Tokens        *token.Service
	WeChat        WeChat
	Sealer        *Sealer
	Revocations   *Revocations
	RefreshSecret []byte        // derives a rotation's child refresh token from its parent
	RefreshTTL    time.Duration // default 720h
	Paths         Paths
	Sources       []TokenSource // default: header Authorization Bearer, then header token
	Optional      bool          // a request without a token passes as anonymous
	HeaderPrefix  string        // default "X-WeChat-"
	LinkUnionID   bool          // a new openid whose unionid is known joins that user
	LoginLimit    *RateLimiter  // optional: login attempts per client, checked before WeChat is asked
	// ClientKey names the client a LoginLimit counts against. Default: the
	// host part of the request's RemoteAddr.
	ClientKey func(*http.Request) string
	Now       func() time.Time
	Logger    *zap.Logger

	// RefreshGrace is the retry window of rotated refresh tokens, at most
	// MaxRefreshGrace; 0 means none (a second presentation is reuse).
	// Default (nil): DefaultRefreshGrace.
	RefreshGrace *time.Duration
}

// Handler serves the endpoints and guards everything else.
type Handler struct {
	cfg       Config
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
	logins *loginFlights // logins in flight, by code
}

// DefaultSources are the token sources used when none are configured: the
// standard bearer header, then the `token` header of the usual
// mini-program code.
func DefaultSources() []TokenSource {
	return []TokenSource{
		{From: SourceHeader, Name: "Authorization", Scheme: "Bearer"},
		{From: SourceHeader, Name: "token"},
	}
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
	case len(cfg.RefreshSecret) < 32:
		return nil, errors.New("handler: refresh secret shorter than 32 bytes")
	}
	if cfg.RefreshTTL <= 0 {
		cfg.RefreshTTL = 720 * time.Hour
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
		cfg.HeaderPrefix = "X-WeChat-"
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
		{p.Login, h.login},
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

// IsEndpoint reports whether path is one of the endpoint paths.
func (h *Handler) IsEndpoint(path string) bool {
	_, ok := h.endpoints[path]
	return ok
}

// ServeEndpoint answers r if its path is an endpoint path and reports
// whether it did.
func (h *Handler) ServeEndpoint(w http.ResponseWriter, r *http.Request) bool {
	fn, ok := h.endpoints[r.URL.Path]
	if !ok {
		return false
	}
	if e := fn(w, r); e != nil {
		h.logError(r, e)
		WriteError(w, e)
	}
	return true
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
	hd.Set("Cache-Control", "public, max-age=300")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = w.Write(h.jwksBody)
	}
	return nil
}

// Optional reports whether requests without a token pass as anonymous.
func (h *Handler) Optional() bool { return h.cfg.Optional }

// RemoteHost is the host part of r.RemoteAddr: the connection's peer.
func RemoteHost(r *http.Request) string {
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return host
	}
	return r.RemoteAddr
}
