package emulator

import (
	"encoding/json"
	"errors"
	"net/http"
	"time"
)

// Paths of the emulator-only helper endpoints.
const (
	pathCode      = "/emulator/code"
	pathPhoneCode = "/emulator/phone_code"
	pathEncrypt   = "/emulator/encrypt"
	pathFault     = "/emulator/fault"
)

// helperPaths is the set of helper paths. Read-only.
var helperPaths = map[string]bool{
	pathCode:      true,
	pathPhoneCode: true,
	pathEncrypt:   true,
	pathFault:     true,
}

// helperContentType is the Content-Type of helper answers.
const helperContentType = "application/json"

// defaultCountryCode is the country code of a phone number when none is given.
const defaultCountryCode = "86"

// Limits on identifiers accepted by the helpers.
const (
	maxIDLength    = 128
	minPhoneDigits = 4
	maxPhoneDigits = 20
	maxCountryCode = 4
)

// helperError is the error body of a helper endpoint.
type helperError struct {
	Error string `json:"error"`
}

// codeRequest is the body of POST /emulator/code.
type codeRequest struct {
	OpenID  string `json:"openid"`
	UnionID string `json:"unionid"`
}

// codeResponse is the answer of POST /emulator/code.
type codeResponse struct {
	Code   string `json:"code"`
	OpenID string `json:"openid"`
	// Platform is the platform whose code this is (wechat, qq, douyin,
	// alipay, baidu), so a caller playing another platform's mini-program
	// can tell it is asking the wrong emulator. Empty for the web OAuth
	// pages' codes.
	Platform string `json:"platform,omitempty"`
}

// phoneCodeRequest is the body of POST /emulator/phone_code.
type phoneCodeRequest struct {
	PhoneNumber    string `json:"phone_number"`
	CountryCode    string `json:"country_code"`
	WatermarkAppID string `json:"watermark_appid"`
}

// phoneCodeResponse is the answer of POST /emulator/phone_code.
type phoneCodeResponse struct {
	Code string `json:"code"`
}

// encryptRequest is the body of POST /emulator/encrypt.
type encryptRequest struct {
	OpenID string          `json:"openid"`
	Data   json.RawMessage `json:"data"`
	AppID  string          `json:"appid"`
}

// faultResponse is the answer of POST and DELETE /emulator/fault.
type faultResponse struct {
	Queued  int `json:"queued"`
	Cleared int `json:"cleared,omitempty"`
}

// serveHelper answers one emulator-only helper call.
func (e *Emulator) serveHelper(w http.ResponseWriter, r *http.Request, path string) error {
	if path == pathFault {
		e.fault(w, r)
		return nil
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeHelperError(w, http.StatusMethodNotAllowed, "method not allowed; use POST")
		return nil
	}
	now := e.now()
	switch path {
	case pathCode:
		e.mintCode(w, r, now)
	case pathPhoneCode:
		e.mintPhoneCode(w, r, now)
	case pathEncrypt:
		e.encrypt(w, r, now)
	}
	return nil
}

// mintCode serves POST /emulator/code.
func (e *Emulator) mintCode(w http.ResponseWriter, r *http.Request, now time.Time) {
	var req codeRequest
	if err := readJSON(w, r, &req, true); err != nil && !errors.Is(err, errEmptyBody) {
		writeBodyError(w, err)
		return
	}
	if req.OpenID != "" && !validID(req.OpenID) {
		writeHelperError(w, http.StatusBadRequest, "openid must be 1 to 128 characters of A-Z a-z 0-9 - _")
		return
	}
	if req.UnionID != "" && !validID(req.UnionID) {
		writeHelperError(w, http.StatusBadRequest, "unionid must be 1 to 128 characters of A-Z a-z 0-9 - _")
		return
	}
	code, openid, err := e.state.mintCode(now, req.OpenID, req.UnionID)
	if err != nil {
		writeHelperError(w, http.StatusServiceUnavailable, "minting code failed; try again")
		return
	}
	writeJSON(w, helperContentType, http.StatusOK, codeResponse{Code: code, OpenID: openid, Platform: e.platformName()})
}

