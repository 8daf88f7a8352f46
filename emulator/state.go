package emulator

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Errors of the emulated WeChat state. The API handlers map them to errcodes.
var (
	// errCodeInvalid: the code was never issued or has expired (40029).
	errCodeInvalid = errors.New("invalid code")
	// errCodeUsed: the code was already redeemed (40163).
	errCodeUsed = errors.New("code been used")
	// errTokenInvalid: the access token was never issued or was replaced (40001).
	errTokenInvalid = errors.New("access token is invalid or not latest")
	// errTokenExpired: the access token is the latest one but has expired (42001).
	errTokenExpired = errors.New("access token expired")
	// errNoSession: the openid has never exchanged a code.
	errNoSession = errors.New("no session for openid")
	// errCollision: a freshly generated random value was already in use.
	errCollision = errors.New("random value collision")
)

// Sizes of generated values.
const (
	sessionKeyBytes = 16 // AES-128 key, as WeChat's session_key
	codeBytes       = 24 // 32 url-safe characters, like a wx.login code
	phoneCodeBytes  = 32 // 64 hex characters
	tokenBytes      = 48 // 64 url-safe characters
	openIDLength    = 28 // "o" + 27 url-safe characters, like real openids
)

// loginCode is a code minted by /emulator/code, as wx.login would give.
type loginCode struct {
	openid  string
	expires time.Time
	used    bool
}

// phoneCode is a code minted by /emulator/phone_code, as the getPhoneNumber
// button would give.
type phoneCode struct {
	phoneNumber    string // with country code when not 86
	purePhone      string
	countryCode    string
	watermarkAppID string // empty: decided at redemption
	expires        time.Time
	used           bool
}

// user is what the emulator knows about one openid.
type user struct {
	unionid    string
	sessionKey []byte // latest session_key; nil before the first exchange
	appid      string // appid of the exchange that issued sessionKey
}

// accessToken is an access token issued by stable_token.
type accessToken struct {
	appid   string
	expires time.Time
}

// session is the result of a successful code exchange.
type session struct {
	openid     string
	unionid    string
	sessionKey []byte
}

// state is the emulated WeChat server state of one module instance. All
// methods are safe for concurrent use; times are passed in by the caller.
type state struct {
	codeTTL  time.Duration
	tokenTTL time.Duration

	mu         sync.Mutex
	codes      map[string]*loginCode
	phoneCodes map[string]*phoneCode
	users      map[string]*user        // by openid
	tokens     map[string]*accessToken // by token value
	latest     map[string]string       // appid → latest token value
	oauth      oauthState              // web OAuth codes and tokens (oauth_state.go)
	lastSweep  time.Time
}

// newState returns an empty state whose codes live codeTTL and whose access
// tokens live tokenTTL.
func newState(codeTTL, tokenTTL time.Duration) *state {
	return &state{
		codeTTL:    codeTTL,
		tokenTTL:   tokenTTL,
		codes:      make(map[string]*loginCode),
		phoneCodes: make(map[string]*phoneCode),
		users:      make(map[string]*user),
		tokens:     make(map[string]*accessToken),
		latest:     make(map[string]string),
		oauth:      newOAuthState(),
	}
}

