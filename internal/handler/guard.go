package handler

import (
	"errors"
	"fmt"
	"net/http"
	"net/textproto"
	"net/url"
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

// Guard errors: authenticate returns errNoToken, errRevoked, or an error
// wrapping token.ErrInvalidToken.
var (
	// errNoToken: the request carries no token in any configured source.
	errNoToken = errors.New("no access token")
	// errRevoked: the token is valid but its session has been revoked.
	errRevoked = errors.New("session revoked")
)

// stripHeaders removes every header with the identity header prefix (see
// StripPrefixed), so a client can never pass an identity to the upstream.
func (h *Handler) stripHeaders(hdr http.Header) { StripPrefixed(hdr, h.prefix) }

// foldHeaderName lower-cases s and reads '_' and '.' as '-'.
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
	case c == '_' || c == '.':
		// CGI-style backends (PHP's $_SERVER) read X_WeChat_User_ID and
		// X.WeChat.User.ID as X-WeChat-User-ID.
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
	v, _ := h.findTokenSource(r)
	return v
}

// findTokenSource returns the first token found in the configured sources
// and whether it came from a cookie. The web block's access cookie is not
// one of them: only the guard reads it (see Serve).
func (h *Handler) findTokenSource(r *http.Request) (string, bool) {
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
			return v, s.From == SourceCookie
		}
	}
	return "", false
}

// cutScheme returns what follows "<scheme> " in v, the scheme matched
// case-insensitively.
func cutScheme(v, scheme string) (string, bool) {
	if len(v) <= len(scheme) || v[len(scheme)] != ' ' || !strings.EqualFold(v[:len(scheme)], scheme) {
		return "", false
	}
	return strings.TrimSpace(v[len(scheme)+1:]), true
}

// Result is what Serve decided about a request.
type Result uint8

// The results of Serve. Only ResultPreflight, ResultOK and ResultAnonymous
// send the request on to the next handler.
const (
	// ResultEndpoint: the path is an endpoint path; its answer is written.
	ResultEndpoint Result = iota
	// ResultPreflight: a CORS preflight, passed on unauthenticated (CORS
	// headers are the site's business, and a browser never sends
	// credentials on a preflight).
	ResultPreflight
	// ResultOK: a valid access token of a live session.
	ResultOK
	// ResultAnonymous: no token, and the guard is optional.
	ResultAnonymous
	// ResultMissing: no token.
	ResultMissing
	// ResultInvalid: a token that does not verify.
	ResultInvalid
	// ResultExpired: a token past its exp.
	ResultExpired
	// ResultRevoked: a valid token of a revoked session.
	ResultRevoked

	// NumResults is the number of results, for arrays indexed by Result.
	NumResults = int(ResultRevoked) + 1
)

var resultNames = [...]string{"endpoint", "preflight", "ok", "anonymous", "missing", "invalid", "expired", "revoked"}

// String names the result: endpoint, preflight, ok, anonymous, missing,
// invalid, expired or revoked.
func (r Result) String() string {
	if int(r) < len(resultNames) {
		return resultNames[r]
	}
	return "unknown"
}

// Next reports whether the request goes on to the next handler.
func (r Result) Next() bool {
	return r == ResultPreflight || r == ResultOK || r == ResultAnonymous
}

