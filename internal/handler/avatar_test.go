package handler

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"image"
	"image/color"
	"image/png"
	"io"
	"mime/multipart"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wxauth/caddy-wechat-auth/internal/avatar"
	"github.com/wxauth/caddy-wechat-auth/internal/wechat"
	"github.com/wxauth/caddy-wechat-auth/store"
)

// avatarHarness is the test harness with avatar_path /wx/avatar, a maximum
// upload size of 64 KiB, and cfg applied on top.
func avatarHarness(t *testing.T, cfg func(*Config)) *harness {
	t.Helper()
	hs := newHarness(t)
	c := hs.h.cfg
	c.Paths.Avatar = "/wx/avatar"
	c.AvatarMaxSize = 64 << 10
	if cfg != nil {
		cfg(&c)
	}
	h, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	hs.h = h
	return hs
}

// testPNG is an opaque w×h PNG.
func testPNG(t testing.TB, w, h int, shade uint8) []byte {
	t.Helper()
	m := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			m.Set(x, y, color.RGBA{uint8(x), uint8(y), shade, 255})
		}
	}
	var b bytes.Buffer
	if err := png.Encode(&b, m); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// multipartBody is a wx.uploadFile-style body: a form field, then the
// file in the part named field.
func multipartBody(t testing.TB, field, filename string, data []byte) (string, []byte) {
	t.Helper()
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	if err := mw.WriteField("purpose", "avatar"); err != nil {
		t.Fatal(err)
	}
	fw, err := mw.CreateFormFile(field, filename)
	if err != nil {
		t.Fatal(err)
	}
	fw.Write(data)
	mw.Close()
	return mw.FormDataContentType(), b.Bytes()
}

