package handler

import (
	"bytes"
	"net/http/httptest"
	"testing"
)

// FuzzAvatarUpload sends arbitrary bodies with arbitrary Content-Types to
// the upload endpoint: it must never panic, and must answer 200 or one of
// the documented refusals.
func FuzzAvatarUpload(f *testing.F) {
	ct, body := multipartBody(f, "file", "a.png", testPNG(f, 8, 8, 1))
	f.Add(ct, body)
	f.Add("image/png", testPNG(f, 3, 2, 0))
	f.Add("multipart/form-data; boundary=x", []byte("--x\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nGIF89a\r\n--x--\r\n"))
	f.Add("multipart/form-data; boundary=\"", []byte("--"))
	f.Add("image/svg+xml", []byte("<svg/>"))
	f.Add("", []byte{})
	hs := newHarness(f)
	c := hs.h.cfg
	c.Paths.Avatar = "/wx/avatar"
	c.AvatarMaxSize = 16 << 10
	h, err := New(c)
	if err != nil {
		f.Fatal(err)
	}
	hs.h = h
	access, _ := hs.login("o-fuzz")
	f.Fuzz(func(t *testing.T, contentType string, body []byte) {
		r := httptest.NewRequest("POST", "/wx/avatar", bytes.NewReader(body))
		r.Header.Set("Content-Type", contentType)
		r.Header.Set("Authorization", "Bearer "+access)
		w := httptest.NewRecorder()
		hs.h.Serve(w, r)
		switch w.Code {
		case 200, 400, 413, 415, 503:
		default:
			t.Fatalf("Content-Type %q, %d bytes: status %d: %s", contentType, len(body), w.Code, w.Body.String())
		}
	})
}
