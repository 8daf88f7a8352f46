package avatar

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/color"
	"image/jpeg"
	"strings"
	"testing"
)

// TestSniffBoundaries: each format is told by its whole magic, a byte
// short is no format, and a WebP needs all 12 bytes of its RIFF header
// (fewer never reads past the end).
func TestSniffBoundaries(t *testing.T) {
	for _, tc := range []struct {
		data string
		want Format
	}{
		{"\x89PNG\r\n\x1a\n", PNG},
		{"\x89PNG\r\n\x1a", ""},
		{"\xff\xd8\xff", JPEG},
		{"\xff\xd8", ""},
		{"GIF87a", GIF},
		{"GIF89a", GIF},
		{"GIF88a", ""},
		{"GIF8", ""},
		{"RIFF\x04\x00\x00\x00WEBP", WebP},
		{"RIFF\x04\x00\x00\x00WEB", ""},
		{"RIFF", ""},
		{"RIFF\x04\x00\x00\x00WAVE", ""},
		{"XIFF\x04\x00\x00\x00WEBP", ""},
		{"", ""},
	} {
		if got := Sniff([]byte(tc.data)); got != tc.want {
			t.Errorf("Sniff(%q) = %q, want %q", tc.data, got, tc.want)
		}
	}
	// A bare 12-byte WebP header is a WebP that cannot be read, not
	// something else.
	if _, err := NewProcessor(1).Process(context.Background(), []byte("RIFF\x04\x00\x00\x00WEBP")); !errors.Is(err, ErrBroken) {
		t.Fatalf("12-byte WebP header: %v, want ErrBroken", err)
	}
}

// TestHeaderBoundsEachSide: each side is checked on its own, against 1 and
// against MaxSide, before anything is decoded.
func TestHeaderBoundsEachSide(t *testing.T) {
	for _, tc := range []struct {
		w, h uint32
		want error
	}{
		{1, MaxSide + 1, ErrTooLarge},
		{MaxSide + 1, 1, ErrTooLarge},
		{0, 1, ErrBroken},
		{1, 0, ErrBroken},
		{1 << 31, 1, ErrBroken}, // not a positive 31-bit PNG dimension
	} {
		if _, _, err := Check(pngClaiming(t, tc.w, tc.h)); !errors.Is(err, tc.want) {
			t.Errorf("PNG header %d×%d: %v, want %v", tc.w, tc.h, err, tc.want)
		}
	}
	for _, tc := range []struct {
		w, h uint16
		want error
	}{
		{1, MaxSide + 1, ErrTooLarge},
		{MaxSide + 1, 1, ErrTooLarge},
	} {
		if _, _, err := Check(jpegClaiming(t, tc.w, tc.h)); !errors.Is(err, tc.want) {
			t.Errorf("JPEG header %d×%d: %v, want %v", tc.w, tc.h, err, tc.want)
		}
	}
	// GIF's decoder reports a logical screen of 0 pixels without an error.
	for _, wh := range [][2]byte{{0, 30}, {40, 0}} {
		g := animatedGIF(t)
		g[6], g[7], g[8], g[9] = wh[0], 0, wh[1], 0 // logical screen width, height (little-endian)
		if _, _, err := Check(g); !errors.Is(err, ErrBroken) {
			t.Errorf("GIF screen %d×%d: %v, want ErrBroken", wh[0], wh[1], err)
		}
	}
	f, cfg, err := Check(jpegClaiming(t, MaxSide, MaxSide))
	if err != nil || f != JPEG || cfg.Width != MaxSide || cfg.Height != MaxSide {
		t.Fatalf("JPEG header %d×%d: %s %d×%d %v, want it accepted", MaxSide, MaxSide, f, cfg.Width, cfg.Height, err)
	}
}

// TestDecodeSlots: a Processor decodes at most its concurrency of images
// at once, DefaultConcurrency when asked for less than one.
func TestDecodeSlots(t *testing.T) {
	data := encodePNG(t, gradient(4, 4))
	for _, tc := range []struct{ asked, slots int }{
		{1, 1},
		{3, 3},
		{0, DefaultConcurrency},
		{-1, DefaultConcurrency},
	} {
		p := NewProcessor(tc.asked)
		for i := 0; i < tc.slots-1; i++ {
			select {
			case p.slots <- struct{}{}:
			default:
				t.Fatalf("NewProcessor(%d) has %d slots, want %d", tc.asked, i, tc.slots)
			}
		}
		if _, err := p.Process(context.Background(), data); err != nil {
			t.Errorf("NewProcessor(%d) with %d decodes running: %v, want one more allowed", tc.asked, tc.slots-1, err)
		}
		select {
		case p.slots <- struct{}{}:
		default:
			t.Fatalf("NewProcessor(%d) has %d slots, want %d", tc.asked, tc.slots-1, tc.slots)
		}
		if _, err := p.Process(context.Background(), data); !errors.Is(err, ErrBusy) {
			t.Errorf("NewProcessor(%d) with %d decodes running: %v, want ErrBusy", tc.asked, tc.slots, err)
		}
	}
}

