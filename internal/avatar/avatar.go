// Package avatar turns an uploaded image into a stored avatar: it judges
// the image by its content (PNG, JPEG, WebP or GIF), refuses images over
// MaxSide pixels on either side from the header alone, decodes at most a
// few images at once, scales to at most OutSide pixels on the long side and
// re-encodes, so nothing of the upload but its pixels survives (no EXIF, no
// GPS position, no comments, no trailing bytes). The stored image is named
// by the SHA-256 of its bytes.
package avatar

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"image"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io"
	"sync"

	"golang.org/x/image/draw"
	"golang.org/x/image/webp"
)

// Limits and defaults.
const (
	// MaxSide is the largest width or height accepted; a larger image is
	// refused from its header, before any pixel is decoded.
	MaxSide = 4096
	// OutSide is the longest side of a stored avatar.
	OutSide = 512
	// DefaultConcurrency is how many images are decoded at once by default.
	DefaultConcurrency = 2
	// JPEGQuality is the quality of re-encoded opaque avatars.
	JPEGQuality = 85
	// MaxJPEGScans is the most scans a JPEG may have. Every scan of a
	// progressive JPEG walks all its blocks again, and a scan that
	// refines them all can take some 35 bytes: without a bound, a 2 MiB
	// upload would keep a decode slot busy for most of an hour. Encoders
	// write about 10 (libjpeg's progressive script), never near this.
	MaxJPEGScans = 100
)

// Errors of Process. ErrNotImage, ErrTooLarge and ErrBroken describe the
// upload (the caller answers 400); ErrBusy means the server is busy (503).
var (
	// ErrNotImage: the bytes are not a PNG, JPEG, WebP or GIF image.
	ErrNotImage = errors.New("not a PNG, JPEG, WebP or GIF image")
	// ErrTooLarge: the header declares more than MaxSide pixels on a side.
	ErrTooLarge = fmt.Errorf("image larger than %d×%d pixels", MaxSide, MaxSide)
	// ErrBroken: the image's header or pixel data cannot be decoded.
	ErrBroken = errors.New("broken image")
	// ErrBusy: as many images as allowed are being decoded right now.
	ErrBusy = errors.New("too many images being processed")
)

// Format is an image format recognised by its first bytes.
type Format string

// The accepted formats.
const (
	PNG  Format = "png"
	JPEG Format = "jpeg"
	WebP Format = "webp"
	GIF  Format = "gif"
)

// Sniff names the format of data from its magic bytes, or "" when it is
// none of the accepted ones. File names and declared types play no part.
func Sniff(data []byte) Format {
	switch {
	case bytes.HasPrefix(data, []byte("\x89PNG\r\n\x1a\n")):
		return PNG
	case bytes.HasPrefix(data, []byte("\xff\xd8\xff")):
		return JPEG
	case bytes.HasPrefix(data, []byte("GIF87a")), bytes.HasPrefix(data, []byte("GIF89a")):
		return GIF
	case len(data) >= 12 && string(data[:4]) == "RIFF" && string(data[8:12]) == "WEBP":
		return WebP
	}
	return ""
}

type codec struct {
	config func(io.Reader) (image.Config, error)
	decode func(io.Reader) (image.Image, error)
}

// codecs decode each accepted format; gif.Decode returns the first frame.
var codecs = map[Format]codec{
	PNG:  {png.DecodeConfig, png.Decode},
	JPEG: {jpeg.DecodeConfig, jpeg.Decode},
	WebP: {webp.DecodeConfig, webp.Decode},
	GIF:  {gif.DecodeConfig, gif.Decode},
}

// Image is a processed avatar, ready to store.
type Image struct {
	// Hash is the lower-case hex SHA-256 of Data.
	Hash string
	// Ext is the file extension without a dot: "png" or "jpg".
	Ext string
	// ContentType is "image/png" or "image/jpeg".
	ContentType string
	// Data is the encoded image.
	Data []byte
	// Width and Height are the stored image's dimensions.
	Width, Height int
	// Source is the format of the upload.
	Source Format
}

// Name is the avatar's file name: Hash.Ext.
func (im *Image) Name() string { return im.Hash + "." + im.Ext }

// Processor checks, scales and re-encodes uploads. The zero value is not
// usable; call NewProcessor.
type Processor struct {
	slots  chan struct{}
	budget int64 // concurrency × SlotMemory

	mu    sync.Mutex
	inUse int64 // estimated memory of the decodes running now
}

// NewProcessor returns a Processor that decodes at most concurrency images
// at once (DefaultConcurrency when concurrency < 1), and only while their
// estimated memory (DecodeMemory) fits in concurrency × SlotMemory: the
// peak memory of uploads stays bounded by that, whatever the images'
// encoding (a 100 KB progressive CMYK JPEG of 4096×4096 pixels decodes
// into over 300 MiB).
func NewProcessor(concurrency int) *Processor {
	if concurrency < 1 {
		concurrency = DefaultConcurrency
	}
	return &Processor{slots: make(chan struct{}, concurrency), budget: int64(concurrency) * SlotMemory}
}

