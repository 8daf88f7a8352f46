package handler

import (
	"io"
	"net/http"
)

// StripTrailers removes every request trailer whose name, lower-cased with
// '_' read as '-', starts with folded (a FoldHeaderPrefix result). A
// client can send identity fields as trailers of a chunked body, and a
// reverse proxy forwards request trailers to the upstream. The fields a
// client declared are removed now; their values only arrive when the body
// is read to its end, into the same map, so r.Body is wrapped to remove
// them again at that point, before the reader sees the end. Requests
// without declared trailers (the usual case) are left as they are: the
// server keeps undeclared ones on its own copy of the request, which no
// handler sees.
func StripTrailers(r *http.Request, folded string) {
	if r.Trailer == nil {
		return
	}
	StripPrefixed(r.Trailer, folded)
	if r.Body != nil && r.Body != http.NoBody {
		r.Body = &trailerStripBody{ReadCloser: r.Body, trailer: r.Trailer, prefix: folded}
	}
}

// trailerStripBody removes the prefixed trailers when its body ends.
type trailerStripBody struct {
	io.ReadCloser
	trailer http.Header
	prefix  string
}

func (b *trailerStripBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF {
		StripPrefixed(b.trailer, b.prefix)
	}
	return n, err
}
