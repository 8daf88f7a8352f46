package websession

import "testing"

// TestSanitizeNext: only a same-origin path survives; every open-redirect
// trick becomes "/".
func TestSanitizeNext(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"", "/"},
		{"/", "/"},
		{"/page", "/page"},
		{"/a/b?x=1&y=2#frag", "/a/b?x=1&y=2#frag"},
		{"/path:with:colons", "/path:with:colons"},
		{"/%E4%BD%A0%E5%A5%BD", "/%E4%BD%A0%E5%A5%BD"},
		{"/search?q=a%20b", "/search?q=a%20b"},
		{"/你好", "/你好"},
		// Other hosts.
		{"//evil.com", "/"},
		{"//evil.com/path", "/"},
		{"///evil.com", "/"},
		{"/\\evil.com", "/"},
		{"\\\\evil.com", "/"},
		{"/a\\b", "/"},
		{"https://evil.com", "/"},
		{"http://evil.com/", "/"},
		{"HTTPS://evil.com", "/"},
		{"javascript:alert(1)", "/"},
		{"data:text/html,x", "/"},
		{"evil.com", "/"},
		{"page", "/"},
		{" /page", "/"},
		{"?x=1", "/"},
		{"#x", "/"},
		// Control characters, raw and encoded.
		{"/%0d%0aSet-Cookie:x=1", "/"},
		{"/%0D%0A", "/"},
		{"/\r\nLocation: //evil", "/"},
		{"/\t/evil.com", "/"},
		{"\t//evil.com", "/"},
		{"/\n/evil.com", "/"},
		{"/a\x00b", "/"},
		{"/a\x7fb", "/"},
		{"/%00", "/"},
		{"/%09/evil.com", "/"},
		{"/a\u2028b", "/"},
		// Encoded slashes and backslashes that decode into another host.
		{"/%2Fevil.com", "/"},
		{"/%2fevil.com", "/"},
		{"/%5Cevil.com", "/"},
		{"/%5cevil.com", "/"},
		{"%2F%2Fevil.com", "/"},
		{"/%252F%252Fevil.com", "/"},
		{"/%25%30%64%25%30%61", "/"},
		{"/%zz", "/"},
		// Too long.
		{"/" + string(make([]byte, 0)) + longPath(3000), "/"},
	}
	for _, tc := range tests {
		if got := SanitizeNext(tc.in); got != tc.want {
			t.Errorf("SanitizeNext(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func longPath(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = 'a'
	}
	return string(b)
}

func FuzzSanitizeNext(f *testing.F) {
	for _, s := range []string{"/", "//evil", "/\\evil", "https://evil", "/%0d%0a", "/a?b#c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := SanitizeNext(s)
		if out == "/" {
			return
		}
		if out != s {
			t.Fatalf("SanitizeNext(%q) = %q: neither the input nor /", s, out)
		}
		if len(out) < 1 || out[0] != '/' || (len(out) > 1 && (out[1] == '/' || out[1] == '\\')) {
			t.Fatalf("SanitizeNext(%q) = %q: not a same-origin path", s, out)
		}
	})
}
