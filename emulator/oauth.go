package emulator

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"time"
	"unicode/utf8"

	"github.com/caddyserver/caddy/v2"
)

// Paths of the emulated WeChat web OAuth: the pages a browser is sent to
// (served by open.weixin.qq.com at WeChat), the server API calls (served by
// api.weixin.qq.com) and the emulator-only helper that mints codes.
const (
	pathAuthorize        = "/connect/oauth2/authorize"
	pathQRConnect        = "/connect/qrconnect"
	pathOAuthAccessToken = "/sns/oauth2/access_token"
	pathOAuthRefresh     = "/sns/oauth2/refresh_token"
	pathUserInfo         = "/sns/userinfo"
	pathOAuthCode        = "/emulator/oauth/code"
)

// oauthAPIPaths is the set of emulated web OAuth API paths; faults queued
// with /emulator/fault reach them. Read-only.
var oauthAPIPaths = map[string]bool{
	pathOAuthAccessToken: true,
	pathOAuthRefresh:     true,
	pathUserInfo:         true,
}

// isOAuthPath reports whether p is served by the web OAuth twin.
func isOAuthPath(p string) bool {
	return oauthAPIPaths[p] || p == pathAuthorize || p == pathQRConnect || p == pathOAuthCode
}

// WeChat errcodes of the web OAuth API, besides those in api.go.
const (
	codeInvalidRefreshToken = 40030
	codeMissingRefreshToken = 41003
	codeMissingOpenID       = 41009
	codeRefreshTokenExpired = 42002
	codeAPIUnauthorized     = 48001
)

// Defaults of a grant when the page or the helper leaves them out.
const (
	defaultOAuthNickname = "Emulated user"
	maxNicknameRunes     = 64
	maxURLBytes          = 2048
)

// oauthTokenResponse is a successful /sns/oauth2/access_token or
// /sns/oauth2/refresh_token answer.
type oauthTokenResponse struct {
	AccessToken    string `json:"access_token"`
	ExpiresIn      int64  `json:"expires_in"`
	RefreshToken   string `json:"refresh_token"`
	OpenID         string `json:"openid"`
	Scope          string `json:"scope"`
	IsSnapshotUser int    `json:"is_snapshotuser,omitempty"`
	UnionID        string `json:"unionid,omitempty"`
}

// userInfoResponse is a successful /sns/userinfo answer. WeChat no longer
// gives sex or region: they are 0 and empty.
type userInfoResponse struct {
	OpenID     string   `json:"openid"`
	Nickname   string   `json:"nickname"`
	Sex        int      `json:"sex"`
	Province   string   `json:"province"`
	City       string   `json:"city"`
	Country    string   `json:"country"`
	HeadImgURL string   `json:"headimgurl"`
	Privilege  []string `json:"privilege"`
	UnionID    string   `json:"unionid,omitempty"`
}

// oauthCodeRequest is the body of POST /emulator/oauth/code.
type oauthCodeRequest struct {
	AppID      string `json:"appid"`
	OpenID     string `json:"openid"`
	UnionID    string `json:"unionid"`
	Scope      string `json:"scope"`
	Snapshot   bool   `json:"snapshot"`
	Nickname   string `json:"nickname"`
	HeadImgURL string `json:"headimgurl"`
}

// provisionOAuth resolves placeholders in the web OAuth apps' secrets.
func (e *Emulator) provisionOAuth(repl *caddy.Replacer) error {
	e.oauthApps = make(map[string]string, len(e.OAuthApps))
	for appid, secret := range e.OAuthApps {
		if !validID(appid) {
			return fmt.Errorf("oauth_apps: appid must be 1 to 128 characters of A-Z a-z 0-9 - _ (got %q)", appid)
		}
		resolved, err := repl.ReplaceOrErr(secret, true, true)
		if err != nil {
			return fmt.Errorf("resolving the secret of oauth_app %s: %v", appid, err)
		}
		e.oauthApps[appid] = resolved
	}
	return nil
}

// knownOAuthApp reports whether appid may use the web OAuth twin: any appid
// when no oauth_app is configured, else only the configured ones.
func (e *Emulator) knownOAuthApp(appid string) bool {
	if len(e.oauthApps) == 0 {
		return true
	}
	_, ok := e.oauthApps[appid]
	return ok
}

