package platform

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"
)

// Alipay's gateway call for the login code, and the names in its answer.
const (
	alipayMethod       = "alipay.system.oauth.token"
	alipayResponseNode = "alipay_system_oauth_token_response"
	alipayErrorNode    = "error_response"
)

// Alipay's codes this package treats specially: the gateway's public codes
// 10000 (success), 20000 (service unavailable: busy) and 40005 (call limit
// exceeded), and the sub_code of a bad, used or expired auth code.
const (
	alipaySuccess       = "10000"
	alipayBusy          = "20000"
	alipayRateLimited   = "40005"
	alipayCodeInvalid   = "isv.code-invalid"
	alipayTimestampForm = "2006-01-02 15:04:05"
)

// alipayZone is the zone of the gateway's timestamp parameter (Beijing time).
var alipayZone = time.FixedZone("CST", 8*60*60)

// alipayExchanger is Alipay's exchange: alipay.system.oauth.token through
// the RSA2-signed gateway. Every answer must carry a signature that
// verifies with Alipay's public key over the raw JSON text of its response
// object; one that does not is refused, whatever it says.
type alipayExchanger struct {
	c    *caller
	priv *rsa.PrivateKey
	pub  *rsa.PublicKey
}

func newAlipay(c *caller, priv *rsa.PrivateKey, pub *rsa.PublicKey) (Exchanger, error) {
	if priv == nil {
		return nil, errors.New("creating alipay code exchange: the app's private key is required")
	}
	if pub == nil {
		return nil, errors.New("creating alipay code exchange: Alipay's public key is required")
	}
	if priv.N.BitLen() < 2048 || pub.N.BitLen() < 2048 {
		return nil, errors.New("creating alipay code exchange: RSA2 keys must be at least 2048 bits")
	}
	return &alipayExchanger{c: c, priv: priv, pub: pub}, nil
}

func (x *alipayExchanger) Name() string { return Alipay }

// alipayResult is the response object of a success (or of a failure that
// Alipay reports inside it with a code other than 10000).
type alipayResult struct {
	Code    string `json:"code"`
	Msg     string `json:"msg"`
	SubCode string `json:"sub_code"`
	SubMsg  string `json:"sub_msg"`
	UserID  string `json:"user_id"`
	OpenID  string `json:"open_id"`
	UnionID string `json:"union_id"`
	// access_token, refresh_token and their lifetimes are not kept: the
	// module needs the identity only.
}

// Exchange calls the gateway's alipay.system.oauth.token with the authCode
// from my.getAuthCode; extra is ignored.
func (x *alipayExchanger) Exchange(ctx context.Context, code string, _ Extra) (*Session, error) {
	const api = "oauth_token"
	if err := x.c.checkCode(api, code); err != nil {
		return nil, err
	}
	params := url.Values{
		"app_id":     {x.c.appID},
		"method":     {alipayMethod},
		"format":     {"JSON"},
		"charset":    {"utf-8"},
		"sign_type":  {"RSA2"},
		"timestamp":  {x.c.now().In(alipayZone).Format(alipayTimestampForm)},
		"version":    {"1.0"},
		"grant_type": {"authorization_code"},
		"code":       {code},
	}
	sig, err := AlipaySign(x.priv, AlipaySignContent(params))
	if err != nil {
		return nil, x.c.errorf(api, ErrBadResponse, "signing the request failed", nil)
	}
	params.Set("sign", sig)
	req := &request{api: api, method: http.MethodPost, path: "/gateway.do", form: params, secrets: []string{code}}
	return x.c.exchange(ctx, req, func(a answer) (*Session, error) {
		return x.parse(api, a, req.secrets)
	})
}

// parse verifies and reads one gateway answer.
func (x *alipayExchanger) parse(api string, a answer, secrets []string) (*Session, error) {
	if a.status != http.StatusOK {
		return nil, x.c.errorf(api, ErrBadResponse, fmt.Sprintf("unexpected http status %d", a.status), nil)
	}
	node, obj, sign, err := AlipaySplitResponse(a.body, alipayResponseNode)
	if err != nil {
		return nil, x.c.errorf(api, ErrBadResponse, err.Error(), nil)
	}
	if err := AlipayVerify(x.pub, obj, sign); err != nil {
		return nil, &Error{Platform: Alipay, API: api, Kind: ErrBadResponse, Detail: err.Error(), Cause: ErrBadSignature}
	}
	var out alipayResult
	if err := json.Unmarshal(obj, &out); err != nil {
		return nil, x.c.notJSON(api, a.status, err)
	}
	if node == alipayErrorNode || (out.Code != "" && out.Code != alipaySuccess) {
		if out.Code == "" {
			return nil, x.c.errorf(api, ErrBadResponse, "error_response has no code", nil)
		}
		code := out.Code
		if out.SubCode != "" {
			code += "/" + out.SubCode
		}
		msg := out.Msg
		if out.SubMsg != "" {
			msg += ": " + out.SubMsg
		}
		e := x.c.apiError(api, alipayKind(out.Code, out.SubCode), code, msg, secrets)
		e.busy = out.Code == alipayBusy
		return nil, e
	}
	id := out.OpenID
	if id == "" {
		id = out.UserID
	}
	if id == "" {
		return nil, x.c.errorf(api, ErrBadResponse, "answer has neither open_id nor user_id", nil)
	}
	return &Session{OpenID: id, UnionID: out.UnionID}, nil
}