// send makes a request with a raw body and content type.
func (hs *harness) send(method, path, contentType string, body io.Reader, hdr ...string) result {
	hs.t.Helper()
	r := httptest.NewRequest(method, path, body)
	if contentType != "" {
		r.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	if res, _, _ := hs.h.Serve(w, r); res == ResultOK {
		fmt.Fprint(w, "upstream")
	}
	res := result{status: w.Code, header: w.Header(), raw: w.Body.String()}
	if strings.HasPrefix(w.Header().Get("Content-Type"), "application/json") {
		_ = json.Unmarshal(w.Body.Bytes(), &res.body)
	}
	return res
}

func (hs *harness) upload(access string, data []byte) result {
	hs.t.Helper()
	ct, body := multipartBody(hs.t, "file", "tmp_avatar.png", data)
	return hs.send("POST", "/wx/avatar", ct, bytes.NewReader(body), "Authorization", "Bearer "+access)
}

func avatarURLOf(t *testing.T, r result) string {
	t.Helper()
	u, _ := r.body["user"].(map[string]any)
	s, _ := u["avatar_url"].(string)
	if !strings.HasPrefix(s, "/wx/avatar/") {
		t.Fatalf("avatar_url %q in %s", s, r.raw)
	}
	return s
}

func TestAvatarUploadAndServe(t *testing.T) {
	hs := avatarHarness(t, nil)
	access, _ := hs.login("o1")
	r := hs.upload(access, testPNG(t, 600, 300, 1))
	want(t, r, 200, "")
	url := avatarURLOf(t, r)
	if !strings.HasSuffix(url, ".jpg") {
		t.Errorf("opaque image stored as %s, want a JPEG", url)
	}
	// The profile shows it too.
	p := hs.call("GET", "/wx/profile", "", "Authorization", "Bearer "+access)
	if got := p.body["user"].(map[string]any)["avatar_url"]; got != url {
		t.Errorf("profile avatar_url = %v, want %s", got, url)
	}

	// Served to anyone: no token.
	g := hs.send("GET", url, "", nil)
	if g.status != 200 {
		t.Fatalf("GET %s: %d %s", url, g.status, g.raw)
	}
	hash := strings.TrimSuffix(strings.TrimPrefix(url, "/wx/avatar/"), ".jpg")
	for k, v := range map[string]string{
		"Content-Type":           "image/jpeg",
		"X-Content-Type-Options": "nosniff",
		"Cache-Control":          "public, max-age=31536000, immutable",
		"ETag":                   `"` + hash + `"`,
	} {
		if got := g.header.Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	cfg, _, err := image.DecodeConfig(strings.NewReader(g.raw))
	if err != nil || cfg.Width != 512 || cfg.Height != 256 {
		t.Errorf("served image: %v %d×%d, want 512×256", err, cfg.Width, cfg.Height)
	}
	if g.header.Get("Content-Length") != fmt.Sprint(len(g.raw)) {
		t.Errorf("Content-Length %s for %d bytes", g.header.Get("Content-Length"), len(g.raw))
	}
	// HEAD: the headers, no body.
	if h := hs.send("HEAD", url, "", nil); h.status != 200 || h.raw != "" || h.header.Get("ETag") == "" {
		t.Errorf("HEAD: %d, body %d bytes, ETag %q", h.status, len(h.raw), h.header.Get("ETag"))
	}
	// Revalidation.
	for _, inm := range []string{`"` + hash + `"`, `W/"` + hash + `"`, `"x", "` + hash + `"`, "*"} {
		if c := hs.send("GET", url, "", nil, "If-None-Match", inm); c.status != 304 || c.raw != "" {
			t.Errorf("If-None-Match %s: %d with %d bytes, want 304", inm, c.status, len(c.raw))
		}
	}
	if c := hs.send("GET", url, "", nil, "If-None-Match", `"other"`); c.status != 200 {
		t.Errorf("If-None-Match of another tag: %d, want 200", c.status)
	}

	// Unknown or malformed names: 404; the stored hash with the other
	// extension: 404; wrong methods: 405.
	for _, path := range []string{
		"/wx/avatar/" + strings.Repeat("0", 64) + ".jpg",
		"/wx/avatar/" + hash + ".png",
		"/wx/avatar/" + hash,
		"/wx/avatar/" + hash + ".jpg/x",
		"/wx/avatar/../profile",
		"/wx/avatar/",
	} {
		if r := hs.send("GET", path, "", nil); r.status != 404 || r.body["error"] != CodeNotFound {
			t.Errorf("GET %s: %d %s, want 404 not_found", path, r.status, r.raw)
		}
	}
	want(t, hs.send("DELETE", url, "", nil), 405, CodeMethodNotAllowed)
	want(t, hs.send("POST", url, "image/png", bytes.NewReader(testPNG(t, 2, 2, 0)), "Authorization", "Bearer "+access), 405, CodeMethodNotAllowed)
	get := hs.send("GET", "/wx/avatar", "", nil, "Authorization", "Bearer "+access)
	want(t, get, 405, CodeMethodNotAllowed)
	if get.header.Get("Allow") != "POST" {
		t.Errorf("Allow = %q", get.header.Get("Allow"))
	}
	// Paths that only look like the avatar path are guarded as before.
	want(t, hs.send("GET", "/wx/avatarX/"+hash+".jpg", "", nil), 401, CodeInvalidToken)
}

func TestAvatarUploadRaw(t *testing.T) {
	hs := avatarHarness(t, nil)
	access, _ := hs.login("o1")
	// The declared type does not matter: the content does.
	r := hs.send("POST", "/wx/avatar", "image/jpeg", bytes.NewReader(testPNG(t, 40, 40, 2)), "Authorization", "Bearer "+access)
	want(t, r, 200, "")
	avatarURLOf(t, r)
}

func TestAvatarUploadNeedsToken(t *testing.T) {
	hs := avatarHarness(t, nil)
	ct, body := multipartBody(t, "file", "a.png", testPNG(t, 10, 10, 0))
	r := hs.send("POST", "/wx/avatar", ct, bytes.NewReader(body))
	want(t, r, 401, CodeInvalidToken)
	r = hs.send("POST", "/wx/avatar", ct, bytes.NewReader(body), "Authorization", "Bearer not-a-token")
	want(t, r, 401, CodeInvalidToken)
}

// pngHeaderClaiming is a PNG signature and IHDR declaring w×h (CRC
// valid), and nothing after it.
func pngHeaderClaiming(w, h uint32) []byte {
	b := []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR")
	b = binary.BigEndian.AppendUint32(b, w)
	b = binary.BigEndian.AppendUint32(b, h)
	b = append(b, 8, 6, 0, 0, 0)
	return binary.BigEndian.AppendUint32(b, crc32.ChecksumIEEE(b[12:]))
}

func TestAvatarUploadRefused(t *testing.T) {
	hs := avatarHarness(t, nil)
	access, _ := hs.login("o1")
	auth := []string{"Authorization", "Bearer " + access}
	okPNG := testPNG(t, 30, 30, 3)
	multi := func(field, name string, data []byte) (string, io.Reader) {
		ct, body := multipartBody(t, field, name, data)
		return ct, bytes.NewReader(body)
	}
	big := bytes.Repeat([]byte{0}, 64<<10+1)
	tests := []struct {
		name   string
		ct     string
		body   io.Reader
		status int
		code   string
	}{
		{"html named png", "", nil, 400, CodeInvalidRequest},
		{"svg", "image/svg+xml", strings.NewReader(`<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>`), 400, CodeInvalidRequest},
		{"bomb header", "image/png", bytes.NewReader(pngHeaderClaiming(50000, 50000)), 400, CodeInvalidRequest},
		{"truncated", "image/png", bytes.NewReader(okPNG[:len(okPNG)/2]), 400, CodeInvalidRequest},
		{"empty raw body", "image/png", strings.NewReader(""), 400, CodeInvalidRequest},
		{"no file part", "", nil, 400, CodeInvalidRequest},
		{"multipart without boundary", "multipart/form-data", strings.NewReader("x"), 400, CodeInvalidRequest},
		{"json", "application/json", strings.NewReader(`{"avatar_url":"x"}`), 415, CodeUnsupportedMediaType},
		{"no content type", "", strings.NewReader("x"), 415, CodeUnsupportedMediaType},
		{"raw too large", "image/png", bytes.NewReader(big), 413, CodePayloadTooLarge},
		{"raw too large chunked", "image/png", io.MultiReader(bytes.NewReader(big)), 413, CodePayloadTooLarge},
		{"multipart file too large", "", nil, 413, CodePayloadTooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			switch tc.name {
			case "html named png":
				tc.ct, tc.body = multi("file", "me.png", []byte("<!doctype html><script>alert(1)</script>"))
			case "no file part":
				tc.ct, tc.body = multi("image", "me.png", okPNG)
			case "multipart file too large":
				tc.ct, tc.body = multi("file", "me.png", big)
			}
			r := hs.send("POST", "/wx/avatar", tc.ct, tc.body, auth...)
			want(t, r, tc.status, tc.code)
		})
	}
	// Nothing was stored by any of them.
	p := hs.call("GET", "/wx/profile", "", auth...)
	if got := p.body["user"].(map[string]any)["avatar_url"]; got != "" {
		t.Errorf("avatar_url = %v after refused uploads", got)
	}
}

// busyProcessor refuses every upload as busy.
type busyProcessor struct{}

func (busyProcessor) Process(context.Context, []byte) (*avatar.Image, error) {
	return nil, avatar.ErrBusy
}

func TestAvatarUploadBusy(t *testing.T) {
	hs := avatarHarness(t, func(c *Config) { c.Avatars = busyProcessor{} })
	access, _ := hs.login("o1")
	r := hs.upload(access, testPNG(t, 10, 10, 0))
	want(t, r, 503, CodeBusy)
	if r.header.Get("Retry-After") != "1" {
		t.Errorf("Retry-After = %q, want 1", r.header.Get("Retry-After"))
	}
}

// setAvatarFails is a store whose SetAvatar fails while fail is set.
type setAvatarFails struct {
	store.Store
	fail atomic.Bool
}

func (s *setAvatarFails) SetAvatar(ctx context.Context, app string, id uint64, a store.Avatar, url string, now time.Time) (store.User, error) {
	if s.fail.Load() {
		return store.User{}, fmt.Errorf("test: %w", store.ErrUnavailable)
	}
	return s.Store.SetAvatar(ctx, app, id, a, url, now)
}

// TestAvatarReplace: a new avatar replaces the old one, which is deleted;
// a failed store keeps the old one in place and served.
func TestAvatarReplace(t *testing.T) {
	var fs *setAvatarFails
	hs := avatarHarness(t, func(c *Config) {
		fs = &setAvatarFails{Store: c.Store.(store.Store)}
		c.Store = fs
	})
	access, _ := hs.login("o1")
	first := avatarURLOf(t, hs.upload(access, testPNG(t, 20, 20, 1)))

	fs.fail.Store(true)
	r := hs.upload(access, testPNG(t, 20, 20, 2))
	want(t, r, 503, CodeStoreUnavailable)
	fs.fail.Store(false)
	p := hs.call("GET", "/wx/profile", "", "Authorization", "Bearer "+access)
	if got := p.body["user"].(map[string]any)["avatar_url"]; got != first {
		t.Fatalf("after a failed upload avatar_url = %v, want the old %s", got, first)
	}
	want(t, hs.send("GET", first, "", nil), 200, "")

	second := avatarURLOf(t, hs.upload(access, testPNG(t, 20, 20, 3)))
	if second == first {
		t.Fatal("two different images got one name")
	}
	want(t, hs.send("GET", second, "", nil), 200, "")
	want(t, hs.send("GET", first, "", nil), 404, CodeNotFound)

	// A profile update to an https avatar_url deletes the stored one too.
	want(t, hs.call("PATCH", "/wx/profile", `{"avatar_url":"https://thirdwx.qlogo.cn/mmopen/x/132"}`, "Authorization", "Bearer "+access), 200, "")
	want(t, hs.send("GET", second, "", nil), 404, CodeNotFound)
}

// TestAvatarSharedByTwoUsers: one picture uploaded by two users is one
// stored avatar, kept while either shows it.
func TestAvatarSharedByTwoUsers(t *testing.T) {
	hs := avatarHarness(t, nil)
	a1, _ := hs.login("o1")
	a2, _ := hs.login("o2")
	img := testPNG(t, 20, 20, 9)
	u1 := avatarURLOf(t, hs.upload(a1, img))
	u2 := avatarURLOf(t, hs.upload(a2, img))
	if u1 != u2 {
		t.Fatalf("one picture, two names: %s %s", u1, u2)
	}
	hs.upload(a1, testPNG(t, 20, 20, 10))
	want(t, hs.send("GET", u1, "", nil), 200, "")
	hs.upload(a2, testPNG(t, 20, 20, 10))
	want(t, hs.send("GET", u1, "", nil), 404, CodeNotFound)
}

// TestAvatarProfileRoundTrip: a profile update that sends back the user's
// own stored avatar_url keeps it; another stored-avatar path is refused.
func TestAvatarProfileRoundTrip(t *testing.T) {
	hs := avatarHarness(t, nil)
	access, _ := hs.login("o1")
	auth := []string{"Authorization", "Bearer " + access}
	url := avatarURLOf(t, hs.upload(access, testPNG(t, 20, 20, 4)))
	r := hs.call("PUT", "/wx/profile", `{"nickname":"Ann","avatar_url":"`+url+`","gender":2}`, auth...)
	want(t, r, 200, "")
	if got := avatarURLOf(t, r); got != url {
		t.Fatalf("avatar_url = %s, want %s", got, url)
	}
	want(t, hs.send("GET", url, "", nil), 200, "")
	other := "/wx/avatar/" + strings.Repeat("0", 64) + ".jpg"
	want(t, hs.call("PUT", "/wx/profile", `{"avatar_url":"`+other+`"}`, auth...), 400, CodeInvalidRequest)
	want(t, hs.call("PUT", "/wx/profile", `{"avatar_url":"/elsewhere.png"}`, auth...), 400, CodeInvalidRequest)
	if got := avatarURLOf(t, hs.call("GET", "/wx/profile", "", auth...)); got != url {
		t.Fatalf("after refused updates avatar_url = %s", got)
	}
}

func TestAvatarConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  func(*Config)
	}{
		{"path /", func(c *Config) { c.Paths.Avatar = "/" }},
		{"trailing slash", func(c *Config) { c.Paths.Avatar = "/wx/avatar/" }},
		{"size too small", func(c *Config) { c.AvatarMaxSize = 10 }},
		{"size too large", func(c *Config) { c.AvatarMaxSize = MaxAvatarMaxSize + 1 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hs := newHarness(t)
			c := hs.h.cfg
			c.Paths.Avatar = "/wx/avatar"
			tc.cfg(&c)
			if _, err := New(c); err == nil {
				t.Fatal("New accepted the config")
			}
		})
	}
}

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		bad  bool
	}{
		{in: "2MiB", want: 2 << 20},
		{in: "512KiB", want: 512 << 10},
		{in: "1048576", want: 1 << 20},
		{in: "100B", want: 100},
		{in: "1MB", want: 1000000},
		{in: "300KB", want: 300000},
		{in: "", bad: true},
		{in: "MiB", bad: true},
		{in: "-1", bad: true},
		{in: "1.5MiB", bad: true},
		{in: "2 MiB", bad: true},
		{in: "2mib", bad: true},
		{in: "2GiB", bad: true},
		{in: "99999999999999999999", bad: true},
		{in: "9223372036854775807KiB", bad: true},
	} {
		got, err := ParseSize(tc.in)
		if (err != nil) != tc.bad || (!tc.bad && got != tc.want) {
			t.Errorf("ParseSize(%q) = %d, %v; want %d (bad %v)", tc.in, got, err, tc.want, tc.bad)
		}
	}
	if FormatSize(2<<20) != "2MiB" || FormatSize(512<<10) != "512KiB" || FormatSize(1000) != "1000 bytes" {
		t.Error("FormatSize")
	}
}

