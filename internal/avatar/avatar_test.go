package avatar

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"hash/crc32"
	"image"
	"image/color"
	"image/color/palette"
	"image/gif"
	"image/jpeg"
	"image/png"
	"os"
	"strings"
	"sync"
	"testing"
)

// gradient is an opaque w×h test image.
func gradient(w, h int) *image.RGBA {
	m := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			m.Set(x, y, color.RGBA{uint8(x * 255 / w), uint8(y * 255 / h), 128, 255})
		}
	}
	return m
}

func encodePNG(t testing.TB, m image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, m); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func encodeJPEG(t testing.TB, m image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := jpeg.Encode(&b, m, nil); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// animatedGIF has two 40×30 frames: red, then blue.
func animatedGIF(t testing.TB) []byte {
	t.Helper()
	frame := func(c color.Color) *image.Paletted {
		p := image.NewPaletted(image.Rect(0, 0, 40, 30), palette.Plan9)
		for i := range p.Pix {
			p.Pix[i] = uint8(p.Palette.Index(c))
		}
		return p
	}
	var b bytes.Buffer
	err := gif.EncodeAll(&b, &gif.GIF{
		Image: []*image.Paletted{frame(color.RGBA{255, 0, 0, 255}), frame(color.RGBA{0, 0, 255, 255})},
		Delay: []int{10, 10},
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// pngClaiming is a valid 1×1 PNG whose IHDR (CRC fixed up) declares w×h.
func pngClaiming(t testing.TB, w, h uint32) []byte {
	t.Helper()
	b := encodePNG(t, gradient(1, 1))
	// Signature (8), length (4), "IHDR" (4), then width and height.
	binary.BigEndian.PutUint32(b[16:], w)
	binary.BigEndian.PutUint32(b[20:], h)
	crc := crc32.ChecksumIEEE(b[12:29])
	binary.BigEndian.PutUint32(b[29:], crc)
	return b
}

// jpegClaiming is a small JPEG whose SOF0 segment declares w×h.
func jpegClaiming(t testing.TB, w, h uint16) []byte {
	t.Helper()
	b := encodeJPEG(t, gradient(8, 8))
	i := bytes.Index(b, []byte{0xff, 0xc0})
	if i < 0 {
		t.Fatal("no SOF0 in the encoded JPEG")
	}
	// FFC0, length (2), precision (1), height (2), width (2).
	binary.BigEndian.PutUint16(b[i+5:], h)
	binary.BigEndian.PutUint16(b[i+7:], w)
	return b
}

// gpsMarker is text planted in an EXIF GPS block; it must never come back.
const gpsMarker = "GPS-39.9042N-116.4074E-home"

// jpegWithEXIF is a JPEG with an APP1 Exif segment holding a TIFF header,
// an IFD0 with a GPSInfo pointer and a GPS IFD whose latitude reference
// is gpsMarker (as an ASCII value).
func jpegWithEXIF(t testing.TB) []byte {
	t.Helper()
	plain := encodeJPEG(t, gradient(64, 48))
	var tiff bytes.Buffer
	le := binary.LittleEndian
	tiff.WriteString("II*\x00")
	_ = binary.Write(&tiff, le, uint32(8)) // IFD0 at 8
	// IFD0: one entry, GPSInfo (0x8825) LONG 1 -> offset 26.
	_ = binary.Write(&tiff, le, uint16(1))
	_ = binary.Write(&tiff, le, uint16(0x8825))
	_ = binary.Write(&tiff, le, uint16(4))
	_ = binary.Write(&tiff, le, uint32(1))
	_ = binary.Write(&tiff, le, uint32(26))
	_ = binary.Write(&tiff, le, uint32(0)) // no next IFD
	// GPS IFD at 26: GPSLatitudeRef (1) ASCII n -> offset 44.
	_ = binary.Write(&tiff, le, uint16(1))
	_ = binary.Write(&tiff, le, uint16(1))
	_ = binary.Write(&tiff, le, uint16(2))
	_ = binary.Write(&tiff, le, uint32(len(gpsMarker)+1))
	_ = binary.Write(&tiff, le, uint32(44))
	_ = binary.Write(&tiff, le, uint32(0))
	tiff.WriteString(gpsMarker + "\x00")
	payload := append([]byte("Exif\x00\x00"), tiff.Bytes()...)
	seg := []byte{0xff, 0xe1, 0, 0}
	binary.BigEndian.PutUint16(seg[2:], uint16(len(payload)+2))
	seg = append(seg, payload...)
	out := append([]byte{}, plain[:2]...) // SOI
	out = append(out, seg...)
	return append(out, plain[2:]...)
}

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestProcess(t *testing.T) {
	alpha := image.NewNRGBA(image.Rect(0, 0, 30, 20))
	for i := range alpha.Pix {
		alpha.Pix[i] = 0x80
	}
	okPNG := encodePNG(t, gradient(300, 200))
	okJPEG := encodeJPEG(t, gradient(300, 200))
	anim := animatedGIF(t)
	tests := []struct {
		name   string
		data   []byte
		err    error
		w, h   int
		ext    string
		source Format
	}{
		{name: "png", data: okPNG, w: 300, h: 200, ext: "jpg", source: PNG},
		{name: "png with alpha stays png", data: encodePNG(t, alpha), w: 30, h: 20, ext: "png", source: PNG},
		{name: "jpeg", data: okJPEG, w: 300, h: 200, ext: "jpg", source: JPEG},
		{name: "wide jpeg scaled", data: encodeJPEG(t, gradient(2000, 1000)), w: 512, h: 256, ext: "jpg", source: JPEG},
		{name: "tall png scaled", data: encodePNG(t, gradient(700, 1400)), w: 256, h: 512, ext: "jpg", source: PNG},
		{name: "4096 square accepted", data: encodePNG(t, image.NewGray(image.Rect(0, 0, 4096, 4096))), w: 512, h: 512, ext: "jpg", source: PNG},
		{name: "gif animated", data: anim, w: 40, h: 30, ext: "jpg", source: GIF},
		{name: "webp lossy", data: readTestdata(t, "blue-purple-pink.lossy.webp"), w: 150, h: 100, ext: "jpg", source: WebP},
		{name: "webp with alpha", data: readTestdata(t, "gopher-doc.with-alpha.lossless.webp"), w: 75, h: 100, ext: "png", source: WebP},
		{name: "png claiming 50000x50000", data: pngClaiming(t, 50000, 50000), err: ErrTooLarge},
		{name: "jpeg claiming 50000x50000", data: jpegClaiming(t, 50000, 50000), err: ErrTooLarge},
		{name: "png 4097 wide", data: pngClaiming(t, 4097, 1), err: ErrTooLarge},
		{name: "png claiming 0x0", data: pngClaiming(t, 0, 0), err: ErrBroken},
		{name: "truncated png", data: okPNG[:len(okPNG)/2], err: ErrBroken},
		{name: "truncated png header", data: okPNG[:12], err: ErrBroken},
		{name: "truncated jpeg", data: okJPEG[:len(okJPEG)/2], err: ErrBroken},
		{name: "truncated gif", data: anim[:len(anim)/3], err: ErrBroken},
		{name: "html named png", data: []byte("<!doctype html><html><script>alert(1)</script></html>"), err: ErrNotImage},
		{name: "svg", data: []byte(`<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><script>alert(1)</script></svg>`), err: ErrNotImage},
		{name: "empty", data: nil, err: ErrNotImage},
		{name: "bmp", data: []byte("BM\x36\x00\x00\x00\x00\x00\x00\x00\x36\x00\x00\x00"), err: ErrNotImage},
		{name: "riff not webp", data: []byte("RIFF\x10\x00\x00\x00WAVEfmt "), err: ErrNotImage},
		{name: "webp header only", data: []byte("RIFF\x10\x00\x00\x00WEBPVP8L"), err: ErrBroken},
	}
	p := NewProcessor(1)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			im, err := p.Process(context.Background(), tc.data)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("Process: got %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Process: %v", err)
			}
			if im.Width != tc.w || im.Height != tc.h || im.Ext != tc.ext || im.Source != tc.source {
				t.Fatalf("got %d×%d %s from %s, want %d×%d %s from %s", im.Width, im.Height, im.Ext, im.Source, tc.w, tc.h, tc.ext, tc.source)
			}
			sum := sha256.Sum256(im.Data)
			if im.Hash != hex.EncodeToString(sum[:]) {
				t.Fatal("hash is not the SHA-256 of the stored bytes")
			}
			// What is stored is itself a valid image of the stated type
			// and size.
			if f := Sniff(im.Data); (im.Ext == "png") != (f == PNG) || (im.Ext == "jpg") != (f == JPEG) {
				t.Fatalf("stored bytes are %q, ext %q", f, im.Ext)
			}
			cfg, _, err := image.DecodeConfig(bytes.NewReader(im.Data))
			if err != nil || cfg.Width != tc.w || cfg.Height != tc.h {
				t.Fatalf("stored image: %v %d×%d", err, cfg.Width, cfg.Height)
			}
			if hash, ct, ok := ParseName(im.Name()); !ok || hash != im.Hash || ct != im.ContentType {
				t.Fatalf("ParseName(%q) = %q %q %v", im.Name(), hash, ct, ok)
			}
		})
	}
}

