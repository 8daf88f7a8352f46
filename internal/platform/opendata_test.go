package platform

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/wxauth/caddy-wechat-auth/internal/wechat"
)

func TestBaiduOpenDataRoundTrip(t *testing.T) {
	key := []byte("0123456789abcdef01234567")
	data := `{"nickname":"百度用户","openid":"bd-open"}`
	enc, iv, err := EncryptBaiduOpenData(key, []byte(data), testAppID)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecryptOpenData(Baidu, key, enc, iv, testAppID)
	if err != nil || string(got) != data {
		t.Fatalf("decrypt = %s, %v", got, err)
	}
	if _, err := DecryptOpenData(Baidu, key, enc, iv, "another-app-key"); !errors.Is(err, ErrWatermark) {
		t.Fatalf("foreign app_key: %v, want ErrWatermark", err)
	}
	if _, err := DecryptOpenData(Baidu, key, enc, iv, testAppID[:len(testAppID)-1]); !errors.Is(err, ErrWatermark) {
		t.Fatalf("shorter app_key: %v, want ErrWatermark", err)
	}
}

// TestBaiduOpenDataSampleVector decrypts the sample of Baidu's own
// documentation ("用户数据的签名验证和加解密", smartprogram.baidu.com,
// /docs/develop/api/open/log_userdata/): its plaintext carries 28 bytes of
// padding, since Baidu pads to a multiple of 32 bytes, not 16.
func TestBaiduOpenDataSampleVector(t *testing.T) {
	key, err := base64.StdEncoding.DecodeString("1df09d0a1677dd72b8325aec59576e0c")
	if err != nil {
		t.Fatal(err)
	}
	const (
		appKey = "y2dTfnWfkx2OXttMEMWlGHoB1KzMogm7"
		iv     = "1df09d0a1677dd72b8325Q=="
		data   = "OpCoJgs7RrVgaMNDixIvaCIyV2SFDBNLivgkVqtzq2GC10egsn+PKmQ/+5q+chT8xzldLUog2haTItyIkKyvzvmXonBQLIMeq54axAu9c3KG8IhpFD6+ymHocmx07ZKi7eED3t0KyIxJgRNSDkFk5RV1ZP2mSWa7ZgCXXcAbP0RsiUcvhcJfrSwlpsm0E1YJzKpYy429xrEEGvK+gfL+Cw=="
		want   = `{"openid":"open_id","nickname":"baidu_user","headimgurl":"url of image","sex":1}`
	)
	got, err := DecryptOpenData(Baidu, key, data, iv, appKey)
	if err != nil || string(got) != want {
		t.Fatalf("decrypt = %s, %v; want %s", got, err, want)
	}
}

// TestBaiduPadding: Baidu's padding runs from 1 to 32 bytes; the
// emulator's twin pads the same way, and a 16-byte-style padding (a
// multiple of 16 only) still decrypts.
func TestBaiduPadding(t *testing.T) {
	key := []byte("0123456789abcdef01234567")
	// 16 + 4 + len(data) + len(testAppID) bytes before padding; data
	// lengths 0..40 cover every padding length.
	for n := 2; n < 42; n++ {
		data := `{"a":"` + strings.Repeat("x", n) + `"}`
		enc, iv, err := EncryptBaiduOpenData(key, []byte(data), testAppID)
		if err != nil {
			t.Fatal(err)
		}
		ct, _ := base64.StdEncoding.DecodeString(enc)
		if len(ct)%baiduPadBlock != 0 {
			t.Fatalf("%d bytes of ciphertext: not padded to 32 as Baidu pads", len(ct))
		}
		if got, err := DecryptOpenData(Baidu, key, enc, iv, testAppID); err != nil || string(got) != data {
			t.Fatalf("data of %d bytes: %s, %v", len(data), got, err)
		}
	}
}