// Check sniffs data and reads its dimensions from the header, without
// decoding pixels; a JPEG with more than MaxJPEGScans scans is refused
// too (ErrBroken).
func Check(data []byte) (Format, image.Config, error) {
	f := Sniff(data)
	if f == "" {
		return "", image.Config{}, ErrNotImage
	}
	cfg, err := codecs[f].config(bytes.NewReader(data))
	if err != nil {
		return f, cfg, fmt.Errorf("%w: reading the %s header: %v", ErrBroken, f, err)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 {
		return f, cfg, fmt.Errorf("%w: %s header declares %d×%d pixels", ErrBroken, f, cfg.Width, cfg.Height)
	}
	if cfg.Width > MaxSide || cfg.Height > MaxSide {
		return f, cfg, fmt.Errorf("%w: %s header declares %d×%d", ErrTooLarge, f, cfg.Width, cfg.Height)
	}
	// Start-of-scan markers: in entropy-coded data a 0xff byte is always
	// followed by 0x00 or a marker, so this counts every scan (and at
	// worst a few marker-like bytes of metadata too).
	if f == JPEG && bytes.Count(data, []byte{0xff, 0xda}) > MaxJPEGScans {
		return f, cfg, fmt.Errorf("%w: more than %d JPEG scans", ErrBroken, MaxJPEGScans)
	}
	return f, cfg, nil
}

// Process turns an upload into an avatar: Check, then (holding one of the
// decode slots and its estimated memory; ErrBusy when they are not free)
// decode, scale so the long side
// is at most OutSide pixels, and encode: PNG when any pixel is not fully
// opaque, else JPEG at JPEGQuality.
func (p *Processor) Process(ctx context.Context, data []byte) (*Image, error) {
	f, cfg, err := Check(data)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	cost := DecodeMemory(f, cfg, data)
	if !p.reserve(cost) {
		return nil, ErrBusy
	}
	defer p.release(cost)

	src, err := codecs[f].decode(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%w: decoding the %s image: %v", ErrBroken, f, err)
	}
	b := src.Bounds()
	// A decoder must give what its header declared; never trust it blindly.
	if b.Dx() <= 0 || b.Dy() <= 0 || b.Dx() > MaxSide || b.Dy() > MaxSide {
		return nil, fmt.Errorf("%w: decoded %s image is %d×%d (header: %d×%d)", ErrBroken, f, b.Dx(), b.Dy(), cfg.Width, cfg.Height)
	}
	w, h := fit(b.Dx(), b.Dy(), OutSide)
	dst := image.NewRGBA(image.Rect(0, 0, w, h))
	if w == b.Dx() && h == b.Dy() {
		draw.Draw(dst, dst.Bounds(), src, b.Min, draw.Src)
	} else {
		draw.BiLinear.Scale(dst, dst.Bounds(), src, b, draw.Src, nil)
	}
	src = nil

	out := &Image{Width: w, Height: h, Source: f}
	var buf bytes.Buffer
	if dst.Opaque() {
		out.Ext, out.ContentType = "jpg", "image/jpeg"
		err = jpeg.Encode(&buf, dst, &jpeg.Options{Quality: JPEGQuality})
	} else {
		out.Ext, out.ContentType = "png", "image/png"
		err = (&png.Encoder{CompressionLevel: png.BestCompression}).Encode(&buf, dst)
	}
	if err != nil {
		return nil, fmt.Errorf("encoding the avatar: %w", err)
	}
	out.Data = buf.Bytes()
	sum := sha256.Sum256(out.Data)
	out.Hash = hex.EncodeToString(sum[:])
	return out, nil
}

// fit scales w×h so that the long side is at most max, keeping the aspect
// ratio (rounded to the nearest pixel, at least 1).
func fit(w, h, max int) (int, int) {
	if w <= max && h <= max {
		return w, h
	}
	if w >= h {
		return max, clamp1((h*max + w/2) / w)
	}
	return clamp1((w*max + h/2) / h), max
}

func clamp1(n int) int {
	if n < 1 {
		return 1
	}
	return n
}

// ParseName splits an avatar file name "<hash>.<ext>" as Image.Name makes
// it: 64 lower-case hex digits, then "png" or "jpg". It returns the hash and
// the content type, or ok=false for any other name.
func ParseName(name string) (hash, contentType string, ok bool) {
	if len(name) != 64+4 || name[64] != '.' {
		return "", "", false
	}
	for i := 0; i < 64; i++ {
		c := name[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return "", "", false
		}
	}
	switch name[65:] {
	case "png":
		return name[:64], "image/png", true
	case "jpg":
		return name[:64], "image/jpeg", true
	}
	return "", "", false
}