// fakeChecker is msg_sec_check: a text containing "risky" is risky, one
// containing "review" needs review; with down set, WeChat is unreachable.
type fakeChecker struct {
	calls atomic.Int32
	down  atomic.Bool
}

func (f *fakeChecker) MsgSecCheck(_ context.Context, openid, content string) (*wechat.SecCheckResult, error) {
	f.calls.Add(1)
	if openid == "" {
		return nil, errors.New("no openid")
	}
	if f.down.Load() {
		return nil, fmt.Errorf("test: %w", wechat.ErrUnavailable)
	}
	switch {
	case strings.Contains(content, "risky"):
		return &wechat.SecCheckResult{Suggest: wechat.SuggestRisky, Label: 20001}, nil
	case strings.Contains(content, "review"):
		return &wechat.SecCheckResult{Suggest: wechat.SuggestReview, Label: 21000}, nil
	}
	return &wechat.SecCheckResult{Suggest: wechat.SuggestPass, Label: 100}, nil
}

func TestContentCheckProfile(t *testing.T) {
	fc := &fakeChecker{}
	hs := avatarHarness(t, func(c *Config) { c.ContentCheck = fc })
	access, _ := hs.login("o1")
	auth := []string{"Authorization", "Bearer " + access}
	want(t, hs.call("PATCH", "/wx/profile", `{"nickname":"Ann"}`, auth...), 200, "")
	for _, nick := range []string{"a risky name", "please review me"} {
		want(t, hs.call("PATCH", "/wx/profile", `{"nickname":"`+nick+`","gender":2}`, auth...), 400, CodeContentRejected)
	}
	fc.down.Store(true)
	r := hs.call("PATCH", "/wx/profile", `{"nickname":"Bob"}`, auth...)
	want(t, r, 503, CodeWeChatUnavailable)
	if r.header.Get("Retry-After") == "" {
		t.Error("503 without Retry-After")
	}
	// A profile update without a nickname is not checked.
	want(t, hs.call("PATCH", "/wx/profile", `{"gender":1}`, auth...), 200, "")
	fc.down.Store(false)
	u := hs.call("GET", "/wx/profile", "", auth...).body["user"].(map[string]any)
	if u["nickname"] != "Ann" || u["gender"] != float64(1) {
		t.Errorf("user = %v; want nickname Ann (nothing rejected stored) and gender 1", u)
	}
	if n := fc.calls.Load(); n != 4 {
		t.Errorf("checks = %d, want 4", n)
	}
}

