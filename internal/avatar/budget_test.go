package avatar

import (
	"bytes"
	"context"
	"errors"
	"testing"
)

// flatJPEG builds a w×h JPEG of nc components (1×1 sampling) whose every
// 8×8 block is flat, in one DC-only scan: a few kilobytes per million
// pixels. sof is 0xc0 (baseline) or 0xc2 (progressive). It is the cheap
// upload that makes the decoder allocate the most.
func flatJPEG(sof byte, w, h, nc int) []byte {
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
	if nc == 4 {
		seg(0xee, []byte("Adobe\x00\x64\x00\x00\x00\x00\x00")) // CMYK
	}
	frame := []byte{8, byte(h >> 8), byte(h), byte(w >> 8), byte(w), byte(nc)}
	for i := 0; i < nc; i++ {
		frame = append(frame, byte(i+1), 0x11, 0)
	}
	seg(sof, frame)
	// One Huffman code of one bit: DC difference 0 (and, for baseline, AC
	// end of block).
	seg(0xc4, append([]byte{0x00, 1}, make([]byte, 16)...))
	if sof == 0xc0 {
		seg(0xc4, append([]byte{0x10, 1}, make([]byte, 16)...))
	}
	scan := []byte{byte(nc)}
	for i := 0; i < nc; i++ {
		scan = append(scan, byte(i+1), 0)
	}
	bits := ((w + 7) / 8) * ((h + 7) / 8) * nc
	if sof == 0xc0 {
		scan = append(scan, 0, 63, 0)
		bits *= 2
	} else {
		scan = append(scan, 0, 0, 0)
	}
	seg(0xda, scan)
	b.Write(make([]byte, (bits+7)/8))
	b.Write([]byte{0xff, 0xd9})
	return b.Bytes()
}

func TestJPEGProgressive(t *testing.T) {
	for _, c := range []struct {
		name string
		data []byte
		want bool
	}{
		{"baseline", flatJPEG(0xc0, 16, 16, 3), false},
		{"progressive", flatJPEG(0xc2, 16, 16, 3), true},
		{"encoded by image/jpeg", encodeJPEG(t, gradient(20, 10)), false},
		{"with EXIF before the frame", jpegWithEXIF(t), false},
		{"truncated before the frame", flatJPEG(0xc0, 16, 16, 3)[:30], true},
		{"garbage", []byte("\xff\xd8\x00\x00\x00\x00"), true},
	} {
		if got := jpegProgressive(c.data); got != c.want {
			t.Errorf("%s: progressive %v, want %v", c.name, got, c.want)
		}
	}
}

// TestDecodeMemory checks the estimates against the decoders: a flat
// progressive JPEG of a few hundred kilobytes costs several times what a
// baseline one does, and an image within OutSide needs no scaler rows.
func TestDecodeMemory(t *testing.T) {
	est := func(data []byte) int64 {
		t.Helper()
		f, cfg, err := Check(data)
		if err != nil {
			t.Fatal(err)
		}
		return DecodeMemory(f, cfg, data)
	}
	const px = MaxSide * MaxSide
	scaler := int64(OutSide) * MaxSide * 32
	for _, c := range []struct {
		name string
		data []byte
		want int64
	}{
		{"baseline YCbCr", flatJPEG(0xc0, MaxSide, MaxSide, 3), 3*px + scaler},
		{"progressive YCbCr", flatJPEG(0xc2, MaxSide, MaxSide, 3), 15*px + scaler},
		{"progressive CMYK", flatJPEG(0xc2, MaxSide, MaxSide, 4), 20*px + scaler},
		{"progressive gray", flatJPEG(0xc2, MaxSide, MaxSide, 1), 5*px + scaler},
		{"8-bit RGBA PNG", pngClaiming(t, MaxSide, MaxSide), 4*px + scaler},
		{"small PNG", encodePNG(t, gradient(100, 50)), 4 * 100 * 50},
	} {
		if got := est(c.data); got != c.want {
			t.Errorf("%s: estimate %d MiB, want %d MiB", c.name, got>>20, c.want>>20)
		}
	}
	if got := est(flatJPEG(0xc2, MaxSide, MaxSide, 4)); got > 2*SlotMemory {
		t.Errorf("a progressive CMYK JPEG at the limit (%d MiB) does not fit a two-slot processor alone", got>>20)
	}
}

