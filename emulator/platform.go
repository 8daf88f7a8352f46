package emulator

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/wxauth/caddy-wechat-auth/internal/platform"
)

// Paths of the other platforms' code exchanges, as on their servers. QQ's
// is WeChat's /sns/jscode2session.
const (
	pathDouyinCode2Session = "/api/apps/v2/jscode2session"
	pathAlipayGateway      = "/gateway.do"
	pathBaiduCode2Session  = "/oauth/jscode2sessionkey"
	pathAlipayPublicKey    = "/emulator/alipay/public_key"
)

// platformPaths maps each platform's exchange path to its platform. Read-only.
var platformPaths = map[string]string{
	pathDouyinCode2Session: platform.Douyin,
	pathAlipayGateway:      platform.Alipay,
	pathBaiduCode2Session:  platform.Baidu,
}

// Session key sizes of the platforms: Baidu's is an AES-192 key.
const baiduSessionKeyBytes = 24

// platformName is the emulator's platform, wechat when unset.
func (e *Emulator) platformName() string {
	if e.Platform == "" {
		return platform.WeChat
	}
	return e.Platform
}

// servePlatform answers the configured platform's exchange path (after
// any queued fault, in that platform's shape) and Alipay's public-key
// helper. It reports false for a path it does not serve.
func (e *Emulator) servePlatform(w http.ResponseWriter, r *http.Request, path string) (bool, error) {
	if path == pathAlipayPublicKey && e.platformName() == platform.Alipay {
		e.serveAlipayPublicKey(w, r)
		return true, nil
	}
	if platformPaths[path] == "" || platformPaths[path] != e.platformName() {
		return false, nil
	}
	if handled, err := e.applyPlatformFault(w, r, path); handled {
		return true, err
	}
	now := e.now()
	switch path {
	case pathDouyinCode2Session:
		e.douyinCode2Session(w, r, now)
	case pathAlipayGateway:
		e.alipayGateway(w, r, now)
	case pathBaiduCode2Session:
		e.baiduCode2Session(w, r, now)
	}
	return true, nil
}

// applyPlatformFault acts out the next fault queued for path in the
// platform's shape. A fault's errcode reads as on WeChat where the
// platform has a counterpart (-1 busy, 40029 bad code, 45011 rate limit)
// and is otherwise the platform's own code (Douyin err_no, Alipay code).
func (e *Emulator) applyPlatformFault(w http.ResponseWriter, r *http.Request, path string) (bool, error) {
	f, ok := e.faults.take(path)
	if !ok {
		return false, nil
	}
	if f.delay > 0 {
		if err := e.sleep(r.Context(), f.delay); err != nil {
			return true, caddyhttp.Error(statusClientClosedRequest, fmt.Errorf("delaying emulated fault: %w", err))
		}
	}
	status := cmpStatus(f.status, http.StatusOK)
	switch {
	case f.garbage:
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(garbageBody))
		return true, nil
	case f.errcode == 0 && f.status != 0:
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(http.StatusText(status) + "\n"))
		return true, nil
	case f.errcode == 0:
		return false, nil // a delay only: then the normal answer
	}
	switch platformPaths[path] {
	case platform.Douyin:
		code := f.errcode
		if code == codeInvalidCode {
			code = douyinBadCode
		}
		writeDouyinError(w, status, code, "emulated fault")
	case platform.Alipay:
		code, sub := strconv.Itoa(f.errcode), "isv.emulated-fault"
		switch f.errcode {
		case codeSystemError, alipayCodeBusy:
			code, sub = "20000", "isp.unknow-error"
		case codeInvalidCode, alipayCodeInvalidArgs:
			code, sub = "40002", "isv.code-invalid"
		case 45011, alipayCodeLimited:
			code, sub = "40005", "isv.app-call-limited"
		}
		e.writeAlipayError(w, status, code, "emulated fault", sub, "emulated fault")
	case platform.Baidu:
		switch f.errcode {
		case codeInvalidCode:
			writeJSON(w, apiContentType, cmpStatus(f.status, http.StatusBadRequest), baiduOAuthError{Error: "invalid_grant", Description: "Invalid authorization code"})
		case codeSystemError:
			writeJSON(w, apiContentType, status, baiduAPIError{Code: 2, Msg: "Service temporarily unavailable"})
		case 45011:
			writeJSON(w, apiContentType, status, baiduAPIError{Code: 18, Msg: "Open api qps request limit reached"})
		default:
			writeJSON(w, apiContentType, status, baiduAPIError{Code: f.errcode, Msg: "emulated fault"})
		}
	}
	return true, nil
}

func cmpStatus(given, def int) int {
	if given != 0 {
		return given
	}
	return def
}

// Douyin's err_no values the emulator answers with.
const (
	douyinBadParams = 40014
	douyinBadAppID  = 40015
	douyinBadSecret = 40017
	douyinBadCode   = 40018
)

type douyinRequest struct {
	AppID         string `json:"appid"`
	Secret        string `json:"secret"`
	Code          string `json:"code"`
	AnonymousCode string `json:"anonymous_code"`
}

type douyinData struct {
	SessionKey      string `json:"session_key"`
	OpenID          string `json:"openid"`
	AnonymousOpenID string `json:"anonymous_openid"`
	UnionID         string `json:"unionid"`
}

type douyinResponse struct {
	ErrNo   int        `json:"err_no"`
	ErrTips string     `json:"err_tips"`
	Data    douyinData `json:"data"`
}

func writeDouyinError(w http.ResponseWriter, status, errNo int, tips string) {
	writeJSON(w, apiContentType, status, douyinResponse{ErrNo: errNo, ErrTips: tips})
}