// mintPhoneCode serves POST /emulator/phone_code.
func (e *Emulator) mintPhoneCode(w http.ResponseWriter, r *http.Request, now time.Time) {
	var req phoneCodeRequest
	if err := readJSON(w, r, &req, true); err != nil {
		writeBodyError(w, err)
		return
	}
	if !allDigits(req.PhoneNumber, minPhoneDigits, maxPhoneDigits) {
		writeHelperError(w, http.StatusBadRequest, "phone_number must be 4 to 20 digits")
		return
	}
	cc := req.CountryCode
	if cc == "" {
		cc = defaultCountryCode
	}
	if !allDigits(cc, 1, maxCountryCode) {
		writeHelperError(w, http.StatusBadRequest, "country_code must be 1 to 4 digits")
		return
	}
	if req.WatermarkAppID != "" && !validID(req.WatermarkAppID) {
		writeHelperError(w, http.StatusBadRequest, "watermark_appid must be 1 to 128 characters of A-Z a-z 0-9 - _")
		return
	}
	code, err := e.state.mintPhoneCode(now, req.PhoneNumber, cc, req.WatermarkAppID)
	if err != nil {
		writeHelperError(w, http.StatusServiceUnavailable, "minting phone code failed; try again")
		return
	}
	writeJSON(w, helperContentType, http.StatusOK, phoneCodeResponse{Code: code})
}

// encrypt serves POST /emulator/encrypt.
func (e *Emulator) encrypt(w http.ResponseWriter, r *http.Request, now time.Time) {
	var req encryptRequest
	if err := readJSON(w, r, &req, true); err != nil {
		writeBodyError(w, err)
		return
	}
	if req.OpenID == "" {
		writeHelperError(w, http.StatusBadRequest, "openid is required")
		return
	}
	if req.AppID != "" && !validID(req.AppID) {
		writeHelperError(w, http.StatusBadRequest, "appid must be 1 to 128 characters of A-Z a-z 0-9 - _")
		return
	}
	var data map[string]json.RawMessage
	if len(req.Data) == 0 || json.Unmarshal(req.Data, &data) != nil || data == nil {
		writeHelperError(w, http.StatusBadRequest, "data must be a JSON object")
		return
	}
	key, sessAppID, err := e.state.latestSession(req.OpenID)
	if err != nil {
		writeHelperError(w, http.StatusBadRequest, "no session for this openid; exchange a code at /sns/jscode2session first")
		return
	}
	appid := req.AppID
	if appid == "" {
		appid = sessAppID
	}
	if appid == "" {
		appid = e.appID
	}
	sealed, err := e.sealPlatformOpenData(key, data, appid, now)
	if err != nil {
		writeHelperError(w, http.StatusInternalServerError, "encrypting open data failed")
		return
	}
	writeJSON(w, helperContentType, http.StatusOK, sealed)
}

// fault serves POST and DELETE /emulator/fault.
func (e *Emulator) fault(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodPost:
		var req faultRequest
		if err := readJSON(w, r, &req, true); err != nil {
			writeBodyError(w, err)
			return
		}
		f, err := req.toFault()
		if err != nil {
			writeHelperError(w, http.StatusBadRequest, err.Error())
			return
		}
		n, err := e.faults.add(f)
		if err != nil {
			writeHelperError(w, http.StatusTooManyRequests, err.Error())
			return
		}
		writeJSON(w, helperContentType, http.StatusOK, faultResponse{Queued: n})
	case http.MethodDelete:
		n := e.faults.clear()
		writeJSON(w, helperContentType, http.StatusOK, faultResponse{Queued: 0, Cleared: n})
	default:
		w.Header().Set("Allow", "POST, DELETE")
		writeHelperError(w, http.StatusMethodNotAllowed, "method not allowed; use POST or DELETE")
	}
}

// writeBodyError answers a helper call whose body could not be read.
func writeBodyError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, errBodyTooLarge):
		writeHelperError(w, http.StatusRequestEntityTooLarge, "request body over 64 KiB")
	case errors.Is(err, errEmptyBody):
		writeHelperError(w, http.StatusBadRequest, "request body is empty; send a JSON object")
	default:
		writeHelperError(w, http.StatusBadRequest, "request body is not the expected JSON object")
	}
}

// writeHelperError answers a helper call with {"error": msg}.
func writeHelperError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, helperContentType, status, helperError{Error: msg})
}

// validID reports whether s looks like a WeChat identifier: 1 to 128
// characters of A-Z a-z 0-9 - _.
func validID(s string) bool {
	if len(s) == 0 || len(s) > maxIDLength {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// allDigits reports whether s is min to max ASCII digits.
func allDigits(s string, minLen, maxLen int) bool {
	if len(s) < minLen || len(s) > maxLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
