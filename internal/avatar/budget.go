package avatar

import (
	"image"
	"image/color"
)

// SlotMemory is the decode memory each of a Processor's slots stands for:
// the most that an ordinary image at the MaxSide limit needs (a 16-bit
// PNG: 128 MiB of pixels, plus 64 MiB for the scaler's intermediate rows).
// A Processor admits decodes while their estimated memory (DecodeMemory)
// fits in concurrency × SlotMemory, so an image that costs more than one
// slot (a progressive or CMYK JPEG, an interlaced PNG) takes more of the
// budget, and a single decode never exceeds the whole of it.
const SlotMemory = 192 << 20

// DecodeMemory estimates the peak memory, in bytes, of decoding and
// scaling an image of format f whose header is cfg, from the header alone:
// the decoded pixels, the decoder's own buffers (a progressive JPEG keeps
// 4 bytes of coefficients per pixel and component; an interlaced PNG a
// pass image beside the full one) and the scaler's intermediate rows. It
// errs on the high side when the header does not say.
func DecodeMemory(f Format, cfg image.Config, data []byte) int64 {
	px := int64(cfg.Width) * int64(cfg.Height)
	var pixels int64
	switch f {
	case PNG:
		bpp := int64(8)
		switch cfg.ColorModel {
		case color.GrayModel:
			bpp = 1
		case color.Gray16Model:
			bpp = 2
		case color.RGBAModel, color.NRGBAModel:
			bpp = 4
		default:
			if _, ok := cfg.ColorModel.(color.Palette); ok {
				bpp = 1
			}
		}
		pixels = px * bpp
		// IHDR's interlace method is byte 28 of the file.
		if len(data) <= 28 || data[28] != 0 {
			pixels += pixels / 2
		}
	case JPEG:
		comps := int64(4)
		switch cfg.ColorModel {
		case color.GrayModel:
			comps = 1
		case color.YCbCrModel:
			comps = 3
		}
		pixels = px * comps
		if jpegProgressive(data) {
			pixels += px * comps * 4
		}
	case GIF:
		pixels = px * 2 // the frame, and its copy when interlaced
	case WebP:
		pixels = px * 8 // lossless: the ARGB words and the NRGBA image
		if len(data) >= 16 && string(data[12:16]) == "VP8 " {
			pixels = px * 3 // lossy: 4:2:0 YCbCr (and alpha)
		}
	default:
		pixels = px * 8
	}
	// draw's BiLinear scaler keeps dst-width × src-height intermediate
	// pixels of four float64s.
	var scale int64
	if cfg.Width > OutSide || cfg.Height > OutSide {
		w, _ := fit(cfg.Width, cfg.Height, OutSide)
		scale = int64(w) * int64(cfg.Height) * 32
	}
	return pixels + scale
}

// jpegProgressive reports whether the JPEG's frame header is a progressive
// one (SOF2), walking the marker segments before it; true when the walk
// cannot tell, so the estimate stays on the high side.
func jpegProgressive(data []byte) bool {
	i := 2 // after SOI
	for i+4 <= len(data) {
		if data[i] != 0xff {
			return true
		}
		m := data[i+1]
		if m == 0xff { // fill byte
			i++
			continue
		}
		switch {
		case m == 0xc0 || m == 0xc1:
			return false
		case m >= 0xc2 && m <= 0xcf && m != 0xc4 && m != 0xc8 && m != 0xcc:
			return true
		case m == 0xd8 || (m >= 0xd0 && m <= 0xd7) || m == 0x01:
			i += 2
			continue
		}
		i += 2 + (int(data[i+2])<<8 | int(data[i+3]))
	}
	return true
}

// reserve takes a decode slot and n bytes of the memory budget (at most
// the whole budget, so one image alone always fits), or reports false
// when either is not free. release gives them back.
func (p *Processor) reserve(n int64) bool {
	n = min(n, p.budget)
	select {
	case p.slots <- struct{}{}:
	default:
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.inUse+n > p.budget {
		<-p.slots
		return false
	}
	p.inUse += n
	return true
}

func (p *Processor) release(n int64) {
	n = min(n, p.budget)
	p.mu.Lock()
	p.inUse -= n
	p.mu.Unlock()
	<-p.slots
}