func TestProcessStripsMetadata(t *testing.T) {
	src := jpegWithEXIF(t)
	if !bytes.Contains(src, []byte(gpsMarker)) || !bytes.Contains(src, []byte("Exif")) {
		t.Fatal("test image lacks its EXIF block")
	}
	// Trailing bytes after the image (a polyglot) must not survive either.
	src = append(src, []byte("<html>trailer</html>")...)
	im, err := NewProcessor(1).Process(context.Background(), src)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{gpsMarker, "Exif", "GPS", "trailer"} {
		if bytes.Contains(im.Data, []byte(s)) {
			t.Errorf("stored avatar contains %q", s)
		}
	}
}

func TestProcessGIFFirstFrame(t *testing.T) {
	im, err := NewProcessor(1).Process(context.Background(), animatedGIF(t))
	if err != nil {
		t.Fatal(err)
	}
	m, err := jpeg.Decode(bytes.NewReader(im.Data))
	if err != nil {
		t.Fatal(err)
	}
	r, g, b, _ := m.At(20, 15).RGBA()
	if r>>8 < 200 || g>>8 > 60 || b>>8 > 60 {
		t.Fatalf("centre pixel is %d,%d,%d; want the first frame's red", r>>8, g>>8, b>>8)
	}
}

func TestProcessSameImageSameName(t *testing.T) {
	p := NewProcessor(1)
	data := encodePNG(t, gradient(100, 100))
	a, err := p.Process(context.Background(), data)
	if err != nil {
		t.Fatal(err)
	}
	b, err := p.Process(context.Background(), data)
	if err != nil {
		t.Fatal(err)
	}
	if a.Name() != b.Name() {
		t.Fatalf("one image, two names: %s, %s", a.Name(), b.Name())
	}
}