// serveOAuth answers the web OAuth pages, API calls and helper.
func (e *Emulator) serveOAuth(w http.ResponseWriter, r *http.Request, path string) error {
	switch path {
	case pathAuthorize, pathQRConnect:
		e.serveAuthorizePage(w, r, path)
		return nil
	case pathOAuthCode:
		e.mintOAuthCodeHelper(w, r)
		return nil
	}
	if handled, err := e.applyFault(w, r, path); handled {
		return err
	}
	if r.Method != http.MethodGet {
		e.writeAPIError(w, codeRequireGET, "require GET method")
		return nil
	}
	now := e.now()
	switch path {
	case pathOAuthAccessToken:
		e.oauthAccessToken(w, r, now)
	case pathOAuthRefresh:
		e.oauthRefreshToken(w, r, now)
	case pathUserInfo:
		e.userInfo(w, r, now)
	}
	return nil
}

// oauthAccessToken emulates GET /sns/oauth2/access_token.
func (e *Emulator) oauthAccessToken(w http.ResponseWriter, r *http.Request, now time.Time) {
	q := r.URL.Query()
	appid := q.Get("appid")
	if e.checkOAuthApp(w, appid, q.Get("secret"), true) {
		return
	}
	if q.Get("grant_type") != "authorization_code" {
		e.writeAPIError(w, codeInvalidGrantType, "invalid grant_type")
		return
	}
	code := q.Get("code")
	if code == "" {
		e.writeAPIError(w, codeMissingCode, "missing code")
		return
	}
	t, err := e.state.exchangeOAuthCode(now, code, appid)
	if err != nil {
		e.writeStateError(w, err)
		return
	}
	resp := oauthTokenResponse{
		AccessToken:  t.access,
		ExpiresIn:    ceilSeconds(t.expiresIn),
		RefreshToken: t.refresh,
		OpenID:       t.grant.openid,
		Scope:        t.grant.scope,
	}
	if t.grant.snapshot {
		resp.IsSnapshotUser = 1
	}
	// WeChat gives the unionid only to a scope the user consented to.
	if t.grant.userInfoAllowed() {
		resp.UnionID = t.grant.unionid
	}
	writeJSON(w, apiContentType, http.StatusOK, resp)
}

// oauthRefreshToken emulates GET /sns/oauth2/refresh_token: a new access
// token for the same grant; the refresh token itself is kept.
func (e *Emulator) oauthRefreshToken(w http.ResponseWriter, r *http.Request, now time.Time) {
	q := r.URL.Query()
	appid := q.Get("appid")
	if e.checkOAuthApp(w, appid, "", false) {
		return
	}
	if q.Get("grant_type") != "refresh_token" {
		e.writeAPIError(w, codeInvalidGrantType, "invalid grant_type")
		return
	}
	refresh := q.Get("refresh_token")
	if refresh == "" {
		e.writeAPIError(w, codeMissingRefreshToken, "refresh_token missing")
		return
	}
	t, err := e.state.refreshOAuthToken(now, refresh, appid)
	switch {
	case errors.Is(err, errRefreshInvalid):
		e.writeAPIError(w, codeInvalidRefreshToken, "invalid refresh_token")
		return
	case errors.Is(err, errRefreshExpired):
		e.writeAPIError(w, codeRefreshTokenExpired, "refresh_token timeout")
		return
	case err != nil:
		e.writeStateError(w, err)
		return
	}
	writeJSON(w, apiContentType, http.StatusOK, oauthTokenResponse{
		AccessToken:  t.access,
		ExpiresIn:    ceilSeconds(t.expiresIn),
		RefreshToken: t.refresh,
		OpenID:       t.grant.openid,
		Scope:        t.grant.scope,
	})
}

// userInfo emulates GET /sns/userinfo: only a token of a scope the user
// consented to (snsapi_userinfo, snsapi_login) may read the profile; a
// snsapi_base token gets 48001, as on WeChat.
func (e *Emulator) userInfo(w http.ResponseWriter, r *http.Request, now time.Time) {
	q := r.URL.Query()
	token := q.Get("access_token")
	if token == "" {
		e.writeAPIError(w, codeMissingAccessToken, "access_token missing")
		return
	}
	g, err := e.state.checkOAuthToken(now, token)
	if err != nil {
		e.writeStateError(w, err)
		return
	}
	openid := q.Get("openid")
	switch {
	case openid == "":
		e.writeAPIError(w, codeMissingOpenID, "missing openid")
		return
	case openid != g.openid:
		e.writeAPIError(w, codeInvalidOpenID, "invalid openid")
		return
	case !g.userInfoAllowed():
		e.writeAPIError(w, codeAPIUnauthorized, "api unauthorized")
		return
	}
	writeJSON(w, apiContentType, http.StatusOK, userInfoResponse{
		OpenID:     g.openid,
		Nickname:   g.nickname,
		HeadImgURL: g.headimgurl,
		Privilege:  []string{},
		UnionID:    g.unionid,
	})
}

