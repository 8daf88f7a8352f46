package token

import "errors"

// Sentinel errors returned by this package. Callers test them with errors.Is.
//
// Every error returned by [Service.Verify] wraps [ErrInvalidToken] and exactly
// one of the verification sentinels, so a caller may test for "any invalid
// token" or for a specific reason.
var (
	// ErrInvalidToken is wrapped by every verification failure.
	ErrInvalidToken = errors.New("token: invalid token")

	// ErrTooLarge means the token is longer than MaxTokenSize; it was refused
	// before any parsing.
	ErrTooLarge = errors.New("token: token too large")
	// ErrMalformed means the token is not a well-formed compact JWS with
	// JSON header and claims, or carries a header this package refuses (crit).
	ErrMalformed = errors.New("token: malformed token")
	// ErrUnknownKey means the header kid is missing or names no configured
	// key, or the header points at a key by other means (jku, x5u, jwk, x5c),
	// which is never honoured.
	ErrUnknownKey = errors.New("token: unknown key")
	// ErrAlgorithm means the header alg is not the algorithm of the key
	// selected by kid (this includes alg "none" and unknown algorithms).
	ErrAlgorithm = errors.New("token: algorithm does not match key")
	// ErrSignature means the signature does not verify under the selected key.
	ErrSignature = errors.New("token: invalid signature")
	// ErrExpired means exp is in the past by more than the leeway.
	ErrExpired = errors.New("token: token expired")
	// ErrNotYetValid means iat or nbf is in the future by more than the leeway.
	ErrNotYetValid = errors.New("token: token not yet valid")
	// ErrType means the header typ is not "at+jwt".
	ErrType = errors.New("token: wrong token type")
	// ErrIssuer means iss is missing or not the configured issuer.
	ErrIssuer = errors.New("token: wrong issuer")
	// ErrAudience means aud is missing or does not contain the configured
	// audience.
	ErrAudience = errors.New("token: wrong audience")
	// ErrClaims means a required claim is missing or has a bad value (exp or
	// iat missing, sub not a positive decimal user id, sid, openid or appid
	// empty).
	ErrClaims = errors.New("token: invalid claims")

	// ErrWeakKey means a key is too short: an HS256 secret under 32 bytes or
	// an RSA modulus under 2048 bits.
	ErrWeakKey = errors.New("token: key too weak")
	// ErrUnsupportedKey means a key type, curve or encoding is not supported.
	ErrUnsupportedKey = errors.New("token: unsupported key")
	// ErrDuplicateKID means two configured keys share one key id.
	ErrDuplicateKID = errors.New("token: duplicate key id")
	// ErrNoSigningKey means no key was configured, or the first key cannot
	// sign (it is verify-only).
	ErrNoSigningKey = errors.New("token: no signing key")
)

// verifyError is the error returned by Verify. It wraps ErrInvalidToken and
// one specific sentinel (kind). detail says what was wrong without quoting
// any part of the token.
type verifyError struct {
	kind   error
	detail string
}

// Error implements error.
func (e *verifyError) Error() string {
	return "verifying access token: " + e.detail
}

// Unwrap lets errors.Is match both ErrInvalidToken and the specific kind.
func (e *verifyError) Unwrap() []error {
	return []error{ErrInvalidToken, e.kind}
}

func invalid(kind error, detail string) error {
	return &verifyError{kind: kind, detail: detail}
}

// Verification failures that carry no variable detail are allocated once, so
// a flood of bad tokens does not allocate error values. They are never
// modified.
var (
	errTooLarge       = invalid(ErrTooLarge, "token longer than 4096 bytes")
	errEmpty          = invalid(ErrMalformed, "empty token")
	errMalformed      = invalid(ErrMalformed, "token is not a well-formed JWS")
	errCrit           = invalid(ErrMalformed, "crit header is not supported")
	errExternalKey    = invalid(ErrUnknownKey, "header references an external or embedded key (jku, x5u, jwk or x5c)")
	errNoKID          = invalid(ErrUnknownKey, "header kid is missing")
	errBadKID         = invalid(ErrUnknownKey, "header kid is not a string")
	errUnknownKID     = invalid(ErrUnknownKey, "header kid names no configured key")
	errAlgorithm      = invalid(ErrAlgorithm, "header alg does not match the key's algorithm")
	errAlgUnavailable = invalid(ErrAlgorithm, "header alg is missing or unsupported")
	errSignature      = invalid(ErrSignature, "signature does not verify")
	errType           = invalid(ErrType, `header typ is not "at+jwt"`)
	errNoExp          = invalid(ErrClaims, "exp claim is missing")
	errNoIat          = invalid(ErrClaims, "iat claim is missing")
	errExpired        = invalid(ErrExpired, "exp is in the past beyond the leeway")
	errIatFuture      = invalid(ErrNotYetValid, "iat is in the future beyond the leeway")
	errNbfFuture      = invalid(ErrNotYetValid, "nbf is in the future beyond the leeway")
	errIssuer         = invalid(ErrIssuer, "iss does not match the configured issuer")
	errAudience       = invalid(ErrAudience, "aud does not contain the configured audience")
	errSubject        = invalid(ErrClaims, "sub is not a positive decimal user id")
	errNoSID          = invalid(ErrClaims, "sid claim is missing")
	errNoOpenID       = invalid(ErrClaims, "openid claim is missing")
	errNoAppID        = invalid(ErrClaims, "appid claim is missing")
)
