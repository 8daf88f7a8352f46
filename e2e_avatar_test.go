package wechatauth_test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"hash/crc32"
	"image"
	"image/color"
	"image/jpeg"
	"io"
	"mime/multipart"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wxauth/caddy-wechat-auth/internal/pgtest"
)

// photoJPEG is a w×h JPEG with an EXIF block holding marker, as a phone
// camera writes one.
func photoJPEG(t *testing.T, w, h int, shade uint8, marker string) []byte {
	t.Helper()
	m := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			m.Set(x, y, color.RGBA{uint8(x), uint8(y), shade, 255})
		}
	}
	var b bytes.Buffer
	if err := jpeg.Encode(&b, m, nil); err != nil {
		t.Fatal(err)
	}
	out := b.Bytes()
	payload := append([]byte("Exif\x00\x00II*\x00\x08\x00\x00\x00"), marker...)
	seg := binary.BigEndian.AppendUint16([]byte{0xff, 0xe1}, uint16(len(payload)+2))
	return append(append(append([]byte{}, out[:2]...), append(seg, payload...)...), out[2:]...)
}

// uploadBody is what wx.uploadFile({name: 'file', filePath}) sends.
func uploadBody(t *testing.T, data []byte) (string, []byte) {
	t.Helper()
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	fw, err := mw.CreateFormFile("file", "tmp_3f2a.jpg")
	if err != nil {
		t.Fatal(err)
	}
	fw.Write(data)
	mw.Close()
	return mw.FormDataContentType(), b.Bytes()
}

// bombPNG is a PNG header declaring 50000×50000 pixels.
func bombPNG() []byte {
	b := []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR")
	b = binary.BigEndian.AppendUint32(b, 50000)
	b = binary.BigEndian.AppendUint32(b, 50000)
	b = append(b, 8, 2, 0, 0, 0)
	return binary.BigEndian.AppendUint32(b, crc32.ChecksumIEEE(b[12:]))
}

// sendRaw sends body with contentType and an optional bearer token.
func sendRaw(t *testing.T, client *http.Client, method, url, contentType string, body []byte, tok string, hdr ...string) answer {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	a := answer{status: res.StatusCode, header: res.Header, raw: string(raw)}
	if strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") {
		_ = json.Unmarshal(raw, &a.body)
	}
	return a
}

func avatarOf(t *testing.T, a answer) string {
	t.Helper()
	u, _ := a.body["user"].(map[string]any)
	url, _ := u["avatar_url"].(string)
	if !strings.HasPrefix(url, "/wx/avatar/") {
		t.Fatalf("no stored avatar_url in %s", a.raw)
	}
	return url
}

