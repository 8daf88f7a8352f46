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

// WeChat's published open-data sample (开放数据校验与解密, and the
// WXBizDataCrypt demo code that ships with it).
const (
	sampleAppID         = "wx4f4bc4dec97d474b"
	sampleSessionKey    = "tiihtNczf5v6AKRyjwEUhQ=="
	sampleIV            = "r7BXXKkLb8qrSNn05n0qiA=="
	sampleEncryptedData = "CiyLU1Aw2KjvrjMdj8YKliAjtP4gsMZMQmRzooG2xrDcvSnxIMXFufNstNGTyaGS9uT5geRa0W4oTOb1WT7fJlAC+oNPdbB+3hVbJSRgv+4lGOETKUQz6OYStslQ142dNCuabNPGBzlooOmB231qMM85d2/fV6ChevvXvQP8Hkue1poOFtnEtpyxVLW1zAo6/1Xx1COxFvrc2d7UL/lmHInNlxuacJXwu0fjpXfz/YqYzBIBzD6WUfTIF9GRHpOn/Hz7saL8xz+W//FRAUid1OksQaQx4CMs8LOddcQhULW4ucetDf96JcR3g0gfRK4PC7E/r7Z6xNrXd2UIeorGj5Ef7b1pJAYB6Y5anaHqZ9J6nKEBvB4DnNLIVWSgARns/8wR2SiRS7MNACwTyrGvt9ts8p12PKFdlqYTopNHR1Vf7XjfhQlVsAJdNiKdYmYVoKlaRv85IfVunYzO0IKXsyl7JCUjCpoG20f0a04COwfneQAGGwd5oa+T8yO5hzuyDb/XcxxmK01EpqOyuxINew=="
	samplePlaintext     = `{"openId":"oGZUI0egBJY1zhBYw2KhdUfwVJJE","nickName":"Band","gender":1,"language":"zh_CN","city":"Guangzhou","province":"Guangdong","country":"CN","avatarUrl":"http://wx.qlogo.cn/mmopen/vi_32/aSKcBBPpibyKNicHNTMM0qJVh8Kjgiak2AHWr8MHM4WgMEm7GFhsf8OYrySdbvAMvTsw3mo8ibKicsnfN5pRjl1p8HQ/0","unionId":"ocMvos6NjeKLIBqg5Mr9QjxrP1FA","watermark":{"timestamp":1477314187,"appid":"wx4f4bc4dec97d474b"}}`
)

func mustB64(t testing.TB, s string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatalf("decoding %q: %v", s, err)
	}
	return b
}

// encryptRaw CBC-encrypts data (already a multiple of 16 bytes, padded or
// not) under key and iv, so tests can build ciphertexts with bad padding.
func encryptRaw(t testing.TB, key, iv, data []byte) string {
	t.Helper()
	block, err := aes.NewCipher(key)
	if err != nil {
		t.Fatalf("aes: %v", err)
	}
	out := make([]byte, len(data))
	cipher.NewCBCEncrypter(block, iv).CryptBlocks(out, data)
	return base64.StdEncoding.EncodeToString(out)
}

func TestDecryptOpenDataWeChatSample(t *testing.T) {
	got, err := DecryptOpenData(mustB64(t, sampleSessionKey), sampleEncryptedData, sampleIV, sampleAppID)
	if err != nil {
		t.Fatalf("DecryptOpenData: %v", err)
	}
	if string(got) != samplePlaintext {
		t.Errorf("plaintext = %s\nwant %s", got, samplePlaintext)
	}
	if _, err := DecryptOpenData(mustB64(t, sampleSessionKey), sampleEncryptedData, sampleIV, testAppID); !errors.Is(err, ErrWatermark) {
		t.Errorf("other app: err = %v, want ErrWatermark", err)
	}
	wrongKey := mustB64(t, "o0q0otL8aEzpcZL/FT9WsQ==")
	if _, err := DecryptOpenData(wrongKey, sampleEncryptedData, sampleIV, sampleAppID); !errors.Is(err, ErrBadData) && !errors.Is(err, ErrWatermark) {
		t.Errorf("wrong key: err = %v, want ErrBadData", err)
	}
}