// TestProcessCanceled: an upload whose request is gone is not decoded and
// holds no slot.
func TestProcessCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	p := NewProcessor(1)
	if im, err := p.Process(ctx, encodePNG(t, gradient(4, 4))); im != nil || !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled: %v, %v", im, err)
	}
	if len(p.slots) != 0 {
		t.Fatal("a canceled upload holds a slot")
	}
}

// TestParseNameDigits: every lower-case hex digit is accepted, and the
// characters next to each range are not.
func TestParseNameDigits(t *testing.T) {
	h := strings.Repeat("0123456789abcdef", 4)
	if hash, ct, ok := ParseName(h + ".jpg"); !ok || hash != h || ct != "image/jpeg" {
		t.Fatalf("ParseName of every digit: %q %q %v", hash, ct, ok)
	}
	for _, c := range "/:`g.-" {
		for _, at := range []int{0, 63} {
			name := h[:at] + string(c) + h[at+1:] + ".png"
			if _, _, ok := ParseName(name); ok {
				t.Errorf("ParseName(%q) accepted", name)
			}
		}
	}
}

// TestFitRounding: the short side rounds to the nearest pixel on wide and
// tall images alike and is never 0.
func TestFitRounding(t *testing.T) {
	for _, tc := range []struct{ w, h, ww, wh int }{
		{333, 1000, 170, 512},
		{1000, 333, 512, 170},
		{1024, 1023, 512, 512}, // 511.5 rounds up
		{1023, 1024, 512, 512},
		{1027, 1000, 512, 499}, // 498.5… rounds to 499
		{1000, 1027, 499, 512},
		{2048, 3, 512, 1}, // 0.75 rounds to 1
		{3, 2048, 1, 512},
		{4096, 7, 512, 1}, // 0.875
		{7, 4096, 1, 512},
		{4096, 1, 512, 1}, // 0.125 is clamped to 1
		{1, 4096, 1, 512},
		{513, 513, 512, 512},
		{513, 512, 512, 511}, // 511.0…
	} {
		if w, h := fit(tc.w, tc.h, OutSide); w != tc.ww || h != tc.wh {
			t.Errorf("fit(%d, %d) = %d×%d, want %d×%d", tc.w, tc.h, w, h, tc.ww, tc.wh)
		}
	}
}

// TestScaleKeepsWholeImage: an image over OutSide is scaled, never cropped,
// also when only its long side changes: the far edge of a 600×3 (or 3×600)
// image, blue from 540 on and red before, is blue in the 512×3 avatar.
func TestScaleKeepsWholeImage(t *testing.T) {
	for _, tall := range []bool{false, true} {
		// Long side 600, short side 3; blue from 540 on along the long side.
		at := func(long, short int) (x, y int) {
			if tall {
				return short, long
			}
			return long, short
		}
		w, h := at(600, 3)
		src := image.NewRGBA(image.Rect(0, 0, w, h))
		for l := 0; l < 600; l++ {
			for s := 0; s < 3; s++ {
				c := color.RGBA{255, 0, 0, 255}
				if l >= 540 {
					c = color.RGBA{0, 0, 255, 255}
				}
				x, y := at(l, s)
				src.Set(x, y, c)
			}
		}
		im, err := NewProcessor(1).Process(context.Background(), encodePNG(t, src))
		if err != nil {
			t.Fatal(err)
		}
		if ww, wh := at(OutSide, 3); im.Width != ww || im.Height != wh {
			t.Fatalf("tall %v: avatar is %d×%d, want %d×%d", tall, im.Width, im.Height, ww, wh)
		}
		m, err := jpeg.Decode(bytes.NewReader(im.Data))
		if err != nil {
			t.Fatal(err)
		}
		r, _, b, _ := m.At(at(OutSide-1, 1)).RGBA()
		if b>>8 < 180 || r>>8 > 80 {
			t.Fatalf("tall %v: far edge is r=%d b=%d; want blue (the image was cropped, not scaled)", tall, r>>8, b>>8)
		}
		r, _, b, _ = m.At(at(0, 1)).RGBA()
		if r>>8 < 180 || b>>8 > 80 {
			t.Fatalf("tall %v: near edge is r=%d b=%d; want red", tall, r>>8, b>>8)
		}
	}
}
