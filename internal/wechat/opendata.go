package wechat

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"unicode/utf8"
)

// maxOpenDataBytes bounds the base64 encryptedData DecryptOpenData accepts.
const maxOpenDataBytes = 1 << 20

// DecryptOpenData decrypts open data (the encryptedData and iv that
// mini-program APIs such as wx.getUserInfo return, both standard base64)
// with sessionKey, the decoded 16-byte session key of the user's session,
// and returns the plaintext JSON object.
//
// The cipher is AES-128-CBC with strict PKCS#7 padding. CBC carries no
// integrity check: a ciphertext altered anywhere but its last blocks still
// has good padding and decrypts to garbage. So the plaintext is accepted
// only when it is valid UTF-8 and a JSON object whose watermark.appid
// equals appID; the returned JSON is therefore always valid UTF-8. A
// missing or foreign watermark matches ErrWatermark. Every other failure
// (bad base64, a key or iv that is not 16 bytes, a ciphertext that is not a
// positive multiple of 16 bytes, bad padding, a plaintext that is not valid
// UTF-8 or not a JSON object) matches ErrBadData. It never panics, whatever
// the input.
func DecryptOpenData(sessionKey []byte, encryptedData, iv, appID string) (json.RawMessage, error) {
	if len(sessionKey) != aes.BlockSize {
		return nil, fmt.Errorf("decrypting open data: session key is %d bytes, want 16: %w", len(sessionKey), ErrBadData)
	}
	pt, err := DecryptCBC(sessionKey, encryptedData, iv, aes.BlockSize)
	if err != nil {
		return nil, err
	}

	// encoding/json would quietly turn invalid UTF-8 into U+FFFD while
	// parsing, yet the plaintext is handed on as it is: refuse it here.
	if !utf8.Valid(pt) {
		return nil, fmt.Errorf("decrypting open data: plaintext is not valid UTF-8 (altered ciphertext, or wrong key?): %w", ErrBadData)
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(pt, &obj); err != nil || obj == nil {
		return nil, fmt.Errorf("decrypting open data: plaintext is not a JSON object: %w", ErrBadData)
	}
	var wm struct {
		AppID string `json:"appid"`
	}
	raw, found := obj["watermark"]
	if !found || json.Unmarshal(raw, &wm) != nil || wm.AppID == "" || wm.AppID != appID {
		return nil, fmt.Errorf("decrypting open data: watermark appid is not this app's: %w", ErrWatermark)
	}
	return json.RawMessage(bytes.TrimSpace(pt)), nil
}

// DecryptCBC decodes encryptedData and iv (standard base64; the iv 16
// bytes), decrypts the data with AES-CBC under key (16, 24 or 32 bytes)
// and removes strict PKCS #7 padding to a multiple of padBlock bytes (16
// for WeChat, QQ and Douyin; Baidu pads to 32). It is the part of open
// data every platform shares: what the plaintext must hold is the
// caller's to check. Every failure matches ErrBadData; it never panics,
// whatever the input.
func DecryptCBC(key []byte, encryptedData, iv string, padBlock int) ([]byte, error) {
	if len(encryptedData) > maxOpenDataBytes {
		return nil, fmt.Errorf("decrypting open data: encrypted data longer than %d bytes: %w", maxOpenDataBytes, ErrBadData)
	}
	ivb, err := base64.StdEncoding.DecodeString(iv)
	if err != nil {
		return nil, fmt.Errorf("decrypting open data: iv is not valid base64: %w", ErrBadData)
	}
	if len(ivb) != aes.BlockSize {
		return nil, fmt.Errorf("decrypting open data: iv is %d bytes, want 16: %w", len(ivb), ErrBadData)
	}
	ct, err := base64.StdEncoding.DecodeString(encryptedData)
	if err != nil {
		return nil, fmt.Errorf("decrypting open data: encrypted data is not valid base64: %w", ErrBadData)
	}
	if len(ct) == 0 || len(ct)%aes.BlockSize != 0 {
		return nil, fmt.Errorf("decrypting open data: encrypted data is %d bytes, not a positive multiple of 16: %w", len(ct), ErrBadData)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("decrypting open data: %w", ErrBadData)
	}
	pt := make([]byte, len(ct))
	cipher.NewCBCDecrypter(block, ivb).CryptBlocks(pt, ct)
	n, ok := pkcs7Unpad(pt, padBlock)
	if !ok {
		return nil, fmt.Errorf("decrypting open data: bad padding (wrong session key or iv?): %w", ErrBadData)
	}
	return pt[:n], nil
}

// EncryptOpenData is WeChat's side of DecryptOpenData, for emulators and
// tests: it encrypts plaintext (normally a JSON object carrying a
// "watermark":{"appid","timestamp"} member) with AES-128-CBC under the
// 16-byte sessionKey and a fresh random iv, with PKCS#7 padding, and
// returns the ciphertext and iv as standard base64.
func EncryptOpenData(sessionKey, plaintext []byte) (encryptedData, iv string, err error) {
	if len(sessionKey) != aes.BlockSize {
		return "", "", fmt.Errorf("encrypting open data: session key is %d bytes, want 16: %w", len(sessionKey), ErrBadData)
	}
	block, err := aes.NewCipher(sessionKey)
	if err != nil {
		return "", "", fmt.Errorf("encrypting open data: %w", ErrBadData)
	}
	ivb := make([]byte, aes.BlockSize)
	if _, err := rand.Read(ivb); err != nil {
		return "", "", fmt.Errorf("encrypting open data: generating iv: %w", err)
	}
	buf := pkcs7Pad(plaintext)
	cipher.NewCBCEncrypter(block, ivb).CryptBlocks(buf, buf)
	return base64.StdEncoding.EncodeToString(buf), base64.StdEncoding.EncodeToString(ivb), nil
}

// VerifyRawSignature checks the signature that accompanies open data:
// WeChat computes it as lower-case hex of SHA-1 over rawData followed by
// the session key as WeChat hands it out (the standard base64 string), so
// the raw sessionKey is encoded back to that string here (QQ, Douyin and
// Baidu sign theirs the same way; Baidu's key is 24 bytes). The comparison
// is in constant time; a malformed signature or an empty key is simply
// false.
func VerifyRawSignature(rawData string, sessionKey []byte, signature string) bool {
	if len(sessionKey) == 0 {
		return false
	}
	got, err := hex.DecodeString(signature)
	if err != nil || len(got) != sha1.Size {
		return false
	}
	h := sha1.New()
	h.Write([]byte(rawData))
	h.Write([]byte(base64.StdEncoding.EncodeToString(sessionKey)))
	return subtle.ConstantTimeCompare(h.Sum(nil), got) == 1
}

// pkcs7Pad returns a copy of b padded to a multiple of the AES block size.
func pkcs7Pad(b []byte) []byte {
	pad := aes.BlockSize - len(b)%aes.BlockSize
	out := make([]byte, len(b)+pad)
	copy(out, b)
	for i := len(b); i < len(out); i++ {
		out[i] = byte(pad)
	}
	return out
}

// pkcs7Unpad checks strict PKCS #7 padding to a multiple of block bytes
// (1 to block bytes of padding) on b (a non-empty multiple of the AES block
// size) and returns the unpadded length. The check of the padding bytes
// runs in time independent of their values.
func pkcs7Unpad(b []byte, block int) (int, bool) {
	if len(b) == 0 || len(b)%aes.BlockSize != 0 {
		return 0, false
	}
	last := b[len(b)-1]
	pad := int(last)
	good := subtle.ConstantTimeLessOrEq(1, pad) & subtle.ConstantTimeLessOrEq(pad, block) & subtle.ConstantTimeLessOrEq(pad, len(b))
	// Look at the last min(block, len(b)) bytes; those inside the padding
	// must equal it.
	n := min(block, len(b))
	tail := b[len(b)-n:]
	for i := range n {
		inPad := subtle.ConstantTimeLessOrEq(n, i+pad) // i >= n-pad
		good &= subtle.ConstantTimeSelect(inPad, subtle.ConstantTimeByteEq(tail[i], last), 1)
	}
	if good != 1 {
		return 0, false
	}
	return len(b) - pad, true
}
