package handler

import (
	"errors"
	"fmt"
	"net/http"
	"net/textproto"
	"strings"

	"github.com/wxauth/caddy-wechat-auth/internal/token"
)

// Where a token can come from.
const (
	SourceHeader = "header"
	SourceCookie = "cookie"
	SourceQuery  = "query"
)

// TokenSource is one place the guard looks for an access token.
type TokenSource struct {
	// From is "header", "cookie" or "query".
	From string `json:"from"`
	// Name is the header, cookie or query parameter name.
	Name string `json:"name"`
	// Scheme, for headers only, is the auth scheme that must precede the
	// token ("Bearer"); empty means the header holds the bare token.
	Scheme string `json:"scheme,omitempty"`
}

func (s TokenSource) validate() error {
	switch s.From {
	case SourceHeader, SourceCookie, SourceQuery:
	default:
		return fmt.Errorf("unknown source %q (want header, cookie or query)", s.From)
	}
	if s.Name == "" {
		return errors.New("missing name")
	}
	if s.Scheme != "" && s.From != SourceHeader {
		return errors.New("a scheme is only allowed for header sources")
	}
	return nil
}

func canonicalSourceName(s TokenSource) string {
	if s.From == SourceHeader {
		return textproto.CanonicalMIMEHeaderKey(s.Name)
	}
	return s.Name
}

// Guard errors. Authenticate returns ErrNoToken, ErrRevoked, or an error
// wrapping token.ErrInvalidToken.
var (
	// ErrNoToken: the request carries no token in any configured source.
	ErrNoToken = errors.New("no access token")
	// ErrRevoked: the token is valid but its session has been revoked.
	ErrRevoked = errors.New("session revoked")
)

// StripHeaders removes every header whose name, lower-cased with '_' read
// as '-', starts with the identity header prefix, so a client can never
// pass an identity to the upstream.
func (h *Handler) StripHeaders(hdr http.Header) {
	for k := range hdr {
		if hasFoldedPrefix(k, h.prefix) {
			delete(hdr, k)
		}
	}
}

// foldHeaderName lower-cases s and reads '_' as '-'.
func foldHeaderName(s string) string {
	b := []byte(s)
	for i, c := range b {
		b[i] = foldByte(c)
	}
	return string(b)
}

func foldByte(c byte) byte {
	switch {
	case c >= 'A' && c <= 'Z':
		return c + ('a' - 'A')
	case c == '_':
		return '-'
	}
	return c
}

// hasFoldedPrefix reports whether name starts with prefix (already folded)
// once folded, without allocating.
func hasFoldedPrefix(name, prefix string) bool {
	if len(name) < len(prefix) {
		return false
	}
	for i := 0; i < len(prefix); i++ {
		if foldByte(name[i]) != prefix[i] {
			return false
		}
	}
	return true
}

// findToken returns the first token found in the configured sources.
func (h *Handler) findToken(r *http.Request) string {
	for _, s := range h.cfg.Sources {
		var v string
		switch s.From {
		case SourceHeader:
			vals := r.Header[s.Name]
			if len(vals) == 0 {
				continue
			}
			v = strings.TrimSpace(vals[0])
			if s.Scheme != "" {
				var ok bool
				if v, ok = cutScheme(v, s.Scheme); !ok {
					continue
				}
			} else if rest, ok := cutScheme(v, "Bearer"); ok {
				// A bare-token header that got "Bearer " anyway.
				v = rest
			}
		case SourceCookie:
			c, err := r.Cookie(s.Name)
			if err != nil {
				continue
			}
			v = c.Value
		case SourceQuery:
			v = r.URL.Query().Get(s.Name)
		}
		if v != "" {
			return v
		}
	}
	return ""
}

// cutScheme returns what follows "<scheme> " in v, the scheme matched
// case-insensitively.
func cutScheme(v, scheme string) (string, bool) {
	if len(v) <= len(scheme) || v[len(scheme)] != ' ' || !strings.EqualFold(v[:len(scheme)], scheme) {
		return "", false
	}
	return strings.TrimSpace(v[len(scheme)+1:]), true
}

