package bench

import (
	"bytes"
	"context"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wxauth/caddy-wechat-auth/internal/avatar"
	"github.com/wxauth/caddy-wechat-auth/internal/handler"
	"github.com/wxauth/caddy-wechat-auth/internal/token"
	"github.com/wxauth/caddy-wechat-auth/internal/wechat"
	"github.com/wxauth/caddy-wechat-auth/store"
	"github.com/wxauth/caddy-wechat-auth/store/bolt"
)

// photo is a w×h opaque image of smooth gradients with noise of up to
// noise levels (a power of two), which sets how large it encodes.
func photo(w, h int, seed uint32, noise uint32) *image.RGBA {
	m := image.NewRGBA(image.Rect(0, 0, w, h))
	x := seed | 1
	for py := 0; py < h; py++ {
		for px := 0; px < w; px++ {
			x ^= x << 13
			x ^= x >> 17
			x ^= x << 5
			n := uint8(x & (noise - 1))
			m.SetRGBA(px, py, color.RGBA{uint8(px*255/w) + n, uint8(py*255/h) + n, uint8(seed) + n, 255})
		}
	}
	return m
}

func encode(tb testing.TB, format string, m image.Image) []byte {
	tb.Helper()
	var b bytes.Buffer
	var err error
	if format == "png" {
		err = png.Encode(&b, m)
	} else {
		err = jpeg.Encode(&b, m, &jpeg.Options{Quality: 85})
	}
	if err != nil {
		tb.Fatal(err)
	}
	return b.Bytes()
}

// avatarSite is a handler with the avatar endpoint on a durable bbolt
// store (every upload is one fsynced write), and an access token of a
// user of it.
type avatarSite struct {
	h   *handler.Handler
	tok string
}

func newAvatarSite(tb testing.TB, slots int) *avatarSite {
	tb.Helper()
	key, err := token.NewHMACKey([]byte(benchSecret), "")
	if err != nil {
		tb.Fatal(err)
	}
	svc, err := token.New(token.Config{Keys: []*token.Key{key}, Issuer: "bench", Audience: benchApp, AccessTTL: time.Hour})
	if err != nil {
		tb.Fatal(err)
	}
	st, err := bolt.Open(filepath.Join(tb.TempDir(), "avatar.db"), bolt.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = st.Close() })
	now := time.Now()
	sess := store.Session{ID: "bench-session", AppID: benchApp, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
	rt := store.RefreshToken{Hash: [32]byte{1}, SessionID: sess.ID, IssuedAt: now, ExpiresAt: sess.ExpiresAt, AccessID: "a1", AccessIssuedAt: now}
	u, sess, _, err := st.Login(context.Background(), benchApp, store.NewUser{OpenID: "o-bench"}, sess, rt, now)
	if err != nil {
		tb.Fatal(err)
	}
	tok, _, err := svc.Issue(token.Subject{UserID: u.ID, SessionID: sess.ID, OpenID: u.OpenID, AppID: benchApp}, "a1", now)
	if err != nil {
		tb.Fatal(err)
	}
	sealer, err := handler.NewSealer("bench-app-secret")
	if err != nil {
		tb.Fatal(err)
	}
	wx, err := wechat.New(wechat.Config{BaseURL: "http://127.0.0.1:1", AppID: benchApp, AppSecret: "bench-app-secret"})
	if err != nil {
		tb.Fatal(err)
	}
	h, err := handler.New(handler.Config{
		AppID: benchApp, Store: st, Tokens: svc, WeChat: wx, Sealer: sealer,
		Revocations: handler.NewRevocations(), RefreshSecret: []byte(benchSecret),
		Paths:   handler.Paths{Avatar: "/wx/avatar"},
		Avatars: avatar.NewProcessor(slots),
	})
	if err != nil {
		tb.Fatal(err)
	}
	return &avatarSite{h: h, tok: tok}
}

// upload sends one wx.uploadFile-style request and returns its status.
func (s *avatarSite) upload(body []byte, contentType string) int {
	r := httptest.NewRequest(http.MethodPost, "/wx/avatar", bytes.NewReader(body))
	r.Header.Set("Content-Type", contentType)
	r.Header.Set("Authorization", "Bearer "+s.tok)
	w := httptest.NewRecorder()
	s.h.Serve(w, r)
	return w.Code
}

func multipartOf(tb testing.TB, data []byte) ([]byte, string) {
	tb.Helper()
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	fw, err := mw.CreateFormFile("file", "tmp.jpg")
	if err != nil {
		tb.Fatal(err)
	}
	fw.Write(data)
	mw.Close()
	return b.Bytes(), mw.FormDataContentType()
}

