package token

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// MaxTokenSize is the longest token Verify will look at, in bytes. Longer
// tokens are refused with ErrTooLarge before any decoding.
const MaxTokenSize = 4096

// TokenType is the "typ" header of access tokens (RFC 9068).
const TokenType = "at+jwt"

// Config configures a Service.
type Config struct {
	// Keys are the configured keys. The first key signs new tokens and must
	// be able to sign (else ErrNoSigningKey); every key verifies. Key ids
	// must be unique (else ErrDuplicateKID). To rotate, put the new key
	// first and keep the old one after it until its tokens have expired.
	Keys []*Key
	// Issuer is the "iss" claim written and required. Required.
	Issuer string
	// Audience is the "aud" claim written and required. Required.
	Audience string
	// AccessTTL is the lifetime of an access token. Must be > 0.
	AccessTTL time.Duration
	// Leeway is the clock skew tolerated on exp, iat and nbf. Must be >= 0.
	Leeway time.Duration
	// Now returns the current time. Default: time.Now.
	Now func() time.Time
	// CacheSize bounds the verified-token cache, which remembers verified
	// tokens so that each is decoded and its signature checked once, not on
	// every request. It serves every algorithm: for HS256 the JSON and
	// base64 decoding cost far more than the HMAC. 0 means 8192; a
	// negative value disables the cache.
	CacheSize int
}

// Service issues and verifies access tokens. It is immutable after New and
// safe for concurrent use.
type Service struct {
	keys      []*Key
	signer    *Key
	issuer    string
	audience  string
	accessTTL time.Duration
	leeway    time.Duration
	now       func() time.Time
	parser    *jwt.Parser
	keyFunc   jwt.Keyfunc // s.selectKey, bound once so Verify does not allocate a closure
	cache     *verifiedCache
	jwks      []byte
}

// New checks cfg and returns a Service. Errors wrap ErrNoSigningKey,
// ErrDuplicateKID or say which field is wrong.
func New(cfg Config) (*Service, error) {
	if len(cfg.Keys) == 0 {
		return nil, fmt.Errorf("configuring tokens: no keys: %w", ErrNoSigningKey)
	}
	keys := make([]*Key, len(cfg.Keys))
	for i, k := range cfg.Keys {
		if k == nil || k.method == nil {
			return nil, fmt.Errorf("configuring tokens: key %d is nil or was not made by this package's constructors: %w", i, ErrUnsupportedKey)
		}
		for _, prev := range keys[:i] {
			if prev.id == k.id {
				return nil, fmt.Errorf("configuring tokens: key id %q is used twice: %w", k.id, ErrDuplicateKID)
			}
		}
		keys[i] = k
	}
	if !keys[0].CanSign() {
		return nil, fmt.Errorf("configuring tokens: first key %q is verify-only: %w", keys[0].id, ErrNoSigningKey)
	}
	switch {
	case cfg.Issuer == "":
		return nil, errors.New("configuring tokens: issuer is required")
	case cfg.Audience == "":
		return nil, errors.New("configuring tokens: audience is required")
	case cfg.AccessTTL <= 0:
		return nil, fmt.Errorf("configuring tokens: access TTL must be positive, got %v", cfg.AccessTTL)
	case cfg.Leeway < 0:
		return nil, fmt.Errorf("configuring tokens: leeway must not be negative, got %v", cfg.Leeway)
	}
	jwks, err := buildJWKS(keys)
	if err != nil {
		return nil, fmt.Errorf("configuring tokens: %w", err)
	}
	s := &Service{
		keys:      keys,
		signer:    keys[0],
		issuer:    cfg.Issuer,
		audience:  cfg.Audience,
		accessTTL: cfg.AccessTTL,
		leeway:    cfg.Leeway,
		now:       cfg.Now,
		// Claims are validated by Claims.validate, which gives precise
		// errors and does not allocate; the parser only decodes, picks the
		// key and checks the signature. Strict decoding makes the encoding
		// of each token unique.
		parser: jwt.NewParser(jwt.WithoutClaimsValidation(), jwt.WithStrictDecoding()),
		jwks:   jwks,
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.keyFunc = s.selectKey
	if cfg.CacheSize >= 0 {
		size := cfg.CacheSize
		if size == 0 {
			size = defaultCacheSize
		}
		s.cache = newVerifiedCache(size)
	}
	return s, nil
}

// AccessTTL returns the configured access-token lifetime.
func (s *Service) AccessTTL() time.Duration { return s.accessTTL }

// Leeway returns the configured clock-skew leeway.
func (s *Service) Leeway() time.Duration { return s.leeway }

// JWKS returns the JWK Set JSON of the configured public keys (computed once
// by New; each call returns a fresh copy), or nil when every key is
// symmetric. Each JWK carries kid, alg and use "sig"; private members are
// never included.
func (s *Service) JWKS() []byte { return bytes.Clone(s.jwks) }

// Issue signs an access token for sub with jti = id, iat = issuedAt and
// exp = issuedAt + AccessTTL (both truncated to whole seconds), under the
// first configured key with header {alg, typ: "at+jwt", kid}. It returns the
// token and its exp.
//
// The same inputs give the same claims, and for HS256 and EdDSA the same
// token, so a retried refresh can re-issue an identical token. Missing
// subject fields or id give an error wrapping ErrClaims.
func (s *Service) Issue(sub Subject, id string, issuedAt time.Time) (tok string, exp time.Time, err error) {
	switch {
	case sub.UserID == 0:
		return "", time.Time{}, fmt.Errorf("issuing access token: user id is 0: %w", ErrClaims)
	case sub.SessionID == "":
		return "", time.Time{}, fmt.Errorf("issuing access token: session id is empty: %w", ErrClaims)
	case sub.OpenID == "":
		return "", time.Time{}, fmt.Errorf("issuing access token: openid is empty: %w", ErrClaims)
	case sub.AppID == "":
		return "", time.Time{}, fmt.Errorf("issuing access token: appid is empty: %w", ErrClaims)
	case id == "":
		return "", time.Time{}, fmt.Errorf("issuing access token: token id is empty: %w", ErrClaims)
	case issuedAt.IsZero():
		return "", time.Time{}, fmt.Errorf("issuing access token: issue time is zero: %w", ErrClaims)
	}
	iat := issuedAt.Truncate(time.Second)
	exp = iat.Add(s.accessTTL).Truncate(time.Second)
	k := s.signer
	claims := &Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    s.issuer,
			Subject:   strconv.FormatUint(sub.UserID, 10),
			Audience:  jwt.ClaimStrings{s.audience},
			ExpiresAt: jwt.NewNumericDate(exp),
			IssuedAt:  jwt.NewNumericDate(iat),
			ID:        id,
		},
		SessionID: sub.SessionID,
		OpenID:    sub.OpenID,
		UnionID:   sub.UnionID,
		AppID:     sub.AppID,
		Platform:  sub.Platform,
	}
	t := &jwt.Token{
		Header: map[string]any{"alg": k.alg, "typ": TokenType, "kid": k.id},
		Claims: claims,
		Method: k.method,
	}
	tok, err = t.SignedString(k.signKey)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("issuing access token: signing with key %q: %w", k.id, err)
	}
	if len(tok) > MaxTokenSize {
		return "", time.Time{}, fmt.Errorf("issuing access token: token is %d bytes, over the %d-byte limit: %w", len(tok), MaxTokenSize, ErrClaims)
	}
	return tok, exp, nil
}

