package handler

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

// cbcEncrypt encrypts pt with AES-128-CBC and PKCS#7 padding under key and
// a fixed iv, so a test's ciphertext, and what an altered copy decrypts
// to, are the same on every run.
func cbcEncrypt(t *testing.T, key, iv, pt []byte) []byte {
	t.Helper()
	block, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	pad := aes.BlockSize - len(pt)%aes.BlockSize
	buf := append(bytes.Clone(pt), bytes.Repeat([]byte{byte(pad)}, pad)...)
	cipher.NewCBCEncrypter(block, iv).CryptBlocks(buf, buf)
	return buf
}

// TestDecryptFlippedByte sends open data with one byte of the ciphertext's
// middle changed, in each of the 255 possible ways: every answer is 400
// invalid_request and valid UTF-8, never 200 with garbled data.
func TestDecryptFlippedByte(t *testing.T) {
	hs := newHarness(t)
	access, _ := hs.login("o1") // session_key "0123456789abcdef"
	key := []byte("0123456789abcdef")
	iv := bytes.Repeat([]byte{3}, 16)
	ivB64 := base64.StdEncoding.EncodeToString(iv)
	pt := `{"nickName":"` + strings.Repeat("n", 200) + `","watermark":{"appid":"` + testApp + `","timestamp":1}}`
	ct := cbcEncrypt(t, key, iv, []byte(pt))
	body := func(ct []byte) string {
		b, _ := json.Marshal(map[string]string{"encrypted_data": base64.StdEncoding.EncodeToString(ct), "iv": ivB64})
		return string(b)
	}
	r := hs.call("POST", "/wx/decrypt", body(ct), "token", access)
	want(t, r, 200, "")

	mid := len(ct) / 2
	for v := 1; v < 256; v++ {
		bad := bytes.Clone(ct)
		bad[mid] ^= byte(v)
		r := hs.call("POST", "/wx/decrypt", body(bad), "token", access)
		if !utf8.ValidString(r.raw) {
			t.Fatalf("xor %#x: answer is not valid UTF-8: %q", v, r.raw)
		}
		if r.status != 400 || r.body["error"] != CodeInvalidRequest {
			t.Fatalf("xor %#x: want 400 invalid_request, got %d %s", v, r.status, r.raw)
		}
	}
}
