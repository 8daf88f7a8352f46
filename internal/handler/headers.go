package handler

import "net/http"

// FoldHeaderPrefix returns an identity header prefix in the form
// HasHeaderPrefix compares with: lower-cased, with '_' and '.' read as '-'.
func FoldHeaderPrefix(prefix string) string { return foldHeaderName(prefix) }

// HasHeaderPrefix reports whether the header name, lower-cased with '_'
// and '.' read as '-', starts with folded (a FoldHeaderPrefix result).
// It does not allocate.
func HasHeaderPrefix(name, folded string) bool { return hasFoldedPrefix(name, folded) }

// FoldedHeaderPrefix returns the handler's identity header prefix as
// FoldHeaderPrefix gives it: every header with it is removed from a
// request the handler serves before anything else happens.
func (h *Handler) FoldedHeaderPrefix() string { return h.prefix }

// StripPrefixed removes every field of hdr (headers or trailers) whose
// name, lower-cased with '_' and '.' read as '-', starts with folded (a
// FoldHeaderPrefix result).
func StripPrefixed(hdr http.Header, folded string) {
	for k := range hdr {
		if hasFoldedPrefix(k, folded) {
			delete(hdr, k)
		}
	}
}
