package handler

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/wxauth/caddy-wechat-auth/internal/avatar"
	"github.com/wxauth/caddy-wechat-auth/store"
)

// Avatar upload limits.
const (
	// DefaultAvatarMaxSize is the largest image accepted by default.
	DefaultAvatarMaxSize = 2 << 20
	// MaxAvatarMaxSize is the largest avatar_max_size allowed: a bigger
	// upload could only be a photo far beyond what a 512-pixel avatar needs.
	MaxAvatarMaxSize = 32 << 20
	// MinAvatarMaxSize is the smallest avatar_max_size allowed.
	MinAvatarMaxSize = 1 << 10
	// multipartSlack is what a multipart body may hold besides the file:
	// boundaries, part headers and small form fields (wx.uploadFile's
	// formData).
	multipartSlack = 64 << 10
	// maxMultipartParts bounds the parts read before the file part.
	maxMultipartParts = 16
	// avatarBusyRetry is the Retry-After of an upload refused because as
	// many images as allowed are being decoded.
	avatarBusyRetry = time.Second
	// avatarCacheControl: an avatar's name is the hash of its bytes, so
	// its content never changes.
	avatarCacheControl = "public, max-age=31536000, immutable"
)

// AvatarProcessor turns an upload into the avatar to store;
// *avatar.Processor implements it. Its errors wrap avatar.ErrNotImage,
// ErrTooLarge, ErrBroken (400) or ErrBusy (503 with Retry-After).
type AvatarProcessor interface {
	Process(ctx context.Context, data []byte) (*avatar.Image, error)
}

// avatarUpload serves POST avatar_path: the image as multipart/form-data
// (the part named "file", as wx.uploadFile sends it) or as a raw body with
// an image/* Content-Type. The image is checked, scaled and re-encoded
// (internal/avatar), stored, and becomes the user's avatar_url.
func (h *Handler) avatarUpload(w http.ResponseWriter, r *http.Request) *Error {
	if r.Method != http.MethodPost {
		return methodNotAllowed("POST")
	}
	c, e := h.authenticated(r)
	if e != nil {
		return e
	}
	data, e := h.readAvatar(w, r)
	if e != nil {
		return e
	}
	im, err := h.avatars.Process(r.Context(), data)
	switch {
	case errors.Is(err, avatar.ErrBusy):
		return &Error{Status: http.StatusServiceUnavailable, Code: CodeBusy,
			Message: "too many images are being processed; try again shortly", RetryAfter: avatarBusyRetry, Err: err}
	case errors.Is(err, avatar.ErrNotImage):
		return badRequest("the file is not a PNG, JPEG, WebP or GIF image")
	case errors.Is(err, avatar.ErrTooLarge):
		return badRequest(fmt.Sprintf("the image is larger than %d×%d pixels", avatar.MaxSide, avatar.MaxSide))
	case errors.Is(err, avatar.ErrBroken):
		return badRequest("the image is damaged or truncated")
	case err != nil:
		return internalError(fmt.Errorf("processing avatar: %w", err))
	}
	a := store.Avatar{Hash: im.Hash, ContentType: im.ContentType, Data: im.Data}
	u, err := h.cfg.Store.SetAvatar(r.Context(), h.cfg.AppID, c.UserID, a, h.cfg.Paths.Avatar+"/"+im.Name(), h.now())
	if err != nil {
		return storeError(err, guardError(errRevoked))
	}
	writeJSON(w, http.StatusOK, struct {
		Status string   `json:"status"`
		User   userView `json:"user"`
	}{"success", viewUser(u)})
	return nil
}

// keepStoredAvatar lets a profile update send back the user's own stored
// avatar (a client that saves the whole profile it read): an avatar_url
// equal to the user's current one under the avatar path is dropped from
// the update; any other avatar_url under the avatar path is refused, since
// a stored avatar is set by uploading it.
func (h *Handler) keepStoredAvatar(ctx context.Context, userID uint64, body *profileFields) *Error {
	if body.AvatarURL == nil || h.avatarPrefix == "" || !strings.HasPrefix(*body.AvatarURL, h.avatarPrefix) {
		return nil
	}
	u, err := h.cfg.Store.User(ctx, h.cfg.AppID, userID)
	if err != nil {
		return storeError(err, guardError(errRevoked))
	}
	if *body.AvatarURL != u.AvatarURL {
		return badRequest("avatar_url: a stored avatar is set by uploading the image to " + h.cfg.Paths.Avatar)
	}
	body.AvatarURL = nil
	return nil
}