// TestE2EAvatar runs the avatar upload, its serving and the nickname check
// through a real Caddy with the emulator and the bbolt store.
func TestE2EAvatar(t *testing.T) {
	e := newE2E(t, "avatar_max_size 256KiB\n\t\tcontent_check on")
	lg := e.login("o-avatar")
	tok := lg["token"].(string)

	const gps = "GPS 39.9042N 116.4074E"
	ct, body := uploadBody(t, photoJPEG(t, 1024, 768, 7, gps))
	up := sendRaw(t, e.client, "POST", siteURL+"/wx/avatar", ct, body, tok)
	expect(t, up, 200, "")
	url := avatarOf(t, up)

	// Served to anyone, without a token, as a scaled JPEG without EXIF.
	img := sendRaw(t, e.client, "GET", siteURL+url, "", nil, "")
	expect(t, img, 200, "")
	for k, v := range map[string]string{
		"Content-Type":           "image/jpeg",
		"Cache-Control":          "public, max-age=31536000, immutable",
		"X-Content-Type-Options": "nosniff",
	} {
		if got := img.header.Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	cfg, _, err := image.DecodeConfig(strings.NewReader(img.raw))
	if err != nil || cfg.Width != 512 || cfg.Height != 384 {
		t.Errorf("served image: %v %d×%d, want 512×384", err, cfg.Width, cfg.Height)
	}
	if strings.Contains(img.raw, "GPS") || strings.Contains(img.raw, "Exif") {
		t.Error("the served avatar kept the EXIF block")
	}
	etag := img.header.Get("ETag")
	expect(t, sendRaw(t, e.client, "GET", siteURL+url, "", nil, "", "If-None-Match", etag), 304, "")
	expect(t, sendRaw(t, e.client, "GET", siteURL+"/wx/avatar/"+strings.Repeat("a", 64)+".jpg", "", nil, ""), 404, "not_found")

	// Bad uploads: clear errors, nothing changes.
	ct, body = uploadBody(t, bombPNG())
	expect(t, sendRaw(t, e.client, "POST", siteURL+"/wx/avatar", ct, body, tok), 400, "invalid_request")
	ct, body = uploadBody(t, []byte("<html><script>alert(1)</script></html>"))
	expect(t, sendRaw(t, e.client, "POST", siteURL+"/wx/avatar", ct, body, tok), 400, "invalid_request")
	ct, body = uploadBody(t, bytes.Repeat([]byte{0xff}, 300<<10))
	expect(t, sendRaw(t, e.client, "POST", siteURL+"/wx/avatar", ct, body, tok), 413, "payload_too_large")
	expect(t, sendRaw(t, e.client, "POST", siteURL+"/wx/avatar", ct, body, ""), 401, "invalid_token")
	prof := e.do("GET", siteURL+"/wx/profile", "", "", bearer(tok))
	if avatarOf(t, prof) != url {
		t.Fatalf("after refused uploads the profile shows %s", prof.raw)
	}

	// A new avatar replaces the old one, which is deleted.
	up2 := sendRaw(t, e.client, "POST", siteURL+"/wx/avatar", "image/jpeg", photoJPEG(t, 64, 64, 200, ""), tok)
	expect(t, up2, 200, "")
	expect(t, sendRaw(t, e.client, "GET", siteURL+avatarOf(t, up2), "", nil, ""), 200, "")
	expect(t, sendRaw(t, e.client, "GET", siteURL+url, "", nil, ""), 404, "not_found")

	// Nicknames go through the emulator's msg_sec_check.
	expect(t, e.do("PATCH", siteURL+"/wx/profile", "application/json", `{"nickname":"a risky name"}`, bearer(tok)), 400, "content_rejected")
	expect(t, e.do("PATCH", siteURL+"/wx/profile", "application/json", `{"nickname":"小明"}`, bearer(tok)), 200, "")
	e.fault(map[string]any{"path": "/wxa/msg_sec_check", "errcode": -1, "times": 2})
	down := e.do("PATCH", siteURL+"/wx/profile", "application/json", `{"nickname":"小红"}`, bearer(tok))
	expect(t, down, 503, "wechat_unavailable")
	if nick := e.do("GET", siteURL+"/wx/profile", "", "", bearer(tok)).body["user"].(map[string]any)["nickname"]; nick != "小明" {
		t.Errorf("nickname = %v, want 小明 (nothing stored unchecked)", nick)
	}
	a := e.postJSON(siteURL+"/wx/login", map[string]string{"code": e.mint("o-new-risky"), "nickname": "risky"}, nil)
	expect(t, a, 400, "content_rejected")
	a = e.postJSON(siteURL+"/wx/login", map[string]string{"code": e.mint("o-new-risky"), "nickname": "Ann"}, nil)
	expect(t, a, 200, "")
	if a.body["new_user"] != true || a.body["user"].(map[string]any)["nickname"] != "Ann" {
		t.Errorf("login after a rejected one: %s", a.raw)
	}
}

// TestE2EAvatarPostgres runs two Caddy instances on one PostgreSQL schema:
// an avatar uploaded through one is served by the other, and replacing it
// through the other deletes it for both.
func TestE2EAvatarPostgres(t *testing.T) {
	c := newPGCluster(t)
	dsn, _ := pgtest.SchemaDSN(t)
	var a, b *caddyProc
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); a = c.site("a", dsn) }()
	go func() { defer wg.Done(); b = c.site("b", dsn) }()
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	tok := c.login(a, "o-pg-avatar").body["token"].(string)
	ct, body := uploadBody(t, photoJPEG(t, 300, 300, 1, "GPS"))
	up := sendRaw(t, c.client, "POST", a.site+"/wx/avatar", ct, body, tok)
	expect(t, up, 200, "")
	url := avatarOf(t, up)
	fromA := sendRaw(t, c.client, "GET", a.site+url, "", nil, "")
	fromB := sendRaw(t, c.client, "GET", b.site+url, "", nil, "")
	expect(t, fromB, 200, "")
	if fromA.raw != fromB.raw || fromB.header.Get("ETag") != fromA.header.Get("ETag") {
		t.Fatal("the two instances serve different bytes for one avatar")
	}
	if prof := c.call("GET", b.site+"/wx/profile", nil, tok); avatarOf(t, prof) != url {
		t.Fatalf("profile on B: %s", prof.raw)
	}
	up2 := sendRaw(t, c.client, "POST", b.site+"/wx/avatar", "image/png", photoJPEG(t, 40, 40, 99, ""), tok)
	expect(t, up2, 200, "")
	expect(t, sendRaw(t, c.client, "GET", a.site+avatarOf(t, up2), "", nil, ""), 200, "")
	expect(t, sendRaw(t, c.client, "GET", a.site+url, "", nil, ""), 404, "not_found")

	// Many uploads at once on both instances: each answers 200 or 503
	// busy, never anything else, and every user ends with a served avatar.
	var mu sync.Mutex
	statuses := map[int]int{}
	wg = sync.WaitGroup{}
	for i := 0; i < 6; i++ {
		p := a
		if i%2 == 1 {
			p = b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := sendRaw(t, c.client, "POST", p.site+"/wx/avatar", "image/jpeg", photoJPEG(t, 900, 900, uint8(i), ""), tok)
			mu.Lock()
			statuses[r.status]++
			mu.Unlock()
			if r.status == 503 && r.header.Get("Retry-After") == "" {
				t.Error("503 without Retry-After")
			}
		}()
	}
	wg.Wait()
	for s := range statuses {
		if s != 200 && s != 503 {
			t.Errorf("concurrent uploads answered %v", statuses)
		}
	}
	final := avatarOf(t, c.call("GET", a.site+"/wx/profile", nil, tok))
	within(t, 2*time.Second, "final avatar served by B", func() bool {
		return sendRaw(t, c.client, "GET", b.site+final, "", nil, "").status == 200
	})
}
