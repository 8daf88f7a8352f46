package handler

import (
	"strconv"
	"time"

	"github.com/wxauth/caddy-wechat-auth/internal/token"
)

// The defaults and limits of a wechat_auth configuration. The module's
// config, its Caddyfile parser and New all use these: there is no other
// copy. (The WeChat API's base URL and call timeout are the WeChat
// client's own defaults, wechat.DefaultBaseURL and wechat.DefaultTimeout.)
const (
	DefaultIssuer       = "caddy-wechat-auth"
	DefaultAccessTTL    = 15 * time.Minute
	DefaultRefreshTTL   = 720 * time.Hour
	DefaultLeeway       = 30 * time.Second
	DefaultHeaderPrefix = "X-WeChat-"

	// MaxAccessTTL bounds access_ttl, and MaxLeeway the clock-skew leeway,
	// so that RevokedRetention covers every allowed configuration.
	MaxAccessTTL = 24 * time.Hour
	MaxLeeway    = 5 * time.Minute

	// DefaultRefreshGrace is how long an already-rotated refresh token may
	// be presented again and get the same new pair (a client that
	// retried); after it, a presented rotated token is treated as stolen.
	// MaxRefreshGrace bounds it; 0 means no retry window at all.
	DefaultRefreshGrace = 10 * time.Second
	MaxRefreshGrace     = 60 * time.Second

	// MinSecretLen is the shortest HMAC secret accepted, in bytes: an HS256
	// signing key and the refresh-token derivation secret alike.
	MinSecretLen = token.MinHMACKeySize
)

// JWKSMaxAge is how long clients may cache the JWK Set (its
// Cache-Control max-age). A new signing key must be published (listed
// after the current one) at least this long before it signs.
const JWKSMaxAge = 5 * time.Minute

var jwksCacheControl = "public, max-age=" + strconv.Itoa(int(JWKSMaxAge/time.Second))

// RevokedRetention is how long a revoked session must stay in the store:
// as long as an access token of it could be accepted under any allowed
// configuration, so the in-memory revocation list can be rebuilt from the
// store after a restart.
const RevokedRetention = MaxAccessTTL + MaxLeeway + time.Second

// revocationWindow is how long after its revocation a session's access
// tokens can still be accepted (their lifetime, the leeway, and a second
// for the whole-second token times): how long it stays on the list.
func revocationWindow(accessTTL, leeway time.Duration) time.Duration {
	return accessTTL + leeway + time.Second
}

// DefaultPaths are the endpoint paths used when none are configured.
func DefaultPaths() Paths {
	return Paths{
		Login:   "/wx/login",
		Refresh: "/wx/refresh",
		Logout:  "/wx/logout",
		Profile: "/wx/profile",
		Phone:   "/wx/phone",
		Decrypt: "/wx/decrypt",
		JWKS:    "/.well-known/jwks.json",
		Avatar:  "/wx/avatar",
	}
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
