// Package token issues and verifies the access tokens of caddy-wechat-auth,
// manages their signing keys, publishes the public keys as a JWK Set, caches
// verified tokens, and defines the format of refresh tokens.
//
// # Access tokens
//
// An access token is a compact JWS (a JWT) signed by the first configured key,
// with the protected header
//
//	{"alg": "<key alg>", "kid": "<key id>", "typ": "at+jwt"}
//
// and the claim set ([Claims]):
//
//	iss      Config.Issuer
//	sub      the user id as a decimal string ("42")
//	aud      [Config.Audience]
//	exp      iat + Config.AccessTTL
//	iat      the issue time, whole seconds
//	jti      a unique token id (NewID)
//	sid      the session id; the guard checks its revocation state
//	openid   the WeChat openid of the user for appid
//	unionid  the WeChat unionid, only when known
//	appid    the mini-program app id
//
// [Service.Issue] is deterministic: the same subject, id and issue time give
// the same claims, and for HS256 and EdDSA (deterministic signatures) the
// same token.
//
// # Verification rules
//
// [Service.Verify] accepts a token only if all of these hold; each failure
// wraps [ErrInvalidToken] and the sentinel named here:
//
//   - it is at most MaxTokenSize (4096) bytes, checked before any decoding
//     (ErrTooLarge);
//   - it is a compact JWS of three base64url segments with JSON header and
//     claims (ErrMalformed);
//   - the header has no jku, x5u, jwk or x5c member (ErrUnknownKey: keys are
//     never taken from or fetched for a token) and no crit member
//     (ErrMalformed);
//   - typ is "at+jwt" (or "application/at+jwt", compared case-insensitively
//     as RFC 9068 requires) (ErrType);
//   - kid is present and names a configured key (ErrUnknownKey). A missing
//     kid is refused even when only one key is configured: every token this
//     package issues carries one, so a token without it was not made here;
//   - alg equals the algorithm of the key kid selected (ErrAlgorithm). The
//     algorithm is a property of the key, never of the token: this is what
//     defeats alg "none" and RS256-to-HS256 key confusion. Signatures are
//     checked by golang-jwt with the key's own method;
//   - the signature verifies under that key (ErrSignature);
//   - exp and iat are present (ErrClaims); now < exp + leeway (ErrExpired);
//     iat and, when present, nbf are not after now + leeway
//     (ErrNotYetValid);
//   - iss equals Config.Issuer exactly (ErrIssuer); aud, a string or an
//     array, contains Config.Audience (ErrAudience);
//   - sub is a positive uint64 in canonical decimal form (no sign, no
//     leading zeros), returned as Claims.UserID; sid, openid and appid are
//     not empty (ErrClaims).
//
// The time is Config.Now, and Config.Leeway applies to every time check.
// Revocation of the session named by sid is not this package's concern; the
// guard checks it after Verify.
//
// # Verified-token cache
//
// Verifying a token costs tens of microseconds: an asymmetric signature
// check, and for every algorithm the base64 and JSON decoding, far more than
// the rest of a request to a static file. Whatever its keys, the Service
// keeps a bounded cache (Config.CacheSize entries, 8192 by default)
// of tokens that passed every check, keyed by the exact token string. A cache
// entry is served only between the token's iat/nbf (minus leeway) and its exp,
// never at or after exp: from then on a full verification decides again, with
// the leeway. Because the key set of a Service never changes, a token that
// verified once keeps verifying until exp. The cache is sharded, lookups take
// a read lock and do not allocate, and a full shard replaces the
// sooner-expiring of two random entries in O(1). A repeated token costs one
// map lookup, whatever its algorithm (for HS256 too: decoding costs about
// ten times the HMAC).
// Claims served from the cache are shared and must not be modified.
//
// # Keys
//
// A [Key] has a key id and exactly one algorithm, fixed by its type:
//
//	HS256  NewHMACKey: a shared secret of at least 32 bytes
//	EdDSA  Ed25519 (NewSigningKey, NewVerifyKey, NewEd25519Key from a 32-byte seed)
//	ES256  ECDSA on P-256 only
//	RS256  RSA of at least 2048 bits
//
// [ParsePEM] reads PKCS#8, SEC 1 and PKCS#1 private keys and PKIX public
// keys; encrypted PEM is not supported. Private keys sign and verify, public
// keys only verify. An asymmetric key without an explicit kid gets its RFC
// 7638 thumbprint ([Thumbprint]); an HMAC key gets "hs-" and the hex of the
// first 8 bytes of SHA-256 of the secret. Either way the default kid is
// stable across restarts. Secrets and private keys never appear in errors.
//
// [Service.JWKS] publishes the public keys (kty, crv, x, y, n, e, kid, alg,
// use "sig") so that other services can verify tokens; HMAC keys are never
// published.
//
// # Rotation
//
// Config.Keys is ordered: the first key signs, all keys verify. To rotate,
// configure [new, old]: new tokens are signed with new, tokens already issued
// under old keep verifying by their kid. Once every token signed by old has
// expired (AccessTTL plus leeway after the switch), drop old, or keep only its
// public half (a verify-only key) a little longer.
//
// # Refresh tokens
//
// A refresh token is opaque: 32 random bytes, base64url ([NewRefreshToken]).
// Only its SHA-256 ([HashRefreshToken]) is stored. When a refresh token is
// rotated, the child is derived from the parent with
// HMAC-SHA256(secret, "caddy-wechat-auth refresh v1\x00" + parent)
// ([DeriveRefreshToken]), so a retried rotation can return the same child
// without the plaintext child ever being stored.
package token