// readAvatar reads the uploaded file's bytes: at most AvatarMaxSize of
// them (413 beyond).
func (h *Handler) readAvatar(w http.ResponseWriter, r *http.Request) ([]byte, *Error) {
	max := h.cfg.AvatarMaxSize
	tooLarge := newError(http.StatusRequestEntityTooLarge, CodePayloadTooLarge,
		fmt.Sprintf("the image is larger than %s", FormatSize(max)))
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil {
		return nil, newError(http.StatusUnsupportedMediaType, CodeUnsupportedMediaType,
			"send the image as multipart/form-data (part \"file\") or as a raw image/* body")
	}
	switch {
	case mt == "multipart/form-data":
		if r.ContentLength > max+multipartSlack {
			return nil, tooLarge
		}
		r.Body = http.MaxBytesReader(w, r.Body, max+multipartSlack)
		boundary := params["boundary"]
		if boundary == "" {
			return nil, badRequest("multipart body without a boundary")
		}
		mr := multipart.NewReader(r.Body, boundary)
		for i := 0; i < maxMultipartParts; i++ {
			p, err := mr.NextPart()
			if err == io.EOF {
				break
			}
			if err != nil {
				return nil, bodyReadError(err, tooLarge, "malformed multipart body")
			}
			if p.FormName() != "file" {
				// Other form fields (wx.uploadFile's formData) are ignored.
				if _, err := io.Copy(io.Discard, p); err != nil {
					return nil, bodyReadError(err, tooLarge, "malformed multipart body")
				}
				continue
			}
			data, err := io.ReadAll(io.LimitReader(p, max+1))
			if err != nil {
				return nil, bodyReadError(err, tooLarge, "malformed multipart body")
			}
			if int64(len(data)) > max {
				return nil, tooLarge
			}
			if len(data) == 0 {
				return nil, badRequest("the file part is empty")
			}
			return data, nil
		}
		return nil, badRequest(`missing the part named "file" (wx.uploadFile's name: 'file')`)
	case strings.HasPrefix(mt, "image/"):
		if r.ContentLength > max {
			return nil, tooLarge
		}
		r.Body = http.MaxBytesReader(w, r.Body, max)
		data, err := io.ReadAll(r.Body)
		if err != nil {
			return nil, bodyReadError(err, tooLarge, "reading the body failed")
		}
		if len(data) == 0 {
			return nil, badRequest("empty body")
		}
		return data, nil
	}
	return nil, newError(http.StatusUnsupportedMediaType, CodeUnsupportedMediaType,
		"send the image as multipart/form-data (part \"file\") or as a raw image/* body")
}

// bodyReadError is tooLarge when err is the body's size limit, else 400
// with msg.
func bodyReadError(err error, tooLarge *Error, msg string) *Error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return tooLarge
	}
	e := badRequest(msg)
	e.Err = err
	return e
}

// avatarServe serves GET and HEAD avatar_path/<hash>.<ext>: the stored
// image, to anyone, cached for good (its name is its content's hash).
func (h *Handler) avatarServe(w http.ResponseWriter, r *http.Request) *Error {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return methodNotAllowed("GET, HEAD")
	}
	notFound := newError(http.StatusNotFound, CodeNotFound, "no such avatar")
	hash, ct, ok := avatar.ParseName(strings.TrimPrefix(r.URL.Path, h.avatarPrefix))
	if !ok {
		return notFound
	}
	etag := `"` + hash + `"`
	hd := w.Header()
	setHeaders := func() {
		hd.Set("Cache-Control", avatarCacheControl)
		hd.Set("ETag", etag)
		hd.Set("X-Content-Type-Options", "nosniff")
		// An image needs no script, style or frame, even when opened
		// directly.
		hd.Set("Content-Security-Policy", "default-src 'none'; sandbox")
	}
	a, err := h.cfg.Store.Avatar(r.Context(), h.cfg.AppID, hash)
	if err != nil {
		return storeError(err, notFound)
	}
	if a.ContentType != ct {
		return notFound
	}
	if etagMatches(r.Header.Get("If-None-Match"), etag) {
		setHeaders()
		w.WriteHeader(http.StatusNotModified)
		return nil
	}
	setHeaders()
	hd.Set("Content-Type", a.ContentType)
	hd.Set("Content-Length", strconv.Itoa(len(a.Data)))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = w.Write(a.Data)
	}
	return nil
}

// etagMatches reports whether an If-None-Match header matches etag (weak
// comparison, as RFC 9110 asks for If-None-Match).
func etagMatches(header, etag string) bool {
	if header == "" {
		return false
	}
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimSpace(t)
		if t == "*" || strings.TrimPrefix(t, "W/") == etag {
			return true
		}
	}
	return false
}

// FormatSize writes n bytes the way avatar_max_size takes them: in MiB or
// KiB when it divides evenly, else in bytes.
func FormatSize(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return strconv.FormatInt(n>>20, 10) + "MiB"
	case n >= 1<<10 && n%(1<<10) == 0:
		return strconv.FormatInt(n>>10, 10) + "KiB"
	}
	return strconv.FormatInt(n, 10) + " bytes"
}

// ParseSize reads a size as avatar_max_size takes it: a whole number of
// bytes, or followed by B, KiB, MiB (powers of 1024) or KB, MB (powers of
// 1000), without spaces.
func ParseSize(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"KB", 1000}, {"MB", 1000 * 1000}, {"B", 1}}
	num, mult := s, int64(1)
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			num, mult = strings.TrimSuffix(s, u.suffix), u.mult
			break
		}
	}
	if num == "" || strings.TrimLeft(num, "0123456789") != "" {
		return 0, fmt.Errorf("size %q is not a whole number of bytes, KiB or MiB (e.g. 2MiB, 512KiB, 1048576)", s)
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n > MaxAvatarMaxSize/mult+1 {
		return 0, fmt.Errorf("size %q is too large", s)
	}
	return n * mult, nil
}