// Serve is the handler's one entry point: every decision about a request
// is made here, in this order.
//
//  1. Client-sent identity headers are removed, and identity trailers
//     of the body (always, so a spoofed identity never reaches the
//     upstream).
//  2. A CORS preflight passes unauthenticated: ResultPreflight.
//  3. An endpoint path, or a path below the avatar path (a stored
//     avatar, public), is answered: ResultEndpoint.
//  4. With browser sessions on, the module's cookies are taken off the
//     request (the upstream never sees them); the access cookie is a token
//     source after the configured ones. A request authenticated by a
//     cookie (or about to be, by the refresh cookie) whose method changes
//     something and which a browser marks cross-origin is refused: 403
//     csrf_rejected, counted as invalid.
//  5. Otherwise the access token is checked. A valid one puts the identity
//     headers on r and returns ResultOK with its claims; no token in
//     optional mode returns ResultAnonymous. With browser sessions on, a
//     missing, expired or invalid access cookie next to a refresh cookie
//     rotates the session inline: the new cookies go on the answer and
//     the request goes on with the new token.
//  6. A failure is answered 401 with the RFC 6750 challenge; with browser
//     sessions on, a page navigation instead gets a redirect to the login
//     page (when an OAuth app is configured) or a 401 page. With
//     Config.CaddyErrors the body is not written: Serve sets the
//     WWW-Authenticate header and returns the *Error, for the caller to
//     hand to the server's own error handling.
//
// The error is non-nil only in that last case. Serve reads no storage
// except at endpoints and for an inline rotation.
func (h *Handler) Serve(w http.ResponseWriter, r *http.Request) (Result, *token.Claims, error) {
	h.stripHeaders(r.Header)
	StripTrailers(r, h.prefix)
	if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
		return ResultPreflight, nil, nil
	}
	fn, ok := h.endpoints[r.URL.Path]
	if !ok && h.avatarPrefix != "" && strings.HasPrefix(r.URL.Path, h.avatarPrefix) {
		// Stored avatars, public: every name below the upload path.
		fn, ok = h.avatarServe, true
	}
	if ok {
		if e := fn(w, r); e != nil {
			h.logError(r, e)
			WriteError(w, e)
		}
		return ResultEndpoint, nil, nil
	}
	raw, fromCookie := h.findTokenSource(r)
	var refresh string
	if h.web != nil {
		var access string
		access, refresh = h.web.cfg.Cookies.Take(r.Header)
		if raw == "" && access != "" {
			raw, fromCookie = access, true
		}
		if (fromCookie || (raw == "" && refresh != "")) && !safeMethod(r.Method) {
			if err := h.web.csrf.Check(r); err != nil {
				h.metrics.Guard(ResultInvalid)
				e := csrfError(err)
				if h.cfg.CaddyErrors {
					return ResultInvalid, nil, e
				}
				WriteError(w, e)
				return ResultInvalid, nil, nil
			}
		}
	}
	var c *token.Claims
	var err error
	if raw == "" {
		err = errNoToken
	} else {
		c, err = h.verifyAccess(raw)
	}
	if err != nil && refresh != "" && (raw == "" || fromCookie) && !errors.Is(err, errRevoked) {
		// The access cookie is gone (it lives as long as its token) or
		// stale: rotate the session from the refresh cookie.
		c, err = h.rotateCookies(w, r, refresh, err)
	}
	if err == nil {
		h.setIdentity(r.Header, c)
		h.metrics.Guard(ResultOK)
		return ResultOK, c, nil
	}
	res := guardResult(err)
	if res == ResultMissing && h.cfg.Optional {
		res = ResultAnonymous
	}
	h.metrics.Guard(res)
	if res == ResultAnonymous {
		return res, nil, nil
	}
	e := guardError(err)
	if h.web != nil && isNavigation(r) {
		if h.web.hasOAuth() {
			redirect(w, h.web.loginPath+"?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusFound)
			return res, nil, nil
		}
		if h.cfg.CaddyErrors {
			w.Header().Set("WWW-Authenticate", e.Challenge)
			return res, nil, e
		}
		w.Header().Set("WWW-Authenticate", e.Challenge)
		writePage(w, r, page{Status: http.StatusUnauthorized, Code: e.Code, Title: "Please log in",
			Text: "This page needs a WeChat login. Open it from the mini-program."}, 0)
		return res, nil, nil
	}
	if h.cfg.CaddyErrors {
		w.Header().Set("WWW-Authenticate", e.Challenge)
		return res, nil, e
	}
	WriteError(w, e)
	return res, nil, nil
}

// safeMethod reports whether a method only reads (GET, HEAD, OPTIONS).
func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

// authenticate finds the request's access token in the configured sources,
// verifies it and checks that its session is not revoked. It reads no
// storage.
func (h *Handler) authenticate(r *http.Request) (*token.Claims, error) {
	raw, _ := h.findTokenSource(r)
	if raw == "" {
		return nil, errNoToken
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
		return nil, errRevoked
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
	if c.Platform != h.claim {
		return nil, fmt.Errorf("%w: token of another platform", token.ErrInvalidToken)
	}
	if c.IssuedAt == nil || c.ExpiresAt.Sub(c.IssuedAt.Time) > h.cfg.Tokens.AccessTTL() {
		return nil, fmt.Errorf("%w: lifetime longer than the access TTL", token.ErrInvalidToken)
	}
	return c, nil
}

// guardResult classifies an authenticate error.
func guardResult(err error) Result {
	switch {
	case errors.Is(err, errNoToken):
		return ResultMissing
	case errors.Is(err, errRevoked):
		return ResultRevoked
	case errors.Is(err, token.ErrExpired):
		return ResultExpired
	}
	return ResultInvalid
}

// guardError turns an authenticate error into the 401 answer, with the
// WWW-Authenticate challenge of RFC 6750 in its Challenge field.
func guardError(err error) *Error {
	e := &Error{Status: http.StatusUnauthorized, Code: CodeInvalidToken, Err: err,
		Challenge: `Bearer error="invalid_token"`}
	switch guardResult(err) {
	case ResultMissing:
		e.Message = "missing access token"
		e.Challenge = `Bearer realm="wechat_auth"`
	case ResultRevoked:
		e.Message = "the session has ended; log in again"
	case ResultExpired:
		e.Message = "access token expired; refresh it"
	default:
		e.Message = "invalid access token"
	}
	return e
}

// setIdentity puts the verified identity on the request headers for the
// upstream (the client's own identity headers were stripped before).
func (h *Handler) setIdentity(hdr http.Header, c *token.Claims) {
	// One backing array for the five one-value slices: one allocation.
	v := [...]string{c.Subject, c.OpenID, c.AppID, c.UnionID, h.cfg.Platform}
	vals := v[:]
	hdr[h.hdrUserID] = vals[0:1:1]
	hdr[h.hdrOpenID] = vals[1:2:2]
	hdr[h.hdrAppID] = vals[2:3:3]
	hdr[h.hdrPlat] = vals[4:5:5]
	if c.UnionID != "" {
		hdr[h.hdrUnion] = vals[3:4:4]
	}
}

// authenticated runs the guard for an endpoint that needs an access token.
func (h *Handler) authenticated(r *http.Request) (*token.Claims, *Error) {
	c, err := h.authenticate(r)
	if err != nil {
		return nil, guardError(err)
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