func TestBaiduOpenDataRefusesBadInput(t *testing.T) {
	key := []byte("0123456789abcdef01234567")
	enc, iv, err := EncryptBaiduOpenData(key, []byte(`{"a":1}`), testAppID)
	if err != nil {
		t.Fatal(err)
	}
	notJSON, iv2, _ := EncryptBaiduOpenData(key, []byte(`not json`), testAppID)
	badUTF8, iv3, _ := EncryptBaiduOpenData(key, []byte("{\"a\":\"\xff\"}"), testAppID)
	ct, _ := base64.StdEncoding.DecodeString(enc)
	flipped := append([]byte(nil), ct...)
	flipped[len(flipped)-1] ^= 0x01
	for _, tc := range []struct {
		name         string
		key          []byte
		enc, iv, app string
	}{
		{"16-byte key", key[:16], enc, iv, testAppID},
		{"bad base64", key, "***", iv, testAppID},
		{"bad iv", key, enc, "AAAA", testAppID},
		{"empty data", key, "", iv, testAppID},
		{"not a block multiple", key, base64.StdEncoding.EncodeToString(ct[:20]), iv, testAppID},
		{"bad padding", key, base64.StdEncoding.EncodeToString(flipped), iv, testAppID},
		{"wrong key", []byte("XXXXXXXXXXXXXXXXXXXXXXXX"), enc, iv, testAppID},
		{"not json", key, notJSON, iv2, testAppID},
		{"not utf-8", key, badUTF8, iv3, testAppID},
		{"oversize", key, strings.Repeat("A", maxOpenDataBytes+4), iv, testAppID},
	} {
		out, err := DecryptOpenData(Baidu, tc.key, tc.enc, tc.iv, tc.app)
		if out != nil || !(errors.Is(err, ErrBadData) || errors.Is(err, ErrWatermark)) {
			t.Errorf("%s: %s, %v; want ErrBadData", tc.name, out, err)
		}
	}
}

func TestBaiduOpenDataFraming(t *testing.T) {
	// A plaintext whose length field points past its end is refused.
	key := []byte("0123456789abcdef01234567")
	enc, iv, err := EncryptBaiduOpenData(key, []byte(`{}`), "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := DecryptOpenData(Baidu, key, enc, iv, testAppID); !errors.Is(err, ErrWatermark) {
		t.Fatalf("missing app_key: %v", err)
	}
}

