package websession

import (
	"net/url"
	"strings"
)

// maxNextLen bounds a next path; a longer one becomes "/".
const maxNextLen = 2048

// SanitizeNext returns s when it is a same-origin path, else "/". A
// same-origin path starts with exactly one "/" (not "//" and not "/\",
// which browsers read as another host), has no scheme and no host, and
// holds no backslash and no control character, neither as given nor
// after percent-decoding (so "/%2F%2Fevil" and "/%0d%0a" are refused
// too). Browsers drop tabs and newlines inside URLs, so "/\t/evil" would
// become "//evil": control characters are refused wherever they are.
func SanitizeNext(s string) string {
	if !safeNext(s) {
		return "/"
	}
	return s
}

func safeNext(s string) bool {
	if s == "" || len(s) > maxNextLen {
		return false
	}
	// Check the value and its percent-decoded forms (a few rounds, so
	// double encoding is caught too).
	cur := s
	for range 3 {
		if !safePathText(cur) {
			return false
		}
		dec, err := url.PathUnescape(cur)
		if err != nil {
			return false
		}
		if dec == cur {
			break
		}
		cur = dec
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "" || u.Host != "" || u.Opaque != "" || u.User != nil {
		return false
	}
	return true
}

// safePathText: one leading "/", not followed by "/" or "\", no backslash,
// no control character, valid UTF-8 not required but no NUL either way.
func safePathText(s string) bool {
	if len(s) == 0 || s[0] != '/' {
		return false
	}
	if len(s) > 1 && (s[1] == '/' || s[1] == '\\') {
		return false
	}
	if strings.ContainsRune(s, '\\') {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == '\u2028' || r == '\u2029' {
			return false
		}
	}
	return true
}