func TestOpenDataRoundTrip(t *testing.T) {
	key := mustB64(t, testSessionKeyB64)
	// Lengths around block boundaries exercise every padding length 1..16.
	for n := 0; n <= 40; n++ {
		pt := `{"watermark":{"appid":"` + testAppID + `","timestamp":1},"x":"` + strings.Repeat("a", n) + `"}`
		data, iv, err := EncryptOpenData(key, []byte(pt))
		if err != nil {
			t.Fatalf("EncryptOpenData: %v", err)
		}
		if l := len(mustB64(t, data)); l%16 != 0 || l <= len(pt) || l > len(pt)+16 {
			t.Fatalf("ciphertext length %d for plaintext %d", l, len(pt))
		}
		got, err := DecryptOpenData(key, data, iv, testAppID)
		if err != nil || string(got) != pt {
			t.Fatalf("n=%d: DecryptOpenData = %s, %v", n, got, err)
		}
	}
	// Unicode and the sample plaintext survive too.
	for _, pt := range []string{samplePlaintext, `{"nickName":"微信用户","watermark":{"appid":"wx4f4bc4dec97d474b"}}`} {
		data, iv, err := EncryptOpenData(key, []byte(pt))
		if err != nil {
			t.Fatal(err)
		}
		if got, err := DecryptOpenData(key, data, iv, sampleAppID); err != nil || string(got) != pt {
			t.Errorf("DecryptOpenData = %s, %v", got, err)
		}
	}
}

func TestEncryptOpenData(t *testing.T) {
	key := mustB64(t, testSessionKeyB64)
	d1, iv1, err1 := EncryptOpenData(key, []byte("{}"))
	d2, iv2, err2 := EncryptOpenData(key, []byte("{}"))
	if err1 != nil || err2 != nil {
		t.Fatalf("EncryptOpenData: %v, %v", err1, err2)
	}
	if iv1 == iv2 || d1 == d2 {
		t.Errorf("two encryptions share an iv or ciphertext")
	}
	if len(mustB64(t, iv1)) != 16 {
		t.Errorf("iv is not 16 bytes")
	}
	for _, k := range [][]byte{nil, key[:15], append(key, 0)} {
		if _, _, err := EncryptOpenData(k, []byte("{}")); !errors.Is(err, ErrBadData) {
			t.Errorf("key of %d bytes: err = %v, want ErrBadData", len(k), err)
		}
	}
}

func TestDecryptOpenDataBadInput(t *testing.T) {
	key := mustB64(t, testSessionKeyB64)
	iv := make([]byte, 16)
	ivB64 := base64.StdEncoding.EncodeToString(iv)
	wm := `,"watermark":{"appid":"` + testAppID + `"}`
	enc := func(pt string) string {
		data, err := base64.StdEncoding.DecodeString(encryptWithIV(t, key, iv, []byte(pt)))
		if err != nil {
			t.Fatal(err)
		}
		return base64.StdEncoding.EncodeToString(data)
	}
	block := func(last ...byte) []byte { // 16 bytes of '{' ending in last
		b := bytes.Repeat([]byte{'{'}, 16)
		copy(b[16-len(last):], last)
		return b
	}
	tests := []struct {
		name string
		key  []byte
		data string
		iv   string
		want error
	}{
		{name: "nil key", data: enc("{}"), iv: ivB64, want: ErrBadData},
		{name: "15-byte key", key: key[:15], data: enc("{}"), iv: ivB64, want: ErrBadData},
		{name: "32-byte key", key: append(append([]byte(nil), key...), key...), data: enc("{}"), iv: ivB64, want: ErrBadData},
		{name: "iv not base64", key: key, data: enc("{}"), iv: "!!!", want: ErrBadData},
		{name: "iv 15 bytes", key: key, data: enc("{}"), iv: base64.StdEncoding.EncodeToString(iv[:15]), want: ErrBadData},
		{name: "iv empty", key: key, data: enc("{}"), iv: "", want: ErrBadData},
		{name: "data not base64", key: key, data: "%%%", iv: ivB64, want: ErrBadData},
		{name: "data url-safe base64", key: key, data: strings.NewReplacer("+", "-", "/", "_").Replace(sampleEncryptedData), iv: sampleIV, want: ErrBadData},
		{name: "data empty", key: key, data: "", iv: ivB64, want: ErrBadData},
		{name: "data 15 bytes", key: key, data: base64.StdEncoding.EncodeToString(make([]byte, 15)), iv: ivB64, want: ErrBadData},
		{name: "data 17 bytes", key: key, data: base64.StdEncoding.EncodeToString(make([]byte, 17)), iv: ivB64, want: ErrBadData},
		{name: "data too long", key: key, data: strings.Repeat("A", maxOpenDataBytes+4), iv: ivB64, want: ErrBadData},
		{name: "padding 0", key: key, data: encryptRaw(t, key, iv, block(0)), iv: ivB64, want: ErrBadData},
		{name: "padding 17", key: key, data: encryptRaw(t, key, iv, block(17)), iv: ivB64, want: ErrBadData},
		{name: "padding 255", key: key, data: encryptRaw(t, key, iv, block(255)), iv: ivB64, want: ErrBadData},
		{name: "padding bytes differ", key: key, data: encryptRaw(t, key, iv, block(2, 3, 3)), iv: ivB64, want: ErrBadData},
		{name: "padding 16 not uniform", key: key, data: encryptRaw(t, key, iv, append([]byte{15}, bytes.Repeat([]byte{16}, 15)...)), iv: ivB64, want: ErrBadData},
		{name: "plaintext not JSON", key: key, data: enc("hello"), iv: ivB64, want: ErrBadData},
		{name: "plaintext JSON array", key: key, data: enc(`[{"watermark":{"appid":"` + testAppID + `"}}]`), iv: ivB64, want: ErrBadData},
		{name: "plaintext JSON null", key: key, data: enc("null"), iv: ivB64, want: ErrBadData},
		{name: "plaintext JSON string", key: key, data: enc(`"x"`), iv: ivB64, want: ErrBadData},
		{name: "trailing garbage", key: key, data: enc(`{"a":1` + wm + `}x`), iv: ivB64, want: ErrBadData},
		{name: "no watermark", key: key, data: enc(`{"a":1}`), iv: ivB64, want: ErrWatermark},
		{name: "watermark not an object", key: key, data: enc(`{"watermark":"` + testAppID + `"}`), iv: ivB64, want: ErrWatermark},
		{name: "watermark appid empty", key: key, data: enc(`{"watermark":{"appid":""}}`), iv: ivB64, want: ErrWatermark},
		{name: "watermark of another app", key: key, data: enc(`{"watermark":{"appid":"wxother"}}`), iv: ivB64, want: ErrWatermark},
		{name: "ok", key: key, data: enc(`{"a":1` + wm + `}`), iv: ivB64},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecryptOpenData(tt.key, tt.data, tt.iv, testAppID)
			if tt.want == nil {
				if err != nil || !json.Valid(got) {
					t.Fatalf("DecryptOpenData = %s, %v", got, err)
				}
				return
			}
			if got != nil || !errors.Is(err, tt.want) {
				t.Fatalf("DecryptOpenData = %s, %v; want nil, %v", got, err, tt.want)
			}
		})
	}
}

