package avatar

import (
	"context"
	"image"
	"image/color"
	"testing"
)

// noisy is an opaque w×h image that compresses badly, as photos do.
func noisy(w, h int) *image.RGBA {
	m := image.NewRGBA(image.Rect(0, 0, w, h))
	x := uint32(2463534242)
	for i := 0; i < len(m.Pix); i += 4 {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		m.Pix[i], m.Pix[i+1], m.Pix[i+2], m.Pix[i+3] = uint8(x), uint8(x>>8), uint8(x>>16), 255
	}
	return m
}

// BenchmarkProcess measures one upload at the size limit (4096×4096) and
// a phone-sized one, per format: ns/op is the cost of an upload, B/op the
// memory it allocates (the decoded image dominates).
func BenchmarkProcess(b *testing.B) {
	photo := func(w, h int) image.Image {
		m := noisy(w, h)
		for y := 0; y < h; y += 7 {
			m.Set(0, y, color.RGBA{255, 255, 255, 255})
		}
		return m
	}
	cases := []struct {
		name string
		data []byte
	}{
		{"jpeg-4096", encodeJPEG(b, photo(4096, 4096))},
		{"png-4096", encodePNG(b, photo(4096, 4096))},
		{"jpeg-1080", encodeJPEG(b, photo(1080, 1080))},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			p := NewProcessor(1)
			b.SetBytes(int64(len(c.data)))
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if _, err := p.Process(context.Background(), c.data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