// BenchmarkAvatarUpload measures one upload end to end (multipart parse,
// checks, decode, scale, encode, one durable bbolt write that also deletes
// the avatar it replaces): ns/op, uploads/s, and B/op, the memory an
// upload allocates; at the 4096-pixel limit and at a phone's usual size.
// Two images alternate, so each upload replaces the avatar.
func BenchmarkAvatarUpload(b *testing.B) {
	for _, c := range []struct {
		name   string
		format string
		side   int
		noise  uint32
	}{
		{"jpeg-4096", "jpeg", 4096, 4},
		{"png-4096", "png", 4096, 1},
		{"jpeg-1080", "jpeg", 1080, 8},
	} {
		b.Run(c.name, func(b *testing.B) {
			var bodies [2][]byte
			var cts [2]string
			for i := range bodies {
				bodies[i], cts[i] = multipartOf(b, encode(b, c.format, photo(c.side, c.side, uint32(i+1), c.noise)))
			}
			if len(bodies[0]) > handler.DefaultAvatarMaxSize {
				b.Fatalf("a %d-byte upload is over the default avatar_max_size", len(bodies[0]))
			}
			s := newAvatarSite(b, avatar.DefaultConcurrency)
			b.SetBytes(int64(len(bodies[0])))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if code := s.upload(bodies[i%2], cts[i%2]); code != http.StatusOK {
					b.Fatalf("upload: %d", code)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "uploads/s")
		})
	}
}

// BenchmarkAvatarPeakMemory sends 4096×4096 PNG uploads (of a few hundred
// KiB: the default avatar_max_size bounds what a request body holds) from
// 8 clients at once
// with 1, 2 and 4 decode slots and reports the peak heap in use while they
// run (sampled every millisecond), the uploads served and those refused
// busy (503) per second. The peak grows with the slots, not with the
// clients: uploads beyond the slots are refused before any pixel is
// decoded.
//
// The progressive-jpeg cases send a flat 4096×4096 progressive JPEG of
// 98 KB, which decodes into about 300 MiB (coefficients beside the
// image): the decodes admitted at once are bounded by their estimated
// memory, not only by the slots.
func BenchmarkAvatarPeakMemory(b *testing.B) {
	pngBody, pngCT := multipartOf(b, encode(b, "png", photo(4096, 4096, 7, 1)))
	jpgBody, jpgCT := multipartOf(b, flatProgressiveJPEG(4096, 4096))
	for _, c := range []struct {
		name  string
		slots int
		body  []byte
		ct    string
	}{
		{"slots-1", 1, pngBody, pngCT}, {"slots-2", 2, pngBody, pngCT}, {"slots-4", 4, pngBody, pngCT},
		{"progressive-jpeg/slots-2", 2, jpgBody, jpgCT}, {"progressive-jpeg/slots-4", 4, jpgBody, jpgCT},
	} {
		slots, body, ct := c.slots, c.body, c.ct
		b.Run(c.name, func(b *testing.B) {
			s := newAvatarSite(b, slots)
			runtime.GC()
			var base runtime.MemStats
			runtime.ReadMemStats(&base)
			var peak atomic.Uint64
			stop := make(chan struct{})
			sampled := make(chan struct{})
			go func() {
				defer close(sampled)
				t := time.NewTicker(time.Millisecond)
				defer t.Stop()
				var ms runtime.MemStats
				for {
					select {
					case <-stop:
						return
					case <-t.C:
						runtime.ReadMemStats(&ms)
						if ms.HeapInuse > peak.Load() {
							peak.Store(ms.HeapInuse)
						}
					}
				}
			}()
			var ok, busy atomic.Int64
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				var wg sync.WaitGroup
				for c := 0; c < 8; c++ {
					wg.Add(1)
					go func() {
						defer wg.Done()
						switch code := s.upload(body, ct); code {
						case http.StatusOK:
							ok.Add(1)
						case http.StatusServiceUnavailable:
							busy.Add(1)
						default:
							b.Errorf("upload: %d", code)
						}
					}()
				}
				wg.Wait()
			}
			b.StopTimer()
			close(stop)
			<-sampled
			b.ReportMetric(float64(peak.Load()-min(peak.Load(), base.HeapInuse))/(1<<20), "peak-heap-MiB")
			b.ReportMetric(float64(ok.Load())/b.Elapsed().Seconds(), "uploads/s")
			b.ReportMetric(float64(busy.Load())/b.Elapsed().Seconds(), "busy/s")
		})
	}
}

// flatProgressiveJPEG is a w×h progressive YCbCr JPEG (1×1 sampling) whose
// every block is flat, in one DC-only scan: a few kilobytes per million
// pixels that make image/jpeg allocate 4 bytes of coefficients per pixel
// and component.
func flatProgressiveJPEG(w, h int) []byte {
	var b bytes.Buffer
	seg := func(m byte, p []byte) {
		b.Write([]byte{0xff, m, byte((len(p) + 2) >> 8), byte(len(p) + 2)})
		b.Write(p)
	}
	b.Write([]byte{0xff, 0xd8})
	q := make([]byte, 65)
	for i := 1; i < len(q); i++ {
		q[i] = 1
	}
	seg(0xdb, q)
	seg(0xc2, []byte{8, byte(h >> 8), byte(h), byte(w >> 8), byte(w), 3, 1, 0x11, 0, 2, 0x11, 0, 3, 0x11, 0})
	seg(0xc4, append([]byte{0x00, 1}, make([]byte, 16)...)) // one 1-bit code: DC difference 0
	seg(0xda, []byte{3, 1, 0, 2, 0, 3, 0, 0, 0, 0})
	b.Write(make([]byte, ((w+7)/8*((h+7)/8)*3+7)/8))
	b.Write([]byte{0xff, 0xd9})
	return b.Bytes()
}