// encryptWithIV is EncryptOpenData with a chosen iv.
func encryptWithIV(t testing.TB, key, iv, pt []byte) string {
	t.Helper()
	return encryptRaw(t, key, iv, pkcs7Pad(pt))
}

func TestPKCS7Unpad(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		n    int
		ok   bool
	}{
		{"empty", nil, 0, false},
		{"not a block", make([]byte, 15), 0, false},
		{"pad 1", append(bytes.Repeat([]byte{'a'}, 15), 1), 15, true},
		{"pad 16", bytes.Repeat([]byte{16}, 16), 0, true},
		{"pad 16 over two blocks", append(bytes.Repeat([]byte{'a'}, 16), bytes.Repeat([]byte{16}, 16)...), 16, true},
		{"pad 4", append(bytes.Repeat([]byte{'a'}, 12), 4, 4, 4, 4), 12, true},
		{"pad 4 broken", append(bytes.Repeat([]byte{'a'}, 12), 4, 5, 4, 4), 0, false},
		{"pad 4 preceded by 4", append(bytes.Repeat([]byte{4}, 12), 4, 4, 4, 4), 12, true},
		{"pad 0", make([]byte, 16), 0, false},
		{"pad 17", bytes.Repeat([]byte{17}, 32), 0, false},
		{"pad 16 with a stray byte", append([]byte{15}, bytes.Repeat([]byte{16}, 15)...), 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, ok := pkcs7Unpad(tt.in, aes.BlockSize)
			if n != tt.n || ok != tt.ok {
				t.Errorf("pkcs7Unpad = %d, %v; want %d, %v", n, ok, tt.n, tt.ok)
			}
		})
	}
}

func TestVerifyRawSignature(t *testing.T) {
	// WeChat's published signature example (开放数据校验与解密).
	const rawData = `{"nickName":"Band","gender":1,"language":"zh_CN","city":"Guangzhou","province":"Guangdong","country":"CN","avatarUrl":"http://wx.qlogo.cn/mmopen/vi_32/1vZvI39NWFQ9XM4LtQpFrQJ1xlgZxx3w7bQxKARol6503Iuswjjn6nIGBiaycAjAtpujxyzYsrztuuICqIM5ibXQ/0"}`
	const sig = "75e81ceda165f4ffa64f4068af58c64b8f54b88c"
	key := mustB64(t, "HyVFkGl5F5OQWJZZaNzBBg==")
	tests := []struct {
		name string
		raw  string
		key  []byte
		sig  string
		want bool
	}{
		{"WeChat example", rawData, key, sig, true},
		{"upper-case hex", rawData, key, strings.ToUpper(sig), true},
		{"raw data changed", rawData + " ", key, sig, false},
		{"other key", rawData, mustB64(t, testSessionKeyB64), sig, false},
		{"one digit off", rawData, key, sig[:39] + "d", false},
		{"truncated", rawData, key, sig[:38], false},
		{"odd length", rawData, key, sig[:39], false},
		{"not hex", rawData, key, strings.Repeat("z", 40), false},
		{"empty", rawData, key, "", false},
		{"sha256 length", rawData, key, sig + sig[:24], false},
		{"short key", rawData, key[:15], sig, false},
		{"nil key", rawData, nil, sig, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := VerifyRawSignature(tt.raw, tt.key, tt.sig); got != tt.want {
				t.Errorf("VerifyRawSignature = %v, want %v", got, tt.want)
			}
		})
	}
}

