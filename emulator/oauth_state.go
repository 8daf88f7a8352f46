package emulator

import (
	"errors"
	"fmt"
	"time"
)

// Web OAuth scopes, as WeChat names them.
const (
	// scopeBase: Official Account OAuth, silent; the openid only.
	scopeBase = "snsapi_base"
	// scopeUserInfo: Official Account OAuth with consent; userinfo allowed.
	scopeUserInfo = "snsapi_userinfo"
	// scopeLogin: Open Platform website QR login; userinfo allowed.
	scopeLogin = "snsapi_login"
)

// Lifetimes of web OAuth credentials, as on WeChat.
const (
	// oauthTokenTTL is the lifetime of a web OAuth access token (expires_in 7200).
	oauthTokenTTL = 2 * time.Hour
	// oauthRefreshTTL is the lifetime of a web OAuth refresh token.
	oauthRefreshTTL = 30 * 24 * time.Hour
)

// Errors of the emulated web OAuth state.
var (
	// errRefreshInvalid: the refresh token was never issued, or for another app (40030).
	errRefreshInvalid = errors.New("invalid refresh_token")
	// errRefreshExpired: the refresh token has expired (42002).
	errRefreshExpired = errors.New("refresh_token timeout")
)

// oauthGrant is what a user granted a web app on the authorize or qrconnect
// page: who they are to that app, and the scope.
type oauthGrant struct {
	appid      string
	openid     string
	unionid    string // empty: the app is bound to no Open Platform account
	scope      string
	snapshot   bool // a snapshot-page virtual account (is_snapshotuser)
	nickname   string
	headimgurl string
}

// userInfoAllowed reports whether the grant's access token may call
// /sns/userinfo.
func (g oauthGrant) userInfoAllowed() bool {
	return g.scope == scopeUserInfo || g.scope == scopeLogin
}

// oauthCode is a code the Allow button (or /emulator/oauth/code) gave.
type oauthCode struct {
	grant   oauthGrant
	expires time.Time
	used    bool
}

// oauthCredential is a web OAuth access or refresh token.
type oauthCredential struct {
	grant   oauthGrant
	expires time.Time
}

// oauthState holds the web OAuth codes and tokens of one emulator. It lives
// inside state and is guarded by state.mu.
type oauthState struct {
	codes   map[string]*oauthCode
	tokens  map[string]*oauthCredential // access tokens by value
	refresh map[string]*oauthCredential // refresh tokens by value
	last    map[string]oauthGrant       // appid → the latest grant, for the page's defaults
}

// newOAuthState returns an empty oauthState.
func newOAuthState() oauthState {
	return oauthState{
		codes:   make(map[string]*oauthCode),
		tokens:  make(map[string]*oauthCredential),
		refresh: make(map[string]*oauthCredential),
		last:    make(map[string]oauthGrant),
	}
}

// oauthTokens is the answer of a code exchange or a refresh.
type oauthTokens struct {
	access    string
	refresh   string
	expiresIn time.Duration
	grant     oauthGrant
}

// mintOAuthCode issues a single-use code standing for g, valid codeTTL, and
// remembers g as the app's latest grant.
func (s *state) mintOAuthCode(now time.Time, g oauthGrant) (string, error) {
	code := randomURLString(codeBytes, 0)

	s.mu.Lock()
	defer s.mu.Unlock()
	s.sweepLocked(now)
	if _, dup := s.oauth.codes[code]; dup {
		return "", fmt.Errorf("minting web OAuth code: %w", errCollision)
	}
	s.oauth.codes[code] = &oauthCode{grant: g, expires: now.Add(s.codeTTL)}
	s.oauth.last[g.appid] = g
	return code, nil
}

// lastOAuthGrant returns the latest grant given to appid, if any.
func (s *state) lastOAuthGrant(appid string) (oauthGrant, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok := s.oauth.last[appid]
	return g, ok
}

// exchangeOAuthCode redeems a web OAuth code for appid: it marks the code
// used and issues an access token and a refresh token. A code of another app
// is unknown to this one, as on WeChat.
func (s *state) exchangeOAuthCode(now time.Time, code, appid string) (oauthTokens, error) {
	access := randomURLString(tokenBytes, 0)
	refresh := randomURLString(tokenBytes, 0)

	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.oauth.codes[code]
	if !ok || !now.Before(c.expires) || c.grant.appid != appid {
		return oauthTokens{}, fmt.Errorf("exchanging web OAuth code: %w", errCodeInvalid)
	}
	if c.used {
		return oauthTokens{}, fmt.Errorf("exchanging web OAuth code: %w", errCodeUsed)
	}
	_, dupA := s.oauth.tokens[access]
	_, dupR := s.oauth.refresh[refresh]
	if dupA || dupR {
		return oauthTokens{}, fmt.Errorf("exchanging web OAuth code: %w", errCollision)
	}
	c.used = true
	s.oauth.tokens[access] = &oauthCredential{grant: c.grant, expires: now.Add(oauthTokenTTL)}
	s.oauth.refresh[refresh] = &oauthCredential{grant: c.grant, expires: now.Add(oauthRefreshTTL)}
	return oauthTokens{access: access, refresh: refresh, expiresIn: oauthTokenTTL, grant: c.grant}, nil
}

// refreshOAuthToken issues a new access token for a refresh token of appid.
// The refresh token stays valid until it expires, as on WeChat.
func (s *state) refreshOAuthToken(now time.Time, refresh, appid string) (oauthTokens, error) {
	access := randomURLString(tokenBytes, 0)

	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.oauth.refresh[refresh]
	if !ok || r.grant.appid != appid {
		return oauthTokens{}, fmt.Errorf("refreshing web OAuth token: %w", errRefreshInvalid)
	}
	if !now.Before(r.expires) {
		return oauthTokens{}, fmt.Errorf("refreshing web OAuth token: %w", errRefreshExpired)
	}
	if _, dup := s.oauth.tokens[access]; dup {
		return oauthTokens{}, fmt.Errorf("refreshing web OAuth token: %w", errCollision)
	}
	s.oauth.tokens[access] = &oauthCredential{grant: r.grant, expires: now.Add(oauthTokenTTL)}
	return oauthTokens{access: access, refresh: refresh, expiresIn: oauthTokenTTL, grant: r.grant}, nil
}

// checkOAuthToken returns the grant behind a web OAuth access token, or
// errTokenInvalid / errTokenExpired.
func (s *state) checkOAuthToken(now time.Time, token string) (oauthGrant, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.oauth.tokens[token]
	if !ok {
		return oauthGrant{}, fmt.Errorf("checking web OAuth token: %w", errTokenInvalid)
	}
	if !now.Before(t.expires) {
		return oauthGrant{}, fmt.Errorf("checking web OAuth token: %w", errTokenExpired)
	}
	return t.grant, nil
}

// sweepOAuthLocked drops expired web OAuth codes, and tokens that expired
// more than one lifetime ago (until then they still answer "expired" rather
// than "unknown", as on WeChat). s.mu must be held.
func (s *state) sweepOAuthLocked(now time.Time) {
	for k, c := range s.oauth.codes {
		if !now.Before(c.expires) {
			delete(s.oauth.codes, k)
		}
	}
	for k, t := range s.oauth.tokens {
		if now.Sub(t.expires) >= oauthTokenTTL {
			delete(s.oauth.tokens, k)
		}
	}
	for k, r := range s.oauth.refresh {
		if now.Sub(r.expires) >= oauthRefreshTTL {
			delete(s.oauth.refresh, k)
		}
	}
}
