package emulator

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// Paths of the emulated WeChat server API.
const (
	pathJSCode2Session = "/sns/jscode2session"
	pathStableToken    = "/cgi-bin/stable_token"
	pathPhoneNumber    = "/wxa/business/getuserphonenumber"
	pathCheckSession   = "/wxa/checksession"
)

// apiPaths is the set of emulated WeChat API paths. Read-only.
var apiPaths = map[string]bool{
	pathJSCode2Session: true,
	pathStableToken:    true,
	pathPhoneNumber:    true,
	pathCheckSession:   true,
	pathMsgSecCheck:    true,
}

// WeChat errcodes the emulator answers with.
const (
	codeSystemError        = -1
	codeInvalidCredential  = 40001
	codeInvalidGrantType   = 40002
	codeInvalidOpenID      = 40003
	codeInvalidAppID       = 40013
	codeInvalidCode        = 40029
	codeInvalidArgs        = 40097
	codeInvalidAppSecret   = 40125
	codeCodeUsed           = 40163
	codeMissingAccessToken = 41001
	codeMissingAppID       = 41002
	codeMissingAppSecret   = 41004
	codeMissingCode        = 41008
	codeTokenExpired       = 42001
	codeRequireGET         = 43001
	codeRequirePOST        = 43002
	codeDataFormatError    = 47001
	codeInvalidSignature   = 87009
)

// msgTokenInvalid is WeChat's errmsg for errcode 40001.
const msgTokenInvalid = "invalid credential, access_token is invalid or not latest"

// apiContentType is the Content-Type WeChat's API answers with.
const apiContentType = "application/json; encoding=utf-8"

// apiError is WeChat's error body.
type apiError struct {
	Errcode int    `json:"errcode"`
	Errmsg  string `json:"errmsg"`
}

// jscode2sessionResponse is a successful /sns/jscode2session answer.
type jscode2sessionResponse struct {
	OpenID     string `json:"openid"`
	SessionKey string `json:"session_key"`
	UnionID    string `json:"unionid,omitempty"`
}

// stableTokenRequest is the body of POST /cgi-bin/stable_token.
type stableTokenRequest struct {
	GrantType    string `json:"grant_type"`
	AppID        string `json:"appid"`
	Secret       string `json:"secret"`
	ForceRefresh bool   `json:"force_refresh"`
}

// stableTokenResponse is a successful /cgi-bin/stable_token answer.
type stableTokenResponse struct {
	AccessToken string `json:"access_token"`
	ExpiresIn   int64  `json:"expires_in"`
}

// phoneNumberRequest is the body of POST /wxa/business/getuserphonenumber.
type phoneNumberRequest struct {
	Code string `json:"code"`
}

// phoneInfo is the phone_info member of a getuserphonenumber answer.
type phoneInfo struct {
	PhoneNumber     string    `json:"phoneNumber"`
	PurePhoneNumber string    `json:"purePhoneNumber"`
	CountryCode     string    `json:"countryCode"`
	Watermark       watermark `json:"watermark"`
}

// phoneNumberResponse is a successful getuserphonenumber answer.
type phoneNumberResponse struct {
	Errcode   int       `json:"errcode"`
	Errmsg    string    `json:"errmsg"`
	PhoneInfo phoneInfo `json:"phone_info"`
}

// serveAPI answers one emulated WeChat API call, after any queued fault.
func (e *Emulator) serveAPI(w http.ResponseWriter, r *http.Request, path string) error {
	if handled, err := e.applyFault(w, r, path); handled {
		return err
	}
	now := e.now()
	switch path {
	case pathJSCode2Session:
		e.jscode2session(w, r, now)
	case pathStableToken:
		e.stableToken(w, r, now)
	case pathPhoneNumber:
		e.getUserPhoneNumber(w, r, now)
	case pathCheckSession:
		e.checkSession(w, r, now)
	case pathMsgSecCheck:
		e.msgSecCheck(w, r, now)
	}
	return nil
}