// douyinCode2Session emulates POST /api/apps/v2/jscode2session: JSON in,
// err_no/err_tips/data out. An anonymous_code alone yields only an
// anonymous_openid (the same for the same anonymous_code's device).
func (e *Emulator) douyinCode2Session(w http.ResponseWriter, r *http.Request, now time.Time) {
	var req douyinRequest
	if r.Method != http.MethodPost || readJSON(w, r, &req, false) != nil {
		writeDouyinError(w, http.StatusOK, douyinBadParams, "bad params")
		return
	}
	switch {
	case req.AppID == "" || (e.appID != "" && req.AppID != e.appID):
		writeDouyinError(w, http.StatusOK, douyinBadAppID, "bad appid")
		return
	case req.Secret == "" || (e.appSecret != "" && subtle.ConstantTimeCompare([]byte(req.Secret), []byte(e.appSecret)) != 1):
		writeDouyinError(w, http.StatusOK, douyinBadSecret, "bad secret")
		return
	case req.Code == "" && req.AnonymousCode == "":
		writeDouyinError(w, http.StatusOK, douyinBadParams, "bad params")
		return
	}
	var out douyinResponse
	out.ErrTips = "success"
	if req.AnonymousCode != "" {
		sum := sha256.Sum256([]byte("anonymous:" + req.AnonymousCode))
		out.Data.AnonymousOpenID = "anon" + hex.EncodeToString(sum[:12])
	}
	if req.Code != "" {
		s, err := e.state.exchangeCodeKey(now, req.Code, req.AppID, sessionKeyBytes)
		if err != nil {
			writeDouyinError(w, http.StatusOK, douyinBadCode, "bad code")
			return
		}
		out.Data.OpenID, out.Data.UnionID = s.openid, s.unionid
		out.Data.SessionKey = base64.StdEncoding.EncodeToString(s.sessionKey)
	}
	writeJSON(w, apiContentType, http.StatusOK, out)
}

type baiduOAuthError struct {
	Error       string `json:"error"`
	Description string `json:"error_description"`
}

type baiduAPIError struct {
	Code int    `json:"error_code"`
	Msg  string `json:"error_msg"`
}

type baiduResponse struct {
	OpenID     string `json:"openid"`
	SessionKey string `json:"session_key"`
}

// baiduCode2Session emulates POST /oauth/jscode2sessionkey: a form with
// code, client_id (the AppKey) and sk (the AppSecret), answered with
// {openid, session_key} (a 24-byte key) or an OAuth 2.0 error, which
// echoes the code as Baidu's does.
func (e *Emulator) baiduCode2Session(w http.ResponseWriter, r *http.Request, now time.Time) {
	r.Body = http.MaxBytesReader(w, r.Body, maxBodyBytes)
	if r.Method != http.MethodPost || r.ParseForm() != nil {
		writeJSON(w, apiContentType, http.StatusBadRequest, baiduOAuthError{Error: "invalid_request", Description: "request must be a form POST"})
		return
	}
	code, id, sk := r.PostForm.Get("code"), r.PostForm.Get("client_id"), r.PostForm.Get("sk")
	switch {
	case code == "" || id == "" || sk == "":
		writeJSON(w, apiContentType, http.StatusBadRequest, baiduOAuthError{Error: "invalid_request", Description: "missing required parameter"})
		return
	case (e.appID != "" && id != e.appID) || (e.appSecret != "" && subtle.ConstantTimeCompare([]byte(sk), []byte(e.appSecret)) != 1):
		writeJSON(w, apiContentType, http.StatusUnauthorized, baiduOAuthError{Error: "invalid_client", Description: "unknown client id"})
		return
	}
	s, err := e.state.exchangeCodeKey(now, code, id, baiduSessionKeyBytes)
	if err != nil {
		writeJSON(w, apiContentType, http.StatusBadRequest, baiduOAuthError{Error: "invalid_grant", Description: "Invalid authorization code: " + code})
		return
	}
	writeJSON(w, apiContentType, http.StatusOK, baiduResponse{OpenID: s.openid, SessionKey: base64.StdEncoding.EncodeToString(s.sessionKey)})
}

// sealPlatformOpenData encrypts data as the emulator's platform hands out
// open data: Baidu's AES-192 framing with the app_key; WeChat's scheme
// (with a watermark) everywhere else.
func (e *Emulator) sealPlatformOpenData(key []byte, data map[string]json.RawMessage, appid string, now time.Time) (openData, error) {
	if e.platformName() != platform.Baidu {
		return sealOpenData(key, data, appid, now)
	}
	raw, err := json.Marshal(data)
	if err != nil {
		return openData{}, fmt.Errorf("encoding open data: %w", err)
	}
	enc, iv, err := platform.EncryptBaiduOpenData(key, raw, appid)
	if err != nil {
		return openData{}, err
	}
	return openData{
		EncryptedData: enc,
		IV:            iv,
		RawData:       string(raw),
		Signature:     openDataSignature(string(raw), base64.StdEncoding.EncodeToString(key)),
	}, nil
}

// validatePlatform checks the platform and that the Alipay key files are
// given on Alipay only.
func (e *Emulator) validatePlatform() error {
	if e.Platform != "" && !platform.Valid(e.Platform) {
		return fmt.Errorf("platform: want one of wechat, qq, douyin, alipay, baidu, got %q", e.Platform)
	}
	if e.platformName() != platform.Alipay && (e.AlipayAppPublicKeyFile != "" || e.AlipayKeyFile != "") {
		return fmt.Errorf("alipay_app_public_key_file and alipay_key_file are for platform alipay only, not %s", e.platformName())
	}
	return nil
}
