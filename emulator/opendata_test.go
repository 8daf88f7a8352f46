package emulator

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha1" //nolint:gosec // WeChat's open-data signature is defined as SHA-1
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"testing"
)

// decryptOpenData is the mini-program backend's side, written independently
// of the emulator: AES-128-CBC, then PKCS#7 unpadding with every check.
func decryptOpenData(t *testing.T, sessionKeyB64, ivB64, dataB64 string) []byte {
	t.Helper()
	key, err := base64.StdEncoding.DecodeString(sessionKeyB64)
	if err != nil || len(key) != 16 {
		t.Fatalf("session key: %v (len %d)", err, len(key))
	}
	iv, err := base64.StdEncoding.DecodeString(ivB64)
	if err != nil || len(iv) != aes.BlockSize {
		t.Fatalf("iv: %v (len %d)", err, len(iv))
	}
	ct, err := base64.StdEncoding.DecodeString(dataB64)
	if err != nil || len(ct) == 0 || len(ct)%aes.BlockSize != 0 {
		t.Fatalf("ciphertext: %v (len %d)", err, len(ct))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	plain := make([]byte, len(ct))
	cipher.NewCBCDecrypter(block, iv).CryptBlocks(plain, ct)
	n := int(plain[len(plain)-1])
	if n < 1 || n > aes.BlockSize {
		t.Fatalf("bad padding length %d", n)
	}
	if !bytes.Equal(plain[len(plain)-n:], bytes.Repeat([]byte{byte(n)}, n)) {
		t.Fatal("bad padding bytes")
	}
	return plain[:len(plain)-n]
}

// encryptCall asks the emulator to encrypt body.
func encryptCall(t *testing.T, e *Emulator, body string) (int, map[string]any) {
	t.Helper()
	return call(t, e, http.MethodPost, pathEncrypt, body)
}

func TestEncryptDecryptsBack(t *testing.T) {
	e, clock := configured(t)
	code, openid := mintCode(t, e, "")
	sessionKey := exchange(t, e, code)["session_key"].(string)

	tests := []struct {
		name       string
		data       string
		appid      string // request override
		wantAppID  string
		wantFields map[string]any
	}{
		{
			name:       "user info",
			data:       `{"nickName":"小明","gender":1,"avatarUrl":"https://example.com/a.png"}`,
			wantAppID:  testAppID,
			wantFields: map[string]any{"nickName": "小明", "gender": float64(1), "avatarUrl": "https://example.com/a.png"},
		},
		{
			name:       "watermark in data is replaced",
			data:       `{"openId":"x","watermark":{"appid":"wxevil","timestamp":1}}`,
			wantAppID:  testAppID,
			wantFields: map[string]any{"openId": "x"},
		},
		{
			name:       "appid override forges a mismatch",
			data:       `{"phoneNumber":"13800138000"}`,
			appid:      "wxother",
			wantAppID:  "wxother",
			wantFields: map[string]any{"phoneNumber": "13800138000"},
		},
		{
			name:       "empty object",
			data:       `{}`,
			wantAppID:  testAppID,
			wantFields: map[string]any{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := map[string]any{"openid": openid, "data": json.RawMessage(tt.data)}
			if tt.appid != "" {
				req["appid"] = tt.appid
			}
			body, _ := json.Marshal(req)
			status, m := encryptCall(t, e, string(body))
			if status != http.StatusOK {
				t.Fatalf("status %d: %v", status, m)
			}
			raw := m["raw_data"].(string)
			plain := decryptOpenData(t, sessionKey, m["iv"].(string), m["encrypted_data"].(string))

			var got map[string]any
			if err := json.Unmarshal(plain, &got); err != nil {
				t.Fatalf("plaintext is not JSON: %q", plain)
			}
			wm, _ := got["watermark"].(map[string]any)
			if wm["appid"] != tt.wantAppID || wm["timestamp"] != float64(clock.Now().Unix()) {
				t.Fatalf("watermark = %v, want appid %s at %d", wm, tt.wantAppID, clock.Now().Unix())
			}
			delete(got, "watermark")
			if len(got) != len(tt.wantFields) {
				t.Fatalf("decrypted fields = %v, want %v", got, tt.wantFields)
			}
			for k, v := range tt.wantFields {
				if got[k] != v {
					t.Fatalf("field %s = %v, want %v", k, got[k], v)
				}
			}

			var rawFields map[string]any
			if err := json.Unmarshal([]byte(raw), &rawFields); err != nil {
				t.Fatalf("raw_data is not JSON: %q", raw)
			}
			if _, ok := rawFields["watermark"]; ok || len(rawFields) != len(tt.wantFields) {
				t.Fatalf("raw_data = %s, want the data without watermark", raw)
			}

			sum := sha1.Sum([]byte(raw + sessionKey)) //nolint:gosec // WeChat's rule
			if m["signature"] != hex.EncodeToString(sum[:]) {
				t.Fatalf("signature = %v, want sha1(raw_data + session_key)", m["signature"])
			}
		})
	}
}

func TestEncryptUsesLatestSessionKeyAndFreshIV(t *testing.T) {
	e, _ := configured(t)
	c1, openid := mintCode(t, e, "")
	exchange(t, e, c1)
	c2, _ := mintCode(t, e, `{"openid":"`+openid+`"}`)
	latest := exchange(t, e, c2)["session_key"].(string)

	body := `{"openid":"` + openid + `","data":{"a":1}}`
	_, m1 := encryptCall(t, e, body)
	_, m2 := encryptCall(t, e, body)
	if m1["iv"] == m2["iv"] {
		t.Fatal("two encryptions reused an IV")
	}
	plain := decryptOpenData(t, latest, m1["iv"].(string), m1["encrypted_data"].(string))
	if !json.Valid(plain) {
		t.Fatalf("not decryptable with the latest session_key: %q", plain)
	}
}

func TestEncryptErrors(t *testing.T) {
	e, _ := configured(t)
	code, openid := mintCode(t, e, "")
	exchange(t, e, code)
	_, noSession := mintCode(t, e, "")

	tests := []struct {
		name, body string
		want       int
	}{
		{"no session", `{"openid":"` + noSession + `","data":{}}`, http.StatusBadRequest},
		{"unknown openid", `{"openid":"oNobody","data":{}}`, http.StatusBadRequest},
		{"missing openid", `{"data":{}}`, http.StatusBadRequest},
		{"missing data", `{"openid":"` + openid + `"}`, http.StatusBadRequest},
		{"null data", `{"openid":"` + openid + `","data":null}`, http.StatusBadRequest},
		{"array data", `{"openid":"` + openid + `","data":[1,2]}`, http.StatusBadRequest},
		{"string data", `{"openid":"` + openid + `","data":"x"}`, http.StatusBadRequest},
		{"bad appid", `{"openid":"` + openid + `","data":{},"appid":"wx\n"}`, http.StatusBadRequest},
		{"unknown field", `{"openid":"` + openid + `","data":{},"key":"x"}`, http.StatusBadRequest},
		{"broken json", `{"openid":`, http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, m := encryptCall(t, e, tt.body)
			if status != tt.want {
				t.Fatalf("status = %d (%v), want %d", status, m, tt.want)
			}
			if s, _ := m["error"].(string); s == "" {
				t.Fatalf("no error member: %v", m)
			}
		})
	}
}

