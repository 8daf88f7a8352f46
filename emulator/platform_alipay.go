package emulator

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/wxauth/caddy-wechat-auth/internal/platform"
)

// Alipay gateway codes the emulator answers with (besides the ones a fault
// names).
const (
	alipayCodeBusy        = 20000
	alipayCodeMissing     = 40001
	alipayCodeInvalidArgs = 40002
	alipayCodeLimited     = 40005
)

// alipayTokenResponse is the response object of alipay.system.oauth.token.
type alipayTokenResponse struct {
	UserID       string `json:"user_id"`
	OpenID       string `json:"open_id"`
	AccessToken  string `json:"access_token"`
	ExpiresIn    int64  `json:"expires_in"`
	RefreshToken string `json:"refresh_token"`
	ReExpiresIn  int64  `json:"re_expires_in"`
	AuthStart    string `json:"auth_start"`
}

// alipayErrorResponse is Alipay's error_response object.
type alipayErrorResponse struct {
	Code    string `json:"code"`
	Msg     string `json:"msg"`
	SubCode string `json:"sub_code,omitempty"`
	SubMsg  string `json:"sub_msg,omitempty"`
}

// provisionAlipay loads (or generates) the emulator's signing key and the
// app's public key that verifies requests.
func (e *Emulator) provisionAlipay() error {
	if e.AlipayKeyFile != "" {
		data, err := os.ReadFile(e.AlipayKeyFile)
		if err != nil {
			return fmt.Errorf("alipay_key_file: reading: %w", err)
		}
		if e.alipayKey, err = platform.ParseRSAPrivateKey(data); err != nil {
			return fmt.Errorf("alipay_key_file %s: %w", e.AlipayKeyFile, err)
		}
	} else {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return fmt.Errorf("generating the emulated Alipay key: %w", err)
		}
		e.alipayKey = k
	}
	if e.AlipayAppPublicKeyFile != "" {
		data, err := os.ReadFile(e.AlipayAppPublicKeyFile)
		if err != nil {
			return fmt.Errorf("alipay_app_public_key_file: reading: %w", err)
		}
		if e.alipayAppKey, err = platform.ParseRSAPublicKey(data); err != nil {
			return fmt.Errorf("alipay_app_public_key_file %s: %w", e.AlipayAppPublicKeyFile, err)
		}
	}
	return nil
}