// TestProcessBusy holds every decode slot and checks that another upload
// is refused with ErrBusy at once, then accepted once a slot is free.
func TestProcessBusy(t *testing.T) {
	p := NewProcessor(2)
	p.slots <- struct{}{}
	p.slots <- struct{}{}
	data := encodePNG(t, gradient(10, 10))
	if _, err := p.Process(context.Background(), data); !errors.Is(err, ErrBusy) {
		t.Fatalf("with every slot taken: %v, want ErrBusy", err)
	}
	// A bad upload is refused from its header without waiting for a slot.
	if _, err := p.Process(context.Background(), pngClaiming(t, 50000, 1)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("bomb while busy: %v, want ErrTooLarge", err)
	}
	<-p.slots
	if _, err := p.Process(context.Background(), data); err != nil {
		t.Fatalf("with a slot free: %v", err)
	}
	if len(p.slots) != 1 {
		t.Fatalf("%d slots held after Process returned, want 1", len(p.slots))
	}
}

// TestProcessConcurrency runs more uploads at once than there are slots:
// each either succeeds or is refused busy, and the slots are all free
// afterwards.
func TestProcessConcurrency(t *testing.T) {
	p := NewProcessor(2)
	data := encodeJPEG(t, gradient(600, 400))
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := p.Process(context.Background(), data)
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil && !errors.Is(err, ErrBusy) {
			t.Fatal(err)
		}
	}
	if len(p.slots) != 0 {
		t.Fatalf("%d slots still held", len(p.slots))
	}
}

func TestParseName(t *testing.T) {
	h := strings.Repeat("ab", 32)
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{h + ".png", true},
		{h + ".jpg", true},
		{h + ".gif", false},
		{h + ".PNG", false},
		{strings.ToUpper(h) + ".png", false},
		{h[:63] + ".png", false},
		{h + "a.png", false},
		{"../" + h[3:] + ".png", false},
		{h + ".png/", false},
		{"", false},
	} {
		if _, _, ok := ParseName(tc.name); ok != tc.ok {
			t.Errorf("ParseName(%q) ok = %v, want %v", tc.name, ok, tc.ok)
		}
	}
}

func TestFit(t *testing.T) {
	for _, tc := range []struct{ w, h, ww, wh int }{
		{512, 512, 512, 512},
		{100, 50, 100, 50},
		{4096, 4096, 512, 512},
		{4096, 1, 512, 1},
		{1, 4096, 1, 512},
		{1000, 333, 512, 170},
	} {
		if w, h := fit(tc.w, tc.h, OutSide); w != tc.ww || h != tc.wh {
			t.Errorf("fit(%d, %d) = %d×%d, want %d×%d", tc.w, tc.h, w, h, tc.ww, tc.wh)
		}
	}
}