// jscode2session emulates GET /sns/jscode2session.
func (e *Emulator) jscode2session(w http.ResponseWriter, r *http.Request, now time.Time) {
	if r.Method != http.MethodGet {
		e.writeAPIError(w, codeRequireGET, "require GET method")
		return
	}
	q := r.URL.Query()
	appid := q.Get("appid")
	if e.checkApp(w, appid, q.Get("secret")) {
		return
	}
	if q.Get("grant_type") != "authorization_code" {
		e.writeAPIError(w, codeInvalidGrantType, "invalid grant_type")
		return
	}
	code := q.Get("js_code")
	if code == "" {
		e.writeAPIError(w, codeMissingCode, "missing code")
		return
	}
	s, err := e.state.exchangeCode(now, code, appid)
	if err != nil {
		e.writeStateError(w, err)
		return
	}
	writeJSON(w, apiContentType, http.StatusOK, jscode2sessionResponse{
		OpenID:     s.openid,
		SessionKey: base64.StdEncoding.EncodeToString(s.sessionKey),
		UnionID:    s.unionid,
	})
}

// stableToken emulates POST /cgi-bin/stable_token.
func (e *Emulator) stableToken(w http.ResponseWriter, r *http.Request, now time.Time) {
	if r.Method != http.MethodPost {
		e.writeAPIError(w, codeRequirePOST, "require POST method")
		return
	}
	var req stableTokenRequest
	if err := readJSON(w, r, &req, false); err != nil {
		e.writeAPIError(w, codeDataFormatError, "data format error")
		return
	}
	if e.checkApp(w, req.AppID, req.Secret) {
		return
	}
	if req.GrantType != "client_credential" {
		e.writeAPIError(w, codeInvalidGrantType, "invalid grant_type")
		return
	}
	token, left, err := e.state.stableToken(now, req.AppID, req.ForceRefresh)
	if err != nil {
		e.writeStateError(w, err)
		return
	}
	writeJSON(w, apiContentType, http.StatusOK, stableTokenResponse{
		AccessToken: token,
		ExpiresIn:   ceilSeconds(left),
	})
}

// getUserPhoneNumber emulates POST /wxa/business/getuserphonenumber.
func (e *Emulator) getUserPhoneNumber(w http.ResponseWriter, r *http.Request, now time.Time) {
	if r.Method != http.MethodPost {
		e.writeAPIError(w, codeRequirePOST, "require POST method")
		return
	}
	tokenAppID, ok := e.checkAccessToken(w, r, now)
	if !ok {
		return
	}
	var req phoneNumberRequest
	if err := readJSON(w, r, &req, false); err != nil {
		e.writeAPIError(w, codeDataFormatError, "data format error")
		return
	}
	if req.Code == "" {
		e.writeAPIError(w, codeMissingCode, "missing code")
		return
	}
	pc, err := e.state.redeemPhoneCode(now, req.Code)
	if err != nil {
		e.writeStateError(w, err)
		return
	}
	// The watermark names the app the access token belongs to (which is
	// app_id when that is configured), unless the code forged another.
	wmAppID := pc.watermarkAppID
	if wmAppID == "" {
		wmAppID = tokenAppID
	}
	writeJSON(w, apiContentType, http.StatusOK, phoneNumberResponse{
		Errcode: 0,
		Errmsg:  "ok",
		PhoneInfo: phoneInfo{
			PhoneNumber:     pc.phoneNumber,
			PurePhoneNumber: pc.purePhone,
			CountryCode:     pc.countryCode,
			Watermark:       watermark{AppID: wmAppID, Timestamp: now.Unix()},
		},
	})
}

