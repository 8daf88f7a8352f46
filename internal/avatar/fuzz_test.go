package avatar

import (
	"bytes"
	"context"
	"errors"
	"image"
	"testing"
)

// FuzzProcess feeds arbitrary bytes to the upload parser: it must never
// panic, must answer one of its documented errors for anything it refuses,
// and anything it accepts must be a decodable image of at most OutSide
// pixels a side.
func FuzzProcess(f *testing.F) {
	f.Add(encodePNG(f, gradient(20, 10)))
	f.Add(encodeJPEG(f, gradient(20, 10)))
	f.Add(animatedGIF(f))
	f.Add(jpegWithEXIF(f))
	f.Add(pngClaiming(f, 50000, 50000))
	f.Add(jpegClaiming(f, 50000, 50000))
	f.Add(readTestdata(f, "blue-purple-pink.lossy.webp"))
	f.Add(readTestdata(f, "gopher-doc.with-alpha.lossless.webp"))
	f.Add([]byte("<svg></svg>"))
	p := NewProcessor(1)
	f.Fuzz(func(t *testing.T, data []byte) {
		im, err := p.Process(context.Background(), data)
		if err != nil {
			if !errors.Is(err, ErrNotImage) && !errors.Is(err, ErrTooLarge) && !errors.Is(err, ErrBroken) {
				t.Fatalf("undocumented error: %v", err)
			}
			return
		}
		cfg, _, err := image.DecodeConfig(bytes.NewReader(im.Data))
		if err != nil || cfg.Width > OutSide || cfg.Height > OutSide || cfg.Width < 1 || cfg.Height < 1 {
			t.Fatalf("accepted input gave %v %d×%d", err, cfg.Width, cfg.Height)
		}
	})
}