func FuzzDecryptOpenData(f *testing.F) {
	key := mustB64(f, sampleSessionKey)
	f.Add(key, sampleEncryptedData, sampleIV, sampleAppID)
	f.Add(key, sampleEncryptedData[:24], sampleIV, sampleAppID)
	f.Add(key[:8], sampleEncryptedData, sampleIV, "")
	f.Add([]byte{}, "", "", "")
	f.Add(key, "AAAAAAAAAAAAAAAAAAAAAA==", "AAAAAAAAAAAAAAAAAAAAAA==", "x")
	f.Add(key, encryptWithIV(f, key, make([]byte, 16), []byte(`{"watermark":{"appid":"a"}}`)), "AAAAAAAAAAAAAAAAAAAAAA==", "a")
	f.Fuzz(func(t *testing.T, key []byte, data, iv, appID string) {
		out, err := DecryptOpenData(key, data, iv, appID)
		if err != nil {
			if out != nil {
				t.Fatalf("error %v with output", err)
			}
			if !errors.Is(err, ErrBadData) && !errors.Is(err, ErrWatermark) {
				t.Fatalf("error %v is neither ErrBadData nor ErrWatermark", err)
			}
			return
		}
		var obj struct {
			Watermark struct {
				AppID string `json:"appid"`
			} `json:"watermark"`
		}
		if json.Unmarshal(out, &obj) != nil || obj.Watermark.AppID != appID || appID == "" {
			t.Fatalf("accepted %q for app %q", out, appID)
		}
		if !utf8.Valid(out) {
			t.Fatalf("accepted invalid UTF-8 %q", out)
		}
	})
}

// TestPKCS7Unpad32: padding to a multiple of 32 bytes, as Baidu pads its
// open data: pads of 1 to 32 bytes, nothing else.
func TestPKCS7Unpad32(t *testing.T) {
	for _, c := range []struct {
		name string
		tail []byte
		ok   bool
	}{
		{"1 byte", []byte{1}, true},
		{"16 bytes", bytesOf(16, 16), true},
		{"17 bytes", bytesOf(17, 17), true},
		{"32 bytes", bytesOf(32, 32), true},
		{"33", bytesOf(33, 33), false},
		{"0", []byte{0}, false},
		{"uneven", append([]byte{19}, bytesOf(19, 20)...), false},
	} {
		b := append(bytesOf(64-len(c.tail), 'a'), c.tail...)
		n, ok := pkcs7Unpad(b, 32)
		if ok != c.ok || (ok && n != 64-int(c.tail[len(c.tail)-1])) {
			t.Errorf("%s: %d, %v", c.name, n, ok)
		}
	}
}

func bytesOf(n int, v byte) []byte { return bytes.Repeat([]byte{v}, n) }

// TestDecryptCBCSizeBound: encrypted data of exactly maxOpenDataBytes
// base64 characters is decrypted; one block more is refused before it is
// decoded.
func TestDecryptCBCSizeBound(t *testing.T) {
	key := bytes.Repeat([]byte{7}, 16)
	ivb := make([]byte, 16)
	// maxOpenDataBytes base64 characters are 3/4 as many bytes, a whole
	// number of blocks; the last block is all padding.
	pt := bytes.Repeat([]byte{16}, maxOpenDataBytes/4*3)
	block, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	ct := make([]byte, len(pt))
	cipher.NewCBCEncrypter(block, ivb).CryptBlocks(ct, pt)
	enc, iv := base64.StdEncoding.EncodeToString(ct), base64.StdEncoding.EncodeToString(ivb)
	if len(enc) != maxOpenDataBytes {
		t.Fatalf("test data is %d base64 characters, want %d", len(enc), maxOpenDataBytes)
	}
	if got, err := DecryptCBC(key, enc, iv, aes.BlockSize); err != nil || len(got) != len(pt)-16 {
		t.Fatalf("at the bound: %d bytes, %v", len(got), err)
	}
	longer := base64.StdEncoding.EncodeToString(append(ct, ct[:aes.BlockSize*3]...))
	if _, err := DecryptCBC(key, longer, iv, aes.BlockSize); !errors.Is(err, ErrBadData) || !strings.Contains(err.Error(), "longer than") {
		t.Fatalf("over the bound: %v", err)
	}
}