// serveAlipayPublicKey answers GET /emulator/alipay/public_key with the
// public half of the key the emulator signs its answers with (PEM): what
// a developer puts in alipay_public_key_file.
func (e *Emulator) serveAlipayPublicKey(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeHelperError(w, http.StatusMethodNotAllowed, "method not allowed; use GET")
		return
	}
	der, err := x509.MarshalPKIXPublicKey(&e.alipayKey.PublicKey)
	if err != nil {
		writeHelperError(w, http.StatusInternalServerError, "encoding the public key failed")
		return
	}
	w.Header().Set("Content-Type", "application/x-pem-file")
	w.WriteHeader(http.StatusOK)
	_ = pem.Encode(w, &pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// alipayGateway emulates POST /gateway.do for alipay.system.oauth.token:
// the request's RSA2 signature is checked with the app's public key (when
// configured), the auth code redeemed once, and every answer signed with
// the emulator's key over the raw JSON text of its response object.
func (e *Emulator) alipayGateway(w http.ResponseWriter, r *http.Request, now time.Time) {
	r.Body = http.MaxBytesReader(w, r.Body, maxBodyBytes)
	if r.ParseForm() != nil {
		e.writeAlipayError(w, http.StatusOK, strconv.Itoa(alipayCodeInvalidArgs), "Invalid Arguments", "isv.invalid-parameter", "请求参数无法解析")
		return
	}
	p := r.Form
	for _, k := range []string{"app_id", "method", "charset", "sign_type", "sign", "timestamp", "version"} {
		if p.Get(k) == "" {
			e.writeAlipayError(w, http.StatusOK, strconv.Itoa(alipayCodeMissing), "Missing Required Arguments", "isv.missing-"+k, "缺少"+k+"参数")
			return
		}
	}
	switch {
	case e.appID != "" && p.Get("app_id") != e.appID:
		e.writeAlipayError(w, http.StatusOK, "40002", "Invalid Arguments", "isv.invalid-app-id", "无效的AppID参数")
	case p.Get("method") != "alipay.system.oauth.token":
		e.writeAlipayError(w, http.StatusOK, "40002", "Invalid Arguments", "isv.invalid-method", "不存在的方法名")
	case p.Get("sign_type") != "RSA2":
		e.writeAlipayError(w, http.StatusOK, "40002", "Invalid Arguments", "isv.invalid-signature-type", "无效的签名类型")
	case p.Get("version") != "1.0":
		e.writeAlipayError(w, http.StatusOK, "40002", "Invalid Arguments", "isv.invalid-version", "版本号无效")
	case !alipayTimestampOK(p.Get("timestamp"), now):
		e.writeAlipayError(w, http.StatusOK, "40002", "Invalid Arguments", "isv.invalid-timestamp", "非法的时间戳参数")
	case e.alipayAppKey != nil && platform.AlipayVerify(e.alipayAppKey, []byte(platform.AlipaySignContent(p)), p.Get("sign")) != nil:
		e.writeAlipayError(w, http.StatusOK, "40002", "Invalid Arguments", "isv.invalid-signature", "验签出错")
	case p.Get("grant_type") != "authorization_code":
		e.writeAlipayError(w, http.StatusOK, "40002", "Invalid Arguments", "isv.grant-type-invalid", "不支持的grantType")
	case p.Get("code") == "":
		e.writeAlipayError(w, http.StatusOK, "40002", "Invalid Arguments", "isv.code-invalid", "授权码code无效")
	default:
		s, err := e.state.exchangeCodeKey(now, p.Get("code"), p.Get("app_id"), 0)
		if err != nil {
			e.writeAlipayError(w, http.StatusOK, "40002", "Invalid Arguments", "isv.code-invalid", "授权码code无效")
			return
		}
		sum := sha256.Sum256([]byte("alipay-user:" + s.openid))
		uid := "2088" + strconv.FormatUint(uint64(sum[0])<<32|uint64(sum[1])<<24|uint64(sum[2])<<16|uint64(sum[3])<<8|uint64(sum[4]), 10)
		for len(uid) < 16 {
			uid += "0"
		}
		e.writeAlipaySigned(w, http.StatusOK, "alipay_system_oauth_token_response", alipayTokenResponse{
			UserID:       uid[:16],
			OpenID:       s.openid,
			AccessToken:  "authbseB" + hex.EncodeToString(sum[8:24]),
			ExpiresIn:    1296000,
			RefreshToken: "authbseB" + hex.EncodeToString(sum[16:32]),
			ReExpiresIn:  2592000,
			AuthStart:    now.In(time.FixedZone("CST", 8*3600)).Format("2006-01-02 15:04:05"),
		})
	}
}

// alipayTimestampOK accepts the gateway's timestamp format in Beijing
// time, within 15 minutes of now (the gateway refuses stale requests).
func alipayTimestampOK(ts string, now time.Time) bool {
	t, err := time.ParseInLocation("2006-01-02 15:04:05", ts, time.FixedZone("CST", 8*3600))
	if err != nil {
		return false
	}
	d := now.Sub(t)
	return d < 15*time.Minute && d > -15*time.Minute
}

func (e *Emulator) writeAlipayError(w http.ResponseWriter, status int, code, msg, subCode, subMsg string) {
	e.writeAlipaySigned(w, status, "error_response", alipayErrorResponse{Code: code, Msg: msg, SubCode: subCode, SubMsg: subMsg})
}

// writeAlipaySigned writes {"<node>":<obj>,"sign":"<sign of obj's text>"}.
func (e *Emulator) writeAlipaySigned(w http.ResponseWriter, status int, node string, obj any) {
	raw, err := json.Marshal(obj)
	if err != nil {
		http.Error(w, "encoding response", http.StatusInternalServerError)
		return
	}
	sig, err := platform.AlipaySign(e.alipayKey, string(raw))
	if err != nil {
		http.Error(w, "signing response", http.StatusInternalServerError)
		return
	}
	body := `{"` + node + `":` + string(raw) + `,"sign":"` + sig + `"}`
	w.Header().Set("Content-Type", "text/html;charset=utf-8") // as Alipay's gateway labels JSON
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body + "\n"))
}