// checkSession emulates GET /wxa/checksession.
func (e *Emulator) checkSession(w http.ResponseWriter, r *http.Request, now time.Time) {
	if r.Method != http.MethodGet {
		e.writeAPIError(w, codeRequireGET, "require GET method")
		return
	}
	if _, ok := e.checkAccessToken(w, r, now); !ok {
		return
	}
	q := r.URL.Query()
	if q.Get("sig_method") != "hmac_sha256" {
		e.writeAPIError(w, codeInvalidArgs, "invalid args")
		return
	}
	openid := q.Get("openid")
	if openid == "" {
		e.writeAPIError(w, codeInvalidOpenID, "invalid openid")
		return
	}
	key, _, err := e.state.latestSession(openid)
	if err != nil || !validCheckSessionSignature(key, q.Get("signature")) {
		e.writeAPIError(w, codeInvalidSignature, "invalid signature")
		return
	}
	writeJSON(w, apiContentType, http.StatusOK, apiError{Errcode: 0, Errmsg: "ok"})
}

// checkApp checks an appid and secret like WeChat. It answers the request
// and reports true when they are refused.
func (e *Emulator) checkApp(w http.ResponseWriter, appid, secret string) bool {
	switch {
	case appid == "":
		e.writeAPIError(w, codeMissingAppID, "appid missing")
	case e.appID != "" && appid != e.appID:
		e.writeAPIError(w, codeInvalidAppID, "invalid appid")
	case secret == "":
		e.writeAPIError(w, codeMissingAppSecret, "appsecret missing")
	case e.appSecret != "" && subtle.ConstantTimeCompare([]byte(secret), []byte(e.appSecret)) != 1:
		e.writeAPIError(w, codeInvalidAppSecret, "invalid appsecret")
	default:
		return false
	}
	return true
}

// checkAccessToken checks the access_token query parameter. It returns the
// appid the token was issued for, or answers the request and returns false.
func (e *Emulator) checkAccessToken(w http.ResponseWriter, r *http.Request, now time.Time) (string, bool) {
	token := r.URL.Query().Get("access_token")
	if token == "" {
		e.writeAPIError(w, codeMissingAccessToken, "access_token missing")
		return "", false
	}
	appid, err := e.state.checkToken(now, token)
	if err != nil {
		e.writeStateError(w, err)
		return "", false
	}
	return appid, true
}

// writeStateError answers with the errcode that stands for a state error.
func (e *Emulator) writeStateError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, errCodeInvalid):
		e.writeAPIError(w, codeInvalidCode, "invalid code")
	case errors.Is(err, errCodeUsed):
		e.writeAPIError(w, codeCodeUsed, "code been used")
	case errors.Is(err, errTokenInvalid):
		e.writeAPIError(w, codeInvalidCredential, msgTokenInvalid)
	case errors.Is(err, errTokenExpired):
		e.writeAPIError(w, codeTokenExpired, "access_token expired")
	default:
		e.writeAPIError(w, codeSystemError, "system error")
	}
}

// writeAPIError answers HTTP 200 with WeChat's error body; the errmsg gets a
// request id appended, as WeChat does.
func (e *Emulator) writeAPIError(w http.ResponseWriter, errcode int, msg string) {
	e.writeAPIErrorStatus(w, http.StatusOK, errcode, msg)
}

// writeAPIErrorStatus is writeAPIError with an HTTP status.
func (e *Emulator) writeAPIErrorStatus(w http.ResponseWriter, status, errcode int, msg string) {
	writeJSON(w, apiContentType, status, apiError{Errcode: errcode, Errmsg: msg + ", rid: " + e.rid()})
}

// rid returns a request id shaped like WeChat's: the hex Unix time, then two
// random hex words.
func (e *Emulator) rid() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go ≥ 1.24)
	return fmt.Sprintf("%08x-%08x-%08x", uint32(e.now().Unix()),
		binary.BigEndian.Uint32(b[:4]), binary.BigEndian.Uint32(b[4:]))
}

// writeJSON answers with v as JSON.
func writeJSON(w http.ResponseWriter, contentType string, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		// Only the emulator's own plain structs are written; this cannot
		// happen, but never answer half a body.
		http.Error(w, "encoding response", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", contentType)
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}

// ceilSeconds is d in whole seconds, rounded up.
func ceilSeconds(d time.Duration) int64 {
	return int64((d + time.Second - 1) / time.Second)
}