// mintCode issues a login code for openid (a new openid when empty) and
// remembers unionid for it when non-empty. It returns the code and the openid.
func (s *state) mintCode(now time.Time, openid, unionid string) (code, id string, err error) {
	code = randomURLString(codeBytes, 0)
	if openid == "" {
		openid = "o" + randomURLString(openIDLength, openIDLength-1)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	s.sweepLocked(now)
	if _, dup := s.codes[code]; dup {
		return "", "", fmt.Errorf("minting code: %w", errCollision)
	}
	s.codes[code] = &loginCode{openid: openid, expires: now.Add(s.codeTTL)}
	u := s.userLocked(openid)
	if unionid != "" {
		u.unionid = unionid
	}
	return code, openid, nil
}

// setUnionID remembers unionid for openid.
func (s *state) setUnionID(openid, unionid string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.userLocked(openid).unionid = unionid
}

// exchangeCode redeems a login code for appid: it marks the code used and
// gives the openid a new 16-byte session_key.
func (s *state) exchangeCode(now time.Time, code, appid string) (session, error) {
	return s.exchangeCodeKey(now, code, appid, sessionKeyBytes)
}

// exchangeCodeKey is exchangeCode with a session key of keyLen bytes (24
// on Baidu; 0 on Alipay, which has none).
func (s *state) exchangeCodeKey(now time.Time, code, appid string, keyLen int) (session, error) {
	var key []byte
	if keyLen > 0 {
		key = make([]byte, keyLen)
		_, _ = rand.Read(key) // crypto/rand.Read never fails (Go ≥ 1.24)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.codes[code]
	if !ok || !now.Before(c.expires) {
		return session{}, fmt.Errorf("exchanging code: %w", errCodeInvalid)
	}
	if c.used {
		return session{}, fmt.Errorf("exchanging code: %w", errCodeUsed)
	}
	c.used = true
	u := s.userLocked(c.openid)
	u.sessionKey = key
	u.appid = appid
	return session{openid: c.openid, unionid: u.unionid, sessionKey: key}, nil
}

// latestSession returns the latest session_key of openid and the appid it was
// issued under.
func (s *state) latestSession(openid string) (key []byte, appid string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.users[openid]
	if !ok || u.sessionKey == nil {
		return nil, "", errNoSession
	}
	return u.sessionKey, u.appid, nil
}

// stableToken returns appid's current access token and its remaining
// lifetime, issuing a new one when there is none, it has expired, or
// forceRefresh is set. A new token invalidates the previous one.
func (s *state) stableToken(now time.Time, appid string, forceRefresh bool) (string, time.Duration, error) {
	fresh := randomURLString(tokenBytes, 0)

	s.mu.Lock()
	defer s.mu.Unlock()
	if cur, ok := s.latest[appid]; ok && !forceRefresh {
		if t := s.tokens[cur]; t != nil && now.Before(t.expires) {
			return cur, t.expires.Sub(now), nil
		}
	}
	if _, dup := s.tokens[fresh]; dup {
		return "", 0, fmt.Errorf("issuing access token: %w", errCollision)
	}
	if cur, ok := s.latest[appid]; ok {
		delete(s.tokens, cur)
	}
	s.tokens[fresh] = &accessToken{appid: appid, expires: now.Add(s.tokenTTL)}
	s.latest[appid] = fresh
	return fresh, s.tokenTTL, nil
}

// checkToken reports the appid an access token was issued for, or
// errTokenInvalid / errTokenExpired.
func (s *state) checkToken(now time.Time, token string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tokens[token]
	if !ok {
		return "", fmt.Errorf("checking access token: %w", errTokenInvalid)
	}
	if !now.Before(t.expires) {
		return "", fmt.Errorf("checking access token: %w", errTokenExpired)
	}
	return t.appid, nil
}

// mintPhoneCode issues a phone-number code for the given number.
func (s *state) mintPhoneCode(now time.Time, pure, countryCode, watermarkAppID string) (string, error) {
	b := make([]byte, phoneCodeBytes)
	_, _ = rand.Read(b)
	code := hex.EncodeToString(b)
	number := pure
	if countryCode != defaultCountryCode {
		number = "+" + countryCode + pure
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	s.sweepLocked(now)
	if _, dup := s.phoneCodes[code]; dup {
		return "", fmt.Errorf("minting phone code: %w", errCollision)
	}
	s.phoneCodes[code] = &phoneCode{
		phoneNumber:    number,
		purePhone:      pure,
		countryCode:    countryCode,
		watermarkAppID: watermarkAppID,
		expires:        now.Add(s.codeTTL),
	}
	return code, nil
}

// redeemPhoneCode marks a phone-number code used and returns what it stands
// for.
func (s *state) redeemPhoneCode(now time.Time, code string) (phoneCode, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.phoneCodes[code]
	if !ok || !now.Before(c.expires) {
		return phoneCode{}, fmt.Errorf("redeeming phone code: %w", errCodeInvalid)
	}
	if c.used {
		return phoneCode{}, fmt.Errorf("redeeming phone code: %w", errCodeUsed)
	}
	c.used = true
	return *c, nil
}

// userLocked returns the user record of openid, creating it. s.mu must be
// held.
func (s *state) userLocked(openid string) *user {
	u, ok := s.users[openid]
	if !ok {
		u = new(user)
		s.users[openid] = u
	}
	return u
}

// sweepLocked drops expired codes and access tokens, at most once per
// codeTTL so that minting stays O(1) amortised. Used codes are kept until
// they expire so that a reuse is told apart from an unknown code. s.mu must
// be held.
func (s *state) sweepLocked(now time.Time) {
	if now.Sub(s.lastSweep) < s.codeTTL {
		return
	}
	s.lastSweep = now
	s.sweepOAuthLocked(now)
	for k, c := range s.codes {
		if !now.Before(c.expires) {
			delete(s.codes, k)
		}
	}
	for k, c := range s.phoneCodes {
		if !now.Before(c.expires) {
			delete(s.phoneCodes, k)
		}
	}
	// An expired token is kept for one more tokenTTL so that it still gets
	// 42001 (expired) rather than 40001 (unknown), as on WeChat.
	for k, t := range s.tokens {
		if now.Sub(t.expires) >= s.tokenTTL {
			delete(s.tokens, k)
			if s.latest[t.appid] == k {
				delete(s.latest, t.appid)
			}
		}
	}
}

// randomURLString returns n random bytes as unpadded url-safe base64,
// truncated to length characters when length > 0.
func randomURLString(n, length int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go ≥ 1.24)
	s := base64.RawURLEncoding.EncodeToString(b)
	if length > 0 && length < len(s) {
		s = s[:length]
	}
	return s
}
