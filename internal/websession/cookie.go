package websession

import (
	"fmt"
	"net/http"
	"strings"
	"time"
)

// SecureMode says when cookies get the Secure attribute.
type SecureMode string

// The Secure modes.
const (
	// SecureAuto: Secure when the request came over https.
	SecureAuto SecureMode = "auto"
	// SecureOn: always Secure (behind a proxy that terminates TLS).
	SecureOn SecureMode = "on"
	// SecureOff: never Secure (plain-http development only).
	SecureOff SecureMode = "off"
)

// ParseSecureMode reads "auto", "on" or "off".
func ParseSecureMode(s string) (SecureMode, error) {
	switch m := SecureMode(s); m {
	case SecureAuto, SecureOn, SecureOff:
		return m, nil
	}
	return "", fmt.Errorf("want auto, on or off, got %q", s)
}

// ValidCookieName reports whether s is a cookie name (an RFC 6265 token).
func ValidCookieName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte("()<>@,;:\\\"/[]?={}", c) >= 0 {
			return false
		}
	}
	return true
}

// ValidCookieDomain reports whether s is a domain name usable as a Domain
// attribute: labels of letters, digits and hyphens, an optional leading
// dot, no port, no scheme.
func ValidCookieDomain(s string) bool {
	s = strings.TrimPrefix(s, ".")
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// Cookies builds the module's cookies: the access cookie Name, the refresh
// cookie Name_refresh and the OAuth state cookie Name_state. Every one is
// Path=/, HttpOnly and SameSite=Lax, Secure as Secure says, and host-only
// unless Domain is set.
type Cookies struct {
	Name   string
	Domain string
	Secure SecureMode
}

// RefreshName is the name of the refresh cookie.
func (c Cookies) RefreshName() string { return c.Name + "_refresh" }

// StateName is the name of the OAuth state cookie.
func (c Cookies) StateName() string { return c.Name + "_state" }

// secure reports whether a cookie set in answer to r is Secure.
func (c Cookies) secure(r *http.Request) bool {
	switch c.Secure {
	case SecureOn:
		return true
	case SecureOff:
		return false
	}
	return r.TLS != nil
}

// cookie builds one cookie with the module's attributes. A non-positive
// maxAge clears the cookie (Max-Age=0).
func (c Cookies) cookie(r *http.Request, name, value string, maxAge time.Duration) *http.Cookie {
	ck := &http.Cookie{
		Name:     name,
		Value:    value,
		Path:     "/",
		Domain:   c.Domain,
		HttpOnly: true,
		Secure:   c.secure(r),
		SameSite: http.SameSiteLaxMode,
	}
	if maxAge <= 0 {
		ck.Value = ""
		ck.MaxAge = -1 // written as Max-Age=0
		ck.Expires = time.Unix(0, 0)
	} else {
		ck.MaxAge = int((maxAge + time.Second - 1) / time.Second)
	}
	return ck
}

// Access is the access cookie holding token for maxAge.
func (c Cookies) Access(r *http.Request, token string, maxAge time.Duration) *http.Cookie {
	return c.cookie(r, c.Name, token, maxAge)
}

// Refresh is the refresh cookie holding token for maxAge.
func (c Cookies) Refresh(r *http.Request, token string, maxAge time.Duration) *http.Cookie {
	return c.cookie(r, c.RefreshName(), token, maxAge)
}

// State is the OAuth state cookie holding a sealed state for maxAge.
func (c Cookies) State(r *http.Request, sealed string, maxAge time.Duration) *http.Cookie {
	return c.cookie(r, c.StateName(), sealed, maxAge)
}

// Clear is a cookie that deletes the cookie name (one of the module's).
func (c Cookies) Clear(r *http.Request, name string) *http.Cookie {
	return c.cookie(r, name, "", 0)
}

// Strip removes the module's three cookies from the request's Cookie
// headers, keeping every other cookie as sent, so the upstream never sees
// a token. A header left empty is removed.
func (c Cookies) Strip(h http.Header) {
	vals := h["Cookie"]
	if len(vals) == 0 {
		return
	}
	changed := false
	out := vals[:0:0]
	for _, v := range vals {
		if !strings.Contains(v, c.Name) {
			out = append(out, v)
			continue
		}
		nv := c.stripOne(v)
		if nv != v {
			changed = true
		}
		if nv != "" {
			out = append(out, nv)
		}
	}
	if !changed {
		return
	}
	if len(out) == 0 {
		delete(h, "Cookie")
		return
	}
	h["Cookie"] = out
}

// stripOne removes the module's cookies from one Cookie header value.
func (c Cookies) stripOne(v string) string {
	parts := strings.Split(v, ";")
	kept := parts[:0]
	for _, p := range parts {
		name, _, _ := strings.Cut(strings.TrimSpace(p), "=")
		if name == c.Name || name == c.RefreshName() || name == c.StateName() {
			continue
		}
		if strings.TrimSpace(p) == "" {
			continue
		}
		kept = append(kept, strings.TrimSpace(p))
	}
	return strings.Join(kept, "; ")
}

// Take returns the values of the access and refresh cookies in the
// request's Cookie headers (the first of each name) and removes the
// module's three cookies from them, in one pass; other cookies stay as
// sent, and a header left empty is removed. A request without the
// module's cookies is left untouched and costs no allocation, nor does
// one whose Cookie header keeps one other cookie.
func (c Cookies) Take(h http.Header) (access, refresh string) {
	vals := h["Cookie"]
	refreshName, stateName := c.RefreshName(), c.StateName()
	kept := vals[:0]
	for _, v := range vals {
		if !strings.Contains(v, c.Name) {
			kept = append(kept, v)
			continue
		}
		// The other cookies: the first as a substring of v, a builder
		// only once a second one comes.
		var first string
		var b strings.Builder
		rest := v
		for rest != "" {
			var part string
			part, rest, _ = strings.Cut(rest, ";")
			part = strings.TrimSpace(part)
			if part == "" {
				continue
			}
			name, val, _ := strings.Cut(part, "=")
			switch name {
			case c.Name:
				if access == "" {
					access = trimQuotes(val)
				}
				continue
			case refreshName:
				if refresh == "" {
					refresh = trimQuotes(val)
				}
				continue
			case stateName:
				continue
			}
			switch {
			case first == "":
				first = part
			case b.Len() == 0:
				b.Grow(len(v))
				b.WriteString(first)
				fallthrough
			default:
				b.WriteString("; ")
				b.WriteString(part)
			}
		}
		switch {
		case b.Len() > 0:
			kept = append(kept, b.String())
		case first != "":
			kept = append(kept, first)
		}
	}
	switch {
	case len(kept) == len(vals):
		// Nothing removed (a cookie only named like ours was rewritten
		// in place with the same content).
	case len(kept) == 0:
		delete(h, "Cookie")
	default:
		h["Cookie"] = kept
	}
	return access, refresh
}

// trimQuotes removes the double quotes a cookie value may be sent in.
func trimQuotes(v string) string {
	if len(v) > 1 && v[0] == '"' && v[len(v)-1] == '"' {
		return v[1 : len(v)-1]
	}
	return v
}
