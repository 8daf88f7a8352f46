package platform

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/wxauth/caddy-wechat-auth/internal/wechat"
)

// Open-data errors, shared with the WeChat client.
var (
	// ErrBadData: open data that cannot be decrypted or is not a JSON object.
	ErrBadData = wechat.ErrBadData
	// ErrWatermark: open data made for another app (WeChat, QQ, Douyin:
	// watermark.appid; Baidu: the trailing app_key).
	ErrWatermark = wechat.ErrWatermark
	// ErrNoOpenData: the platform has no encrypted open data (Alipay).
	ErrNoOpenData = errors.New("platform: no open data on this platform")
)

// baiduRandomBytes and baiduLengthBytes frame Baidu's plaintext: 16 random
// bytes, then the data's length as a 4-byte big-endian integer, then the
// data, then the app_key.
const (
	baiduRandomBytes = 16
	baiduLengthBytes = 4
	// baiduPadBlock is the block Baidu's PKCS #7 padding fills the
	// plaintext to: 32 bytes (pads of 1 to 32 bytes, as its sample
	// code strips them and its sample data has), not AES's 16.
	baiduPadBlock = 32
)

// DecryptOpenData decrypts open data of the platform with the session's key
// and returns the plaintext JSON object. WeChat, QQ and Douyin use
// WeChat's scheme (AES-128-CBC, the watermark.appid must be appID); Baidu
// uses AES-192-CBC with a 24-byte key, its plaintext framed as 16 random
// bytes, a 4-byte big-endian length, the data and the app_key, which must
// be appID (Baidu's AppKey). Alipay has none (ErrNoOpenData). Errors match
// ErrBadData or ErrWatermark; it never panics, whatever the input.
func DecryptOpenData(name string, key []byte, encryptedData, iv, appID string) (json.RawMessage, error) {
	switch name {
	case WeChat, QQ, Douyin:
		return wechat.DecryptOpenData(key, encryptedData, iv, appID)
	case Baidu:
		return decryptBaidu(key, encryptedData, iv, appID)
	}
	return nil, fmt.Errorf("decrypting open data: %w", ErrNoOpenData)
}

func decryptBaidu(key []byte, encryptedData, iv, appKey string) (json.RawMessage, error) {
	if len(key) != baiduSessionKeyBytes {
		return nil, fmt.Errorf("decrypting open data: session key is %d bytes, want %d: %w", len(key), baiduSessionKeyBytes, ErrBadData)
	}
	pt, err := wechat.DecryptCBC(key, encryptedData, iv, baiduPadBlock)
	if err != nil {
		return nil, err
	}
	if len(pt) < baiduRandomBytes+baiduLengthBytes {
		return nil, fmt.Errorf("decrypting open data: plaintext too short: %w", ErrBadData)
	}
	size := binary.BigEndian.Uint32(pt[baiduRandomBytes:])
	rest := pt[baiduRandomBytes+baiduLengthBytes:]
	if uint64(size) > uint64(len(rest)) {
		return nil, fmt.Errorf("decrypting open data: data length %d exceeds the plaintext: %w", size, ErrBadData)
	}
	data, tail := rest[:size], rest[size:]
	if len(tail) != len(appKey) || subtle.ConstantTimeCompare(tail, []byte(appKey)) != 1 {
		return nil, fmt.Errorf("decrypting open data: app_key is not this app's: %w", ErrWatermark)
	}
	if !utf8.Valid(data) {
		return nil, fmt.Errorf("decrypting open data: data is not valid UTF-8: %w", ErrBadData)
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(data, &obj); err != nil || obj == nil {
		return nil, fmt.Errorf("decrypting open data: data is not a JSON object: %w", ErrBadData)
	}
	return json.RawMessage(bytes.TrimSpace(data)), nil
}

// EncryptBaiduOpenData is Baidu's side of DecryptOpenData, for the emulator
// and tests: it frames data with 16 random bytes, its length and appKey,
// pads it to a multiple of 32 bytes (PKCS #7) as Baidu does, and encrypts
// it with AES-192-CBC under the 24-byte key and a fresh iv.
func EncryptBaiduOpenData(key, data []byte, appKey string) (encryptedData, iv string, err error) {
	if len(key) != baiduSessionKeyBytes {
		return "", "", fmt.Errorf("encrypting open data: session key is %d bytes, want %d: %w", len(key), baiduSessionKeyBytes, ErrBadData)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return "", "", fmt.Errorf("encrypting open data: %w", ErrBadData)
	}
	pt := make([]byte, baiduRandomBytes+baiduLengthBytes, baiduRandomBytes+baiduLengthBytes+len(data)+len(appKey)+baiduPadBlock)
	ivb := make([]byte, aes.BlockSize)
	_, _ = rand.Read(pt[:baiduRandomBytes]) // crypto/rand.Read never fails (Go ≥ 1.24)
	_, _ = rand.Read(ivb)
	binary.BigEndian.PutUint32(pt[baiduRandomBytes:], uint32(len(data)))
	pt = append(pt, data...)
	pt = append(pt, appKey...)
	pad := baiduPadBlock - len(pt)%baiduPadBlock
	for range pad {
		pt = append(pt, byte(pad))
	}
	cipher.NewCBCEncrypter(block, ivb).CryptBlocks(pt, pt)
	return base64.StdEncoding.EncodeToString(pt), base64.StdEncoding.EncodeToString(ivb), nil
}

// VerifyRawSignature checks the signature beside open data: every platform
// with open data signs it as WeChat does (see wechat.VerifyRawSignature).
func VerifyRawSignature(rawData string, key []byte, signature string) bool {
	return wechat.VerifyRawSignature(rawData, key, signature)
}