// Verify checks tok and returns its claims, with UserID parsed from sub.
// The rules are listed in the package documentation; every failure wraps
// ErrInvalidToken and one specific sentinel. The returned Claims may be
// shared through the verified-token cache: treat them as read-only.
func (s *Service) Verify(tok string) (*Claims, error) {
	if len(tok) > MaxTokenSize {
		return nil, errTooLarge
	}
	if tok == "" {
		return nil, errEmpty
	}
	now := s.now()
	var nowNano int64
	if s.cache != nil {
		nowNano = unixNano(now)
		c, stale := s.cache.get(tok, nowNano)
		if c != nil {
			return c, nil
		}
		if stale {
			s.cache.remove(tok, nowNano)
		}
	}
	claims := new(Claims)
	_, err := s.parser.ParseWithClaims(tok, claims, s.keyFunc)
	if err != nil {
		return nil, parseError(err)
	}
	if err := claims.validate(now, s.leeway, s.issuer, s.audience); err != nil {
		return nil, err
	}
	if s.cache != nil {
		if exp := unixNano(claims.ExpiresAt.Time); nowNano < exp {
			s.cache.put(tok, claims, unixNano(claims.validFrom(s.leeway)), exp)
		}
	}
	return claims, nil
}

// selectKey is the parser's key function: it refuses dangerous headers,
// checks typ, selects the key by kid and pins the algorithm to that key.
func (s *Service) selectKey(t *jwt.Token) (any, error) {
	h := t.Header
	typ, hasTyp := h["typ"]
	kidVal, hasKID := h["kid"]
	// alg is always present here (the parser refuses tokens without it);
	// anything beyond alg, typ and kid needs a closer look.
	want := 1
	if hasTyp {
		want++
	}
	if hasKID {
		want++
	}
	if len(h) > want {
		for name := range h {
			switch name {
			case "jku", "x5u", "jwk", "x5c":
				return nil, errExternalKey
			case "crit":
				return nil, errCrit
			}
		}
	}
	if ts, ok := typ.(string); !ok || !isAccessTokenType(ts) {
		return nil, errType
	}
	if !hasKID {
		return nil, errNoKID
	}
	kid, ok := kidVal.(string)
	if !ok {
		return nil, errBadKID
	}
	var k *Key
	for _, c := range s.keys {
		if c.id == kid {
			k = c
			break
		}
	}
	if k == nil {
		return nil, errUnknownKID
	}
	if t.Method == nil || t.Method.Alg() != k.alg {
		return nil, errAlgorithm
	}
	// Verify with the key's own implementation, whatever the global
	// golang-jwt registry maps the alg name to.
	t.Method = k.method
	return k.verifyKey, nil
}

// isAccessTokenType accepts "at+jwt" and its full media type
// "application/at+jwt", case-insensitively (RFC 9068 §4, RFC 7515 §4.1.9).
func isAccessTokenType(typ string) bool {
	const prefix = "application/"
	if len(typ) > len(prefix) && strings.EqualFold(typ[:len(prefix)], prefix) {
		typ = typ[len(prefix):]
	}
	return strings.EqualFold(typ, TokenType)
}

// parseError maps a golang-jwt parse error to one of this package's errors.
func parseError(err error) error {
	if ve, ok := errors.AsType[*verifyError](err); ok {
		return ve
	}
	switch {
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return errSignature
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		// The only unverifiable case without our own error: alg missing
		// or naming no known algorithm.
		return errAlgUnavailable
	default:
		return errMalformed
	}
}

// unixNano is t.UnixNano clamped to the int64 range.
func unixNano(t time.Time) int64 {
	const maxSec = math.MaxInt64/int64(time.Second) - 1
	switch sec := t.Unix(); {
	case sec >= maxSec:
		return math.MaxInt64
	case sec <= -maxSec:
		return math.MinInt64
	}
	return t.UnixNano()
}