func TestPKCS7Pad(t *testing.T) {
	tests := []struct {
		in      int
		wantLen int
		wantPad byte
	}{
		{0, 16, 16},
		{1, 16, 15},
		{15, 16, 1},
		{16, 32, 16},
		{17, 32, 15},
	}
	for _, tt := range tests {
		in := bytes.Repeat([]byte{'x'}, tt.in)
		out := pkcs7Pad(in, aes.BlockSize)
		if len(out) != tt.wantLen || out[len(out)-1] != tt.wantPad {
			t.Errorf("pad(%d bytes) = %d bytes ending %d, want %d ending %d", tt.in, len(out), out[len(out)-1], tt.wantLen, tt.wantPad)
		}
		if !bytes.Equal(out[:tt.in], in) {
			t.Errorf("pad(%d bytes) changed the data", tt.in)
		}
	}
}

func TestEncryptCBCRejectsBadKey(t *testing.T) {
	for _, n := range []int{0, 15, 24, 32} {
		if _, _, err := encryptCBC(make([]byte, n), []byte("x")); !errors.Is(err, errBadKey) {
			t.Errorf("key of %d bytes: err = %v, want errBadKey", n, err)
		}
	}
}

func TestCheckSessionSignatureKnownAnswer(t *testing.T) {
	// HMAC-SHA256 of the empty message keyed by the session_key's base64
	// string, computed independently with
	// printf '' | openssl dgst -sha256 -mac HMAC -macopt key:AAECAwQFBgcICQoLDA0ODw==
	key := []byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}
	const want = "75c022993d64e3ac224c1c9d6f2b4c6eb53f22f6c7aa6be94428577d11d12fd5"
	if got := checkSessionSignature(key); got != want {
		t.Fatalf("signature = %s, want %s", got, want)
	}
	tests := []struct {
		sig  string
		want bool
	}{
		{want, true},
		{"75C022993D64E3AC224C1C9D6F2B4C6EB53F22F6C7AA6BE94428577D11D12FD5", true},
		{want[:63] + "e", false},
		{want[:62], false},
		{"", false},
		{want + "00", false},
	}
	for _, tt := range tests {
		if got := validCheckSessionSignature(key, tt.sig); got != tt.want {
			t.Errorf("valid(%q) = %v, want %v", tt.sig, got, tt.want)
		}
	}
}