// checkOAuthApp checks a web OAuth appid (and, with withSecret, its secret)
// like WeChat. It answers the request and reports true when they are
// refused.
func (e *Emulator) checkOAuthApp(w http.ResponseWriter, appid, secret string, withSecret bool) bool {
	want, configured := e.oauthApps[appid]
	switch {
	case appid == "":
		e.writeAPIError(w, codeMissingAppID, "appid missing")
	case !e.knownOAuthApp(appid):
		e.writeAPIError(w, codeInvalidAppID, "invalid appid")
	case !withSecret:
		return false
	case secret == "":
		e.writeAPIError(w, codeMissingAppSecret, "appsecret missing")
	case configured && subtle.ConstantTimeCompare([]byte(secret), []byte(want)) != 1:
		e.writeAPIError(w, codeInvalidAppSecret, "invalid appsecret")
	default:
		return false
	}
	return true
}

// mintOAuthCodeHelper serves POST /emulator/oauth/code: it mints the code
// the Allow button would give.
func (e *Emulator) mintOAuthCodeHelper(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeHelperError(w, http.StatusMethodNotAllowed, "method not allowed; use POST")
		return
	}
	var req oauthCodeRequest
	if err := readJSON(w, r, &req, true); err != nil {
		writeBodyError(w, err)
		return
	}
	if req.Scope == "" {
		req.Scope = scopeBase
		if req.Snapshot {
			req.Scope = scopeUserInfo
		}
	}
	if req.OpenID == "" {
		req.OpenID = newOpenID()
	}
	if req.Nickname == "" {
		req.Nickname = defaultOAuthNickname
	}
	g := oauthGrant{
		appid:      req.AppID,
		openid:     req.OpenID,
		unionid:    req.UnionID,
		scope:      req.Scope,
		snapshot:   req.Snapshot,
		nickname:   req.Nickname,
		headimgurl: req.HeadImgURL,
	}
	if msg := e.checkGrant(g, false); msg != "" {
		writeHelperError(w, http.StatusBadRequest, msg)
		return
	}
	code, err := e.state.mintOAuthCode(e.now(), g)
	if err != nil {
		writeHelperError(w, http.StatusServiceUnavailable, "minting code failed; try again")
		return
	}
	writeJSON(w, helperContentType, http.StatusOK, codeResponse{Code: code, OpenID: g.openid})
}

// checkGrant validates a grant given by the page or the helper; it returns
// what is wrong, or "". qrconnect says whether the grant comes from the QR
// login page (snsapi_login only) rather than the authorize page.
func (e *Emulator) checkGrant(g oauthGrant, qrconnect bool) string {
	switch {
	case g.appid == "":
		return "appid is required"
	case !validID(g.appid):
		return "appid must be 1 to 128 characters of A-Z a-z 0-9 - _"
	case !e.knownOAuthApp(g.appid):
		return "appid is not one of the emulator's oauth_app apps"
	case !validID(g.openid):
		return "openid must be 1 to 128 characters of A-Z a-z 0-9 - _"
	case g.unionid != "" && !validID(g.unionid):
		return "unionid must be empty or 1 to 128 characters of A-Z a-z 0-9 - _"
	case g.scope != scopeBase && g.scope != scopeUserInfo && g.scope != scopeLogin:
		return "scope must be snsapi_base, snsapi_userinfo or snsapi_login"
	case qrconnect && g.scope != scopeLogin:
		return "the QR login page grants snsapi_login only"
	case g.snapshot && g.scope != scopeUserInfo:
		return "a snapshot-page user exists only with snsapi_userinfo"
	case !validNickname(g.nickname):
		return "nickname must be 1 to 64 characters without control characters"
	case g.headimgurl != "" && !validHTTPURL(g.headimgurl):
		return "headimgurl must be empty or an absolute http(s) URL of at most 2048 bytes"
	}
	return ""
}

// newOpenID returns a fresh openid shaped like WeChat's.
func newOpenID() string {
	return "o" + randomURLString(openIDLength, openIDLength-1)
}

// validNickname reports whether s is 1 to 64 characters of valid UTF-8
// without control characters.
func validNickname(s string) bool {
	if s == "" || !utf8.ValidString(s) || utf8.RuneCountInString(s) > maxNicknameRunes {
		return false
	}
	for _, c := range s {
		if c < 0x20 || c == 0x7f || (c >= 0x80 && c < 0xa0) {
			return false
		}
	}
	return true
}