func alipayKind(code, subCode string) error {
	switch {
	case subCode == alipayCodeInvalid:
		return ErrInvalidCode
	case code == alipayBusy:
		return ErrUnavailable
	case code == alipayRateLimited:
		return ErrRateLimited
	}
	return ErrAPI
}

// AlipaySignContent is the text Alipay's RSA2 request signature covers:
// every parameter but sign with a non-empty value, sorted by name, as
// name=value joined by "&", the values as they are (not URL-encoded).
func AlipaySignContent(params url.Values) string {
	keys := make([]string, 0, len(params))
	for k, v := range params {
		if k == "sign" || len(v) == 0 || v[0] == "" {
			continue
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(params.Get(k))
	}
	return b.String()
}

// AlipaySign signs content with SHA256withRSA (PKCS #1 v1.5), Alipay's
// RSA2, and returns the signature in standard base64.
func AlipaySign(key *rsa.PrivateKey, content string) (string, error) {
	sum := sha256.Sum256([]byte(content))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
	if err != nil {
		return "", fmt.Errorf("signing with RSA2: %w", err)
	}
	return base64.StdEncoding.EncodeToString(sig), nil
}

// AlipayVerify checks an RSA2 signature (standard base64) over content.
func AlipayVerify(key *rsa.PublicKey, content []byte, sign string) error {
	if sign == "" {
		return errors.New("answer is not signed")
	}
	sig, err := base64.StdEncoding.DecodeString(sign)
	if err != nil {
		return errors.New("answer's sign is not valid base64")
	}
	sum := sha256.Sum256(content)
	if rsa.VerifyPKCS1v15(key, crypto.SHA256, sum[:], sig) != nil {
		return errors.New("answer's signature does not verify with Alipay's public key")
	}
	return nil
}

// maxTopLevelMembers bounds the members of a gateway answer's top object.
const maxTopLevelMembers = 16

// AlipaySplitResponse reads the top level of a gateway answer, which is
// {"<node>":{…},"sign":"…"} or {"error_response":{…},"sign":"…"}, and
// returns which of the two nodes it holds, that node's raw JSON text exactly
// as it appears in body (the bytes the signature covers: never
// re-encoded), and the sign. It refuses an answer with both nodes, neither,
// a node twice, or a node that is not an object.
func AlipaySplitResponse(body []byte, node string) (name string, obj json.RawMessage, sign string, err error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	tok, err := dec.Token()
	if err != nil {
		return "", nil, "", errors.New("answer is not JSON")
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return "", nil, "", errors.New("answer is not a JSON object")
	}
	seen := make(map[string]bool)
	for dec.More() {
		if len(seen) >= maxTopLevelMembers {
			return "", nil, "", errors.New("answer has too many members")
		}
		tok, err := dec.Token()
		if err != nil {
			return "", nil, "", errors.New("answer is not valid JSON")
		}
		key, _ := tok.(string)
		if seen[key] {
			return "", nil, "", fmt.Errorf("answer has %q twice", key)
		}
		seen[key] = true
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return "", nil, "", errors.New("answer is not valid JSON")
		}
		switch key {
		case node, alipayErrorNode:
			if len(raw) == 0 || raw[0] != '{' {
				return "", nil, "", fmt.Errorf("answer's %s is not an object", key)
			}
			if name != "" {
				return "", nil, "", errors.New("answer has both a response and an error_response")
			}
			name, obj = key, raw
		case "sign":
			if err := json.Unmarshal(raw, &sign); err != nil {
				return "", nil, "", errors.New("answer's sign is not a string")
			}
		}
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return "", nil, "", errors.New("answer is not valid JSON")
	}
	if _, err := dec.Token(); err != io.EOF {
		return "", nil, "", errors.New("answer has data after its JSON object")
	}
	if name == "" {
		return "", nil, "", fmt.Errorf("answer has neither %s nor %s", node, alipayErrorNode)
	}
	return name, obj, sign, nil
}