func TestOpenDataPerPlatform(t *testing.T) {
	key := []byte("0123456789abcdef")
	enc, iv, err := wechat.EncryptOpenData(key, []byte(`{"x":1,"watermark":{"appid":"`+testAppID+`","timestamp":1}}`))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{WeChat, QQ, Douyin} {
		if _, err := DecryptOpenData(p, key, enc, iv, testAppID); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
	if _, err := DecryptOpenData(Alipay, key, enc, iv, testAppID); !errors.Is(err, ErrNoOpenData) {
		t.Errorf("alipay: %v, want ErrNoOpenData", err)
	}
	if HasOpenData(Alipay) || !HasOpenData(Baidu) || !HasPhone(WeChat) || HasPhone(QQ) {
		t.Error("feature table wrong")
	}
}

func TestVerifyRawSignature(t *testing.T) {
	key := []byte("0123456789abcdef01234567")
	sum := sha1.Sum([]byte("raw" + base64.StdEncoding.EncodeToString(key)))
	good := hex.EncodeToString(sum[:])
	if !VerifyRawSignature("raw", key, good) {
		t.Fatal("good signature refused")
	}
	if VerifyRawSignature("raw2", key, good) || VerifyRawSignature("raw", key, "00") || VerifyRawSignature("raw", nil, good) {
		t.Fatal("bad signature accepted")
	}
}

// encryptBaiduRaw encrypts pt (a whole number of blocks, padding included
// as the test wants it) the way Baidu does: AES-192-CBC under key.
func encryptBaiduRaw(t *testing.T, key, pt []byte) (encryptedData, iv string) {
	t.Helper()
	if len(pt)%aes.BlockSize != 0 {
		t.Fatalf("plaintext of %d bytes is not whole blocks", len(pt))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	ivb := bytes.Repeat([]byte{7}, aes.BlockSize)
	ct := make([]byte, len(pt))
	cipher.NewCBCEncrypter(block, ivb).CryptBlocks(ct, pt)
	return base64.StdEncoding.EncodeToString(ct), base64.StdEncoding.EncodeToString(ivb)
}

// baiduFrame is Baidu's plaintext of data and appKey before padding.
func baiduFrame(data, appKey string) []byte {
	pt := make([]byte, baiduRandomBytes+baiduLengthBytes, 64)
	binary.BigEndian.PutUint32(pt[baiduRandomBytes:], uint32(len(data)))
	return append(append(pt, data...), appKey...)
}

// pkcs7 pads b to whole blocks.
func pkcs7(b []byte) []byte {
	n := aes.BlockSize - len(b)%aes.BlockSize
	return append(b, bytes.Repeat([]byte{byte(n)}, n)...)
}

// jsonOfLen is a JSON object of exactly n bytes (n >= 8).
func jsonOfLen(n int) string { return `{"a":"` + strings.Repeat("x", n-8) + `"}` }

// TestBaiduOpenDataPadding: only strict PKCS #7 padding opens, even when
// cutting the claimed padding would leave this app's app_key at the end.
func TestBaiduOpenDataPadding(t *testing.T) {
	key := []byte("0123456789abcdef01234567")
	for _, tc := range []struct {
		name string
		pad  []byte
		ok   bool
	}{
		{"strict 2", []byte{0x02, 0x02}, true},
		{"strict 16", bytes.Repeat([]byte{0x10}, aes.BlockSize), true},
		// Claims 2 bytes of padding, but only the last says 2.
		{"pad bytes differ", []byte{0x09, 0x02}, false},
		{"first of 16 differs", append([]byte{0x0f}, bytes.Repeat([]byte{0x10}, aes.BlockSize-1)...), false},
		{"pad 0", []byte{0x00}, false},
		{"pad 17", bytes.Repeat([]byte{0x11}, aes.BlockSize), false},
	} {
		// The data's length makes frame and pad whole blocks.
		n := 8
		for (baiduRandomBytes+baiduLengthBytes+n+len(testAppID)+len(tc.pad))%aes.BlockSize != 0 {
			n++
		}
		data := jsonOfLen(n)
		enc, iv := encryptBaiduRaw(t, key, append(baiduFrame(data, testAppID), tc.pad...))
		out, err := DecryptOpenData(Baidu, key, enc, iv, testAppID)
		switch {
		case tc.ok && (err != nil || string(out) != data):
			t.Errorf("%s: %s, %v; want the data", tc.name, out, err)
		case !tc.ok && (out != nil || !errors.Is(err, ErrBadData)):
			t.Errorf("%s: %s, %v; want ErrBadData", tc.name, out, err)
		}
	}
}

// TestBaiduOpenDataShortPlaintext: a plaintext shorter than the random
// bytes and the length field, or whose length field points past its end,
// is ErrBadData, never a panic.
func TestBaiduOpenDataShortPlaintext(t *testing.T) {
	key := []byte("0123456789abcdef01234567")
	for n := 0; n < baiduRandomBytes+baiduLengthBytes; n++ {
		enc, iv := encryptBaiduRaw(t, key, pkcs7(bytes.Repeat([]byte{0}, n)))
		if out, err := DecryptOpenData(Baidu, key, enc, iv, ""); out != nil || !errors.Is(err, ErrBadData) {
			t.Errorf("plaintext of %d bytes: %s, %v; want ErrBadData", n, out, err)
		}
	}
	pt := baiduFrame(`{}`, testAppID)
	binary.BigEndian.PutUint32(pt[baiduRandomBytes:], uint32(len(`{}`)+len(testAppID)+1))
	enc, iv := encryptBaiduRaw(t, key, pkcs7(pt))
	if out, err := DecryptOpenData(Baidu, key, enc, iv, testAppID); out != nil || !errors.Is(err, ErrBadData) {
		t.Errorf("length one past the end: %s, %v; want ErrBadData", out, err)
	}
	binary.BigEndian.PutUint32(pt[baiduRandomBytes:], 0xffffffff)
	enc, iv = encryptBaiduRaw(t, key, pkcs7(pt))
	if out, err := DecryptOpenData(Baidu, key, enc, iv, testAppID); out != nil || !errors.Is(err, ErrBadData) {
		t.Errorf("length 2³²−1: %s, %v; want ErrBadData", out, err)
	}
}

// maxOpenDataBytes is the bound wechat.DecryptCBC puts on the base64
// encrypted data.
const maxOpenDataBytes = 1 << 20

// TestBaiduOpenDataSizeBoundary: encrypted data of exactly
// maxOpenDataBytes base64 characters is decrypted; longer is refused.
func TestBaiduOpenDataSizeBoundary(t *testing.T) {
	key := []byte("0123456789abcdef01234567")
	// maxOpenDataBytes base64 characters are 3/4 as many bytes of
	// ciphertext; one byte of padding fills the last block.
	ctLen := maxOpenDataBytes / 4 * 3
	data := jsonOfLen(ctLen - 1 - baiduRandomBytes - baiduLengthBytes - len(testAppID))
	enc, iv, err := EncryptBaiduOpenData(key, []byte(data), testAppID)
	if err != nil {
		t.Fatal(err)
	}
	if len(enc) != maxOpenDataBytes {
		t.Fatalf("encrypted data is %d characters, want %d", len(enc), maxOpenDataBytes)
	}
	if out, err := DecryptOpenData(Baidu, key, enc, iv, testAppID); err != nil || string(out) != data {
		t.Fatalf("encrypted data of exactly the limit: %v", err)
	}
	enc, iv, err = EncryptBaiduOpenData(key, []byte(jsonOfLen(len(data)+1)), testAppID)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := DecryptOpenData(Baidu, key, enc, iv, testAppID); out != nil || !errors.Is(err, ErrBadData) || !strings.Contains(err.Error(), "longer than") {
		t.Fatalf("encrypted data of %d characters: %v, want it refused for its size", len(enc), err)
	}
}
