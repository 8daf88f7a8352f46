package wechat

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

// TestDecryptOpenDataInvalidUTF8 checks that a well-encrypted plaintext
// which is JSON but not valid UTF-8 is refused: encoding/json would accept
// it (reading the bad bytes as U+FFFD), and the bytes would reach the
// answer as they are.
func TestDecryptOpenDataInvalidUTF8(t *testing.T) {
	key := mustB64(t, testSessionKeyB64)
	iv := bytes.Repeat([]byte{7}, 16)
	wm := `"watermark":{"appid":"` + testAppID + `"}`
	for _, tt := range []struct {
		name string
		pt   string
	}{
		{"lone continuation byte", `{"nickName":"a` + "\x80" + `b",` + wm + `}`},
		{"0xff", `{"nickName":"` + "\xff\xfe" + `",` + wm + `}`},
		{"truncated sequence", `{"nickName":"` + "\xe4\xb8" + `",` + wm + `}`},
		{"surrogate encoded in UTF-8", `{"nickName":"` + "\xed\xa0\x80" + `",` + wm + `}`},
		{"overlong slash", `{"nickName":"` + "\xc0\xaf" + `",` + wm + `}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if !json.Valid([]byte(tt.pt)) {
				t.Fatalf("test plaintext must be JSON that encoding/json accepts")
			}
			out, err := DecryptOpenData(key, encryptWithIV(t, key, iv, []byte(tt.pt)), base64.StdEncoding.EncodeToString(iv), testAppID)
			if !errors.Is(err, ErrBadData) || out != nil {
				t.Fatalf("got %q, %v; want ErrBadData", out, err)
			}
		})
	}
	// Valid multi-byte UTF-8 still passes.
	pt := `{"nickName":"安娜 🐼",` + wm + `}`
	out, err := DecryptOpenData(key, encryptWithIV(t, key, iv, []byte(pt)), base64.StdEncoding.EncodeToString(iv), testAppID)
	if err != nil || string(out) != pt {
		t.Fatalf("valid UTF-8: got %q, %v", out, err)
	}
}

// TestDecryptOpenDataFlippedByte flips one byte in the middle of a
// ciphertext, with each of the 255 possible changes. CBC garbles the
// block holding the byte and flips one byte of the next one, while the
// padding at the end still checks. Every variant must be refused, and
// among them must be some that only the UTF-8 check catches (they parse as
// a JSON object with the right watermark), so the test fails if that
// check goes.
func TestDecryptOpenDataFlippedByte(t *testing.T) {
	key := mustB64(t, testSessionKeyB64)
	iv := bytes.Repeat([]byte{9}, 16)
	ivB64 := base64.StdEncoding.EncodeToString(iv)
	pt := `{"nickName":"` + strings.Repeat("a", 200) + `","watermark":{"appid":"` + testAppID + `","timestamp":1764547200}}`
	ct := mustB64(t, encryptWithIV(t, key, iv, []byte(pt)))
	mid := len(ct) / 2
	// The garbled block and the next one must lie inside the nickname, so
	// that only the bytes' values decide whether the JSON still parses.
	if start, end := mid/16*16, mid/16*16+32; start < len(`{"nickName":"`) || end > len(`{"nickName":"`)+200 {
		t.Fatalf("blocks %d..%d are not inside the nickname", start, end)
	}

	onlyUTF8 := 0
	for v := 1; v < 256; v++ {
		bad := bytes.Clone(ct)
		bad[mid] ^= byte(v)
		if passesWithoutUTF8Check(t, key, iv, bad) {
			onlyUTF8++
		}
		out, err := DecryptOpenData(key, base64.StdEncoding.EncodeToString(bad), ivB64, testAppID)
		if err == nil {
			t.Fatalf("xor %#x: altered ciphertext accepted: %q", v, out)
		}
		if !errors.Is(err, ErrBadData) {
			t.Fatalf("xor %#x: err = %v, want ErrBadData", v, err)
		}
	}
	if onlyUTF8 == 0 {
		t.Fatal("no variant parses as JSON: the test no longer exercises the UTF-8 check")
	}
	t.Logf("%d of 255 altered ciphertexts parse as a JSON object with the right watermark; all refused", onlyUTF8)
}

// passesWithoutUTF8Check decrypts ct and reports whether the plaintext
// passes every check of DecryptOpenData except UTF-8 validity: good
// padding, a JSON object, this app's watermark.
func passesWithoutUTF8Check(t *testing.T, key, iv, ct []byte) bool {
	t.Helper()
	block, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	pt := make([]byte, len(ct))
	cipher.NewCBCDecrypter(block, iv).CryptBlocks(pt, ct)
	n, ok := pkcs7Unpad(pt, aes.BlockSize)
	if !ok {
		return false
	}
	var obj struct {
		Watermark struct {
			AppID string `json:"appid"`
		} `json:"watermark"`
	}
	return json.Unmarshal(pt[:n], &obj) == nil && obj.Watermark.AppID == testAppID && !utf8.Valid(pt[:n])
}