// Authenticate finds the request's access token, verifies it and checks
// that its session is not revoked. It reads no storage.
func (h *Handler) Authenticate(r *http.Request) (*token.Claims, error) {
	raw := h.findToken(r)
	if raw == "" {
		return nil, ErrNoToken
	}
	return h.verifyAccess(raw)
}

// verifyAccess verifies raw and checks the revocation list.
func (h *Handler) verifyAccess(raw string) (*token.Claims, error) {
	c, err := h.verifySignature(raw)
	if err != nil {
		return nil, err
	}
	if h.cfg.Revocations.Revoked(c.SessionID) {
		return nil, ErrRevoked
	}
	return c, nil
}

// verifySignature verifies raw's signature and claims but not its
// revocation state (logout accepts tokens of revoked sessions). A token
// must be for this app and must not live longer than the configured access
// TTL allows, so that the revocation list, which keeps entries for that
// long, covers it.
func (h *Handler) verifySignature(raw string) (*token.Claims, error) {
	c, err := h.cfg.Tokens.Verify(raw)
	if err != nil {
		return nil, err
	}
	if c.AppID != h.cfg.AppID {
		return nil, fmt.Errorf("%w: token for another app", token.ErrInvalidToken)
	}
	if c.IssuedAt == nil || c.ExpiresAt.Sub(c.IssuedAt.Time) > h.cfg.Tokens.AccessTTL() {
		return nil, fmt.Errorf("%w: lifetime longer than the access TTL", token.ErrInvalidToken)
	}
	return c, nil
}

// GuardError turns an Authenticate error into the 401 answer, with the
// WWW-Authenticate challenge of RFC 6750 in its Challenge field.
func GuardError(err error) *Error {
	e := &Error{Status: http.StatusUnauthorized, Code: CodeInvalidToken, Err: err,
		Challenge: `Bearer error="invalid_token"`}
	switch {
	case errors.Is(err, ErrNoToken):
		e.Message = "missing access token"
		e.Challenge = `Bearer realm="wechat_auth"`
	case errors.Is(err, ErrRevoked):
		e.Message = "the session has ended; log in again"
	case errors.Is(err, token.ErrExpired):
		e.Message = "access token expired; refresh it"
	default:
		e.Message = "invalid access token"
	}
	return e
}

// SetIdentity puts the verified identity on the request headers for the
// upstream (the client's own identity headers were stripped before).
func (h *Handler) SetIdentity(hdr http.Header, c *token.Claims) {
	// One backing array for the four one-value slices: one allocation.
	v := [...]string{c.Subject, c.OpenID, c.AppID, c.UnionID}
	vals := v[:]
	hdr[h.hdrUserID] = vals[0:1:1]
	hdr[h.hdrOpenID] = vals[1:2:2]
	hdr[h.hdrAppID] = vals[2:3:3]
	if c.UnionID != "" {
		hdr[h.hdrUnion] = vals[3:4:4]
	}
}

// authenticated runs the guard for an endpoint that needs an access token.
func (h *Handler) authenticated(r *http.Request) (*token.Claims, *Error) {
	c, err := h.Authenticate(r)
	if err != nil {
		return nil, GuardError(err)
	}
	return c, nil
}

// authenticatedPost is the prologue of a POST endpoint that needs an access
// token: method, guard, then the body decoded into dst.
func (h *Handler) authenticatedPost(w http.ResponseWriter, r *http.Request, dst any) (*token.Claims, *Error) {
	if r.Method != http.MethodPost {
		return nil, methodNotAllowed("POST")
	}
	c, e := h.authenticated(r)
	if e != nil {
		return nil, e
	}
	if e := decodeBody(w, r, dst, false, false); e != nil {
		return nil, e
	}
	return c, nil
}
