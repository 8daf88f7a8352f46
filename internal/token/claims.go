package token

import (
	"strconv"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Subject is who an access token is issued to.
type Subject struct {
	// UserID is the module's user id; it becomes the "sub" claim as a
	// decimal string. Must be > 0.
	UserID uint64
	// SessionID is the login session the token belongs to ("sid"); the
	// guard checks its revocation state. Required.
	SessionID string
	// OpenID is the user's WeChat openid for AppID ("openid"). Required.
	OpenID string
	// UnionID is the user's WeChat unionid ("unionid"), when known.
	UnionID string
	// AppID is the mini-program's app id ("appid"). Required.
	AppID string
	// Platform is the mini-program platform the user logged in on
	// ("platform"): "qq", "douyin", "alipay" or "baidu"; empty for WeChat,
	// whose tokens carry no platform claim.
	Platform string
}

// Claims is the claim set of an access token. The registered claims are iss,
// sub (user id as a decimal string), aud, exp, iat and jti; nbf is honoured
// when present but never issued.
//
// Claims returned by Verify may be shared between callers through the
// verified-token cache and must be treated as read-only.
type Claims struct {
	jwt.RegisteredClaims

	// SessionID is the "sid" claim: the session this token belongs to.
	SessionID string `json:"sid"`
	// OpenID is the "openid" claim.
	OpenID string `json:"openid"`
	// UnionID is the "unionid" claim; empty when unknown.
	UnionID string `json:"unionid,omitempty"`
	// AppID is the "appid" claim.
	AppID string `json:"appid"`
	// Platform is the "platform" claim; empty (absent) for WeChat.
	Platform string `json:"platform,omitempty"`
	// UserID is the user id parsed from sub by Verify. It is not
	// serialised; Issue writes it as sub.
	UserID uint64 `json:"-"`
}

// validate applies the claim rules of Verify at time now (see doc.go) and
// sets UserID from sub. It allocates nothing.
func (c *Claims) validate(now time.Time, leeway time.Duration, issuer, audience string) error {
	if c.ExpiresAt == nil {
		return errNoExp
	}
	if !now.Before(c.ExpiresAt.Add(leeway)) {
		return errExpired
	}
	if c.IssuedAt == nil {
		return errNoIat
	}
	if now.Before(c.IssuedAt.Add(-leeway)) {
		return errIatFuture
	}
	if c.NotBefore != nil && now.Before(c.NotBefore.Add(-leeway)) {
		return errNbfFuture
	}
	if c.Issuer != issuer {
		return errIssuer
	}
	if !audienceContains(c.Audience, audience) {
		return errAudience
	}
	uid, ok := parseUserID(c.Subject)
	if !ok {
		return errSubject
	}
	if c.SessionID == "" {
		return errNoSID
	}
	if c.OpenID == "" {
		return errNoOpenID
	}
	if c.AppID == "" {
		return errNoAppID
	}
	c.UserID = uid
	return nil
}

// validFrom is the earliest instant at which the claims pass the iat and nbf
// checks, given the leeway.
func (c *Claims) validFrom(leeway time.Duration) time.Time {
	t := c.IssuedAt.Time
	if c.NotBefore != nil && c.NotBefore.After(t) {
		t = c.NotBefore.Time
	}
	return t.Add(-leeway)
}

func audienceContains(aud jwt.ClaimStrings, want string) bool {
	for _, a := range aud {
		if a == want {
			return true
		}
	}
	return false
}

// parseUserID accepts the canonical decimal form of a positive uint64: no
// sign, no leading zeros, no other characters.
func parseUserID(sub string) (uint64, bool) {
	if sub == "" || sub[0] == '0' || len(sub) > 20 {
		return 0, false
	}
	for i := 0; i < len(sub); i++ {
		if sub[i] < '0' || sub[i] > '9' {
			return 0, false
		}
	}
	uid, err := strconv.ParseUint(sub, 10, 64)
	if err != nil || uid == 0 {
		return 0, false
	}
	return uid, true
}
