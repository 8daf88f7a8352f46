package emulator

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha1" //nolint:gosec // WeChat's open-data signature is defined as SHA-1
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/wxauth/caddy-wechat-auth/internal/wechat"
)

// errBadKey: a session_key of the wrong length.
var errBadKey = errors.New("session_key must be 16 bytes")

// watermark is the member WeChat adds to every piece of open data so that
// the receiver can check which app it was meant for and when it was made.
type watermark struct {
	AppID     string `json:"appid"`
	Timestamp int64  `json:"timestamp"`
}

// openData is encrypted open data as the WeChat client hands it to the
// mini-program, and as the /emulator/encrypt helper answers.
type openData struct {
	EncryptedData string `json:"encrypted_data"`
	IV            string `json:"iv"`
	RawData       string `json:"raw_data"`
	Signature     string `json:"signature"`
}

// sealOpenData does WeChat's side of open data for one session: rawData is
// data without any watermark member; the plaintext is data with a watermark
// for appid at now, encrypted with AES-128-CBC and PKCS#7 padding under
// sessionKey and a random IV; the signature is
// hex(sha1(rawData + base64(sessionKey))).
func sealOpenData(sessionKey []byte, data map[string]json.RawMessage, appid string, now time.Time) (openData, error) {
	plain := make(map[string]json.RawMessage, len(data)+1)
	for k, v := range data {
		if k != "watermark" {
			plain[k] = v
		}
	}
	raw, err := json.Marshal(plain)
	if err != nil {
		return openData{}, fmt.Errorf("encoding raw data: %w", err)
	}
	wm, err := json.Marshal(watermark{AppID: appid, Timestamp: now.Unix()})
	if err != nil {
		return openData{}, fmt.Errorf("encoding watermark: %w", err)
	}
	plain["watermark"] = wm
	full, err := json.Marshal(plain)
	if err != nil {
		return openData{}, fmt.Errorf("encoding open data: %w", err)
	}
	ct, iv, err := encryptCBC(sessionKey, full)
	if err != nil {
		return openData{}, fmt.Errorf("encrypting open data: %w", err)
	}
	keyB64 := base64.StdEncoding.EncodeToString(sessionKey)
	return openData{
		EncryptedData: base64.StdEncoding.EncodeToString(ct),
		IV:            base64.StdEncoding.EncodeToString(iv),
		RawData:       string(raw),
		Signature:     openDataSignature(string(raw), keyB64),
	}, nil
}

// encryptCBC encrypts plaintext with AES-128-CBC and PKCS#7 padding under key
// and a fresh random IV, which it returns with the ciphertext.
func encryptCBC(key, plaintext []byte) (ciphertext, iv []byte, err error) {
	if len(key) != sessionKeyBytes {
		return nil, nil, errBadKey
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, nil, fmt.Errorf("creating cipher: %w", err)
	}
	iv = make([]byte, aes.BlockSize)
	_, _ = rand.Read(iv) // crypto/rand.Read never fails (Go ≥ 1.24)
	padded := pkcs7Pad(plaintext, aes.BlockSize)
	ciphertext = make([]byte, len(padded))
	cipher.NewCBCEncrypter(block, iv).CryptBlocks(ciphertext, padded)
	return ciphertext, iv, nil
}

// pkcs7Pad appends PKCS#7 padding up to a multiple of blockSize (always at
// least one byte, a whole block when already aligned).
func pkcs7Pad(b []byte, blockSize int) []byte {
	n := blockSize - len(b)%blockSize
	return append(bytes.Clone(b), bytes.Repeat([]byte{byte(n)}, n)...)
}

// openDataSignature is WeChat's open-data signature:
// hex(sha1(rawData + sessionKeyBase64)).
func openDataSignature(rawData, sessionKeyBase64 string) string {
	sum := sha1.Sum([]byte(rawData + sessionKeyBase64)) //nolint:gosec // defined by WeChat
	return hex.EncodeToString(sum[:])
}

// checkSessionSignature is the signature /wxa/checksession expects:
// hex(HMAC-SHA256(key = session_key as WeChat's base64 string, message =
// "")), WeChat's login-state signature rule, shared with the client.
func checkSessionSignature(sessionKey []byte) string {
	return wechat.SessionSignature(sessionKey, nil)
}

// validCheckSessionSignature reports, in constant time, whether sig (hex,
// either case) is the checksession signature of sessionKey.
func validCheckSessionSignature(sessionKey []byte, sig string) bool {
	want := checkSessionSignature(sessionKey)
	return subtle.ConstantTimeCompare([]byte(want), []byte(strings.ToLower(sig))) == 1
}