func TestContentCheckLogin(t *testing.T) {
	fc := &fakeChecker{}
	hs := avatarHarness(t, func(c *Config) { c.ContentCheck = fc })
	login := func(openid, nick string) result {
		hs.n++
		code := fmt.Sprintf("code-%d", hs.n)
		hs.wx.addCode(code, openid, "")
		return hs.call("POST", "/wx/login", `{"code":"`+code+`","nickname":"`+nick+`"}`)
	}
	want(t, login("o-new", "risky one"), 400, CodeContentRejected)
	if _, err := hs.st.UserByOpenID(context.Background(), testApp, "o-new"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a rejected login created the user: %v", err)
	}
	fc.down.Store(true)
	want(t, login("o-new", "Ann"), 503, CodeWeChatUnavailable)
	fc.down.Store(false)
	r := login("o-new", "Ann")
	want(t, r, 200, "")
	if r.body["user"].(map[string]any)["nickname"] != "Ann" {
		t.Errorf("new user %v", r.body["user"])
	}
	// A returning user's login never changes the profile, so its nickname
	// is neither checked nor stored.
	before := fc.calls.Load()
	want(t, login("o-new", "risky again"), 200, "")
	if fc.calls.Load() != before {
		t.Error("a returning user's login nickname was checked")
	}
}

func TestContentCheckOff(t *testing.T) {
	hs := avatarHarness(t, nil)
	access, _ := hs.login("o1")
	want(t, hs.call("PATCH", "/wx/profile", `{"nickname":"risky"}`, "Authorization", "Bearer "+access), 200, "")
}
