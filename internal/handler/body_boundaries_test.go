package handler

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// jsonBodyOfSize is a JSON object {"code":"xxx…"} of exactly n bytes.
func jsonBodyOfSize(t *testing.T, n int) string {
	t.Helper()
	const frame = len(`{"code":""}`)
	if n < frame {
		t.Fatalf("a body of %d bytes cannot hold the frame", n)
	}
	return `{"code":"` + strings.Repeat("x", n-frame) + `"}`
}

// TestBodyLimitBoundary: a body of exactly 64 KiB is read, one byte more
// is 413, whether the client declares its length or streams it without one.
func TestBodyLimitBoundary(t *testing.T) {
	tests := []struct {
		name     string
		size     int
		declared bool
		status   int // 0: accepted
	}{
		{"64 KiB declared", MaxBodySize, true, 0},
		{"64 KiB streamed", MaxBodySize, false, 0},
		{"64 KiB + 1 declared", MaxBodySize + 1, true, http.StatusRequestEntityTooLarge},
		{"64 KiB + 1 streamed", MaxBodySize + 1, false, http.StatusRequestEntityTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := jsonBodyOfSize(t, tt.size)
			r := httptest.NewRequest("POST", "/", strings.NewReader(in))
			r.Header.Set("Content-Type", "application/json")
			if tt.declared {
				if r.ContentLength != int64(tt.size) {
					t.Fatalf("ContentLength %d, want %d", r.ContentLength, tt.size)
				}
			} else {
				r.ContentLength = -1
				r.Body = io.NopCloser(strings.NewReader(in))
			}
			var dst struct {
				Code string `json:"code"`
			}
			e := decodeBody(httptest.NewRecorder(), r, &dst, false, false)
			if tt.status == 0 {
				if e != nil {
					t.Fatalf("refused: %v", e)
				}
				if len(dst.Code) != tt.size-len(`{"code":""}`) {
					t.Fatalf("decoded %d bytes of code", len(dst.Code))
				}
				return
			}
			if e == nil || e.Status != tt.status || e.Code != CodePayloadTooLarge {
				t.Fatalf("want %d %s, got %v", tt.status, CodePayloadTooLarge, e)
			}
		})
	}
}

// TestBodyLimitDeclaredRefusedUnread: a declared length over the limit is
// refused before a byte of the body is read.
func TestBodyLimitDeclaredRefusedUnread(t *testing.T) {
	body := &countingReader{r: strings.NewReader(jsonBodyOfSize(t, MaxBodySize+1))}
	r := httptest.NewRequest("POST", "/", nil)
	r.Body = io.NopCloser(body)
	r.ContentLength = MaxBodySize + 1
	r.Header.Set("Content-Type", "application/json")
	var dst struct{}
	e := decodeBody(httptest.NewRecorder(), r, &dst, false, false)
	if e == nil || e.Status != http.StatusRequestEntityTooLarge {
		t.Fatalf("want 413, got %v", e)
	}
	if body.n != 0 {
		t.Fatalf("read %d bytes of a body declared too large", body.n)
	}
}

type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}