// TestProcessMemoryBudget: with one ordinary upload at the size limit
// being decoded, a free slot is not enough for a progressive JPEG at the
// limit (a 100 KB upload that decodes into about 300 MiB): it is refused
// busy, so two of them can never be decoded at once. Alone it is
// accepted, and its share of the budget is given back.
func TestProcessMemoryBudget(t *testing.T) {
	p := NewProcessor(2)
	ordinary := pngClaiming(t, MaxSide, MaxSide)
	f, cfg, err := Check(ordinary)
	if err != nil {
		t.Fatal(err)
	}
	held := DecodeMemory(f, cfg, ordinary)
	if !p.reserve(held) {
		t.Fatal("an idle processor refused an ordinary decode")
	}
	bomb := flatJPEG(0xc2, MaxSide, MaxSide, 3)
	if len(bomb) > 200<<10 {
		t.Fatalf("the test image is %d bytes; it should be a small upload", len(bomb))
	}
	if _, err := p.Process(context.Background(), bomb); !errors.Is(err, ErrBusy) {
		t.Fatalf("progressive JPEG beside an ordinary decode: %v, want ErrBusy", err)
	}
	// A small image still fits beside the ordinary one.
	if _, err := p.Process(context.Background(), encodePNG(t, gradient(40, 40))); err != nil {
		t.Fatalf("small image beside an ordinary decode: %v", err)
	}
	p.release(held)
	im, err := p.Process(context.Background(), bomb)
	if err != nil {
		t.Fatalf("progressive JPEG alone: %v", err)
	}
	if im.Width != OutSide || im.Height != OutSide {
		t.Fatalf("stored %d×%d", im.Width, im.Height)
	}
	if p.inUse != 0 || len(p.slots) != 0 {
		t.Fatalf("after every decode returned: %d bytes and %d slots held", p.inUse, len(p.slots))
	}
}

// manyScanJPEG is a flat gray progressive JPEG at the MaxSide limit
// followed by n AC refinement scans, each of which makes the decoder walk
// every block again while taking 35 bytes of the upload.
func manyScanJPEG(n int) []byte {
	base := flatJPEG(0xc2, MaxSide, MaxSide, 1)
	var b bytes.Buffer
	b.Write(base[:len(base)-2]) // without EOI
	seg := func(m byte, p []byte) {
		b.Write([]byte{0xff, m, byte((len(p) + 2) >> 8), byte(len(p) + 2)})
		b.Write(p)
	}
	// AC table 1: two 2-bit codes, EOB14 (0xe0) and EOB3 (0x30).
	seg(0xc4, append(append([]byte{0x11, 0, 2}, make([]byte, 14)...), 0xe0, 0x30))
	// One scan's data: eight end-of-band runs of 32767 blocks and one of
	// 8: the 512×512 blocks, without a single coefficient.
	var bits []byte
	put := func(v uint32, n int) {
		for i := n - 1; i >= 0; i-- {
			bits = append(bits, byte(v>>uint(i))&1)
		}
	}
	for i := 0; i < 8; i++ {
		put(0, 2)
		put(0x3fff, 14)
	}
	put(1, 2)
	put(0, 3)
	for len(bits)%8 != 0 {
		bits = append(bits, 1)
	}
	var data []byte
	for i := 0; i < len(bits); i += 8 {
		var c byte
		for _, bit := range bits[i : i+8] {
			c = c<<1 | bit
		}
		data = append(data, c)
		if c == 0xff {
			data = append(data, 0)
		}
	}
	for i := 0; i < n; i++ {
		seg(0xda, []byte{1, 1, 0x01, 1, 63, 0x10}) // Ss 1, Se 63, Ah 1, Al 0
		b.Write(data)
	}
	b.Write([]byte{0xff, 0xd9})
	return b.Bytes()
}

// TestProcessJPEGScanLimit: a progressive JPEG with more scans than
// MaxJPEGScans is refused from its header, before a decode slot is taken
// (each such scan costs the decoder a walk over every block: tens of
// milliseconds for 35 bytes), while one at the limit is decoded.
func TestProcessJPEGScanLimit(t *testing.T) {
	p := NewProcessor(1)
	over := manyScanJPEG(MaxJPEGScans) // plus the DC scan: one too many
	if _, _, err := Check(over); !errors.Is(err, ErrBroken) {
		t.Fatalf("%d scans in %d bytes: %v, want ErrBroken", MaxJPEGScans+1, len(over), err)
	}
	if _, err := p.Process(context.Background(), over); !errors.Is(err, ErrBroken) {
		t.Fatalf("Process of %d scans: %v, want ErrBroken", MaxJPEGScans+1, err)
	}
	if _, err := p.Process(context.Background(), manyScanJPEG(3)); err != nil {
		t.Fatalf("4 scans: %v", err)
	}
}
