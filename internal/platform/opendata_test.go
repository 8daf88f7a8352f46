package platform

import (
	"crypto/sha1"
	"encoding/base64"
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
