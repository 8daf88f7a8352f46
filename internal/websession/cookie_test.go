package websession

import (
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestCookieAttributes(t *testing.T) {
	plain := httptest.NewRequest("GET", "http://example.com/", nil)
	tlsReq := httptest.NewRequest("GET", "https://example.com/", nil)
	tlsReq.TLS = &tls.ConnectionState{}
	tests := []struct {
		name       string
		c          Cookies
		r          *http.Request
		wantSecure bool
	}{
		{"auto over http", Cookies{Name: "wa", Secure: SecureAuto}, plain, false},
		{"auto over https", Cookies{Name: "wa", Secure: SecureAuto}, tlsReq, true},
		{"on over http", Cookies{Name: "wa", Secure: SecureOn}, plain, true},
		{"off over https", Cookies{Name: "wa", Secure: SecureOff}, tlsReq, false},
		{"domain", Cookies{Name: "wa", Domain: "example.com", Secure: SecureAuto}, plain, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, ck := range []*http.Cookie{
				tc.c.Access(tc.r, "tok", 15*time.Minute),
				tc.c.Refresh(tc.r, "ref", 720*time.Hour),
				tc.c.State(tc.r, "st", MaxStateAge),
			} {
				line := ck.String()
				for _, want := range []string{"Path=/", "HttpOnly", "SameSite=Lax"} {
					if !strings.Contains(line, want) {
						t.Errorf("%s lacks %s", line, want)
					}
				}
				if got := strings.Contains(line, "; Secure"); got != tc.wantSecure {
					t.Errorf("%s: Secure = %v, want %v", line, got, tc.wantSecure)
				}
				if got := strings.Contains(line, "Domain="); got != (tc.c.Domain != "") {
					t.Errorf("%s: Domain attribute present = %v", line, got)
				}
			}
			if got := tc.c.Access(tc.r, "tok", 900*time.Second).MaxAge; got != 900 {
				t.Errorf("access Max-Age %d, want 900", got)
			}
			cl := tc.c.Clear(tc.r, tc.c.RefreshName()).String()
			if !strings.Contains(cl, "Max-Age=0") || !strings.HasPrefix(cl, "wa_refresh=;") {
				t.Errorf("clearing cookie %q", cl)
			}
		})
	}
}

func TestNames(t *testing.T) {
	c := Cookies{Name: "wa"}
	if c.RefreshName() != "wa_refresh" || c.StateName() != "wa_state" {
		t.Fatal(c.RefreshName(), c.StateName())
	}
}

func TestStrip(t *testing.T) {
	c := Cookies{Name: "wa"}
	tests := []struct {
		name string
		in   []string
		want []string
	}{
		{"none", nil, nil},
		{"others only", []string{"a=1; b=2"}, []string{"a=1; b=2"}},
		{"ours only", []string{"wa=x; wa_refresh=y; wa_state=z"}, nil},
		{"mixed", []string{"a=1; wa=x; b=2; wa_refresh=y"}, []string{"a=1; b=2"}},
		{"prefix look-alike kept", []string{"wa2=1; xwa=2; wa_other=3"}, []string{"wa2=1; xwa=2; wa_other=3"}},
		{"several headers", []string{"wa=x", "a=1; wa_state=s"}, []string{"a=1"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			if tc.in != nil {
				h["Cookie"] = append([]string(nil), tc.in...)
			}
			c.Strip(h)
			if !reflect.DeepEqual(h["Cookie"], tc.want) {
				t.Fatalf("Cookie = %q, want %q", h["Cookie"], tc.want)
			}
		})
	}
}

func TestValidators(t *testing.T) {
	for s, want := range map[string]bool{"wechat_auth": true, "a-b.c": true, "": false, "a b": false, "a;b": false, "a=b": false, "ä": false} {
		if ValidCookieName(s) != want {
			t.Errorf("ValidCookieName(%q) != %v", s, want)
		}
	}
	for s, want := range map[string]bool{"example.com": true, ".example.com": true, "a-b.example.com": true, "": false,
		"example.com:443": false, "https://example.com": false, "-a.com": false, "a..com": false, "a/b": false} {
		if ValidCookieDomain(s) != want {
			t.Errorf("ValidCookieDomain(%q) != %v", s, want)
		}
	}
	for _, s := range []string{"auto", "on", "off"} {
		if _, err := ParseSecureMode(s); err != nil {
			t.Error(err)
		}
	}
	if _, err := ParseSecureMode("yes"); err == nil {
		t.Error("yes accepted")
	}
}

func TestTake(t *testing.T) {
	c := Cookies{Name: "wa"}
	h := http.Header{"Cookie": {"a=1; wa=acc; wa_refresh=ref; wa_state=st", "wa=second"}}
	acc, ref := c.Take(h)
	if acc != "acc" || ref != "ref" {
		t.Fatalf("Take = %q, %q", acc, ref)
	}
	if !reflect.DeepEqual(h["Cookie"], []string{"a=1"}) {
		t.Fatalf("left %q", h["Cookie"])
	}
	h = http.Header{"Cookie": {"other=1"}}
	if acc, ref := c.Take(h); acc != "" || ref != "" || h.Get("Cookie") != "other=1" {
		t.Fatalf("Take without our cookies = %q, %q, left %q", acc, ref, h["Cookie"])
	}
	h = http.Header{"Cookie": {`wa="q"`}}
	if acc, _ := c.Take(h); acc != "q" {
		t.Fatalf("quoted value: %q", acc)
	}
}

func TestTakeKeepsOthers(t *testing.T) {
	c := Cookies{Name: "wa"}
	for _, tc := range []struct {
		in   []string
		want []string
		acc  string
	}{
		{[]string{"wa=1"}, nil, "1"},
		{[]string{"theme=dark; wa=1"}, []string{"theme=dark"}, "1"},
		{[]string{"wa=1; theme=dark"}, []string{"theme=dark"}, "1"},
		{[]string{"a=1; wa=2; b=3; wa_state=4; c=5"}, []string{"a=1; b=3; c=5"}, "2"},
		{[]string{"x=1", "wa=2; y=3", "wa_refresh=4"}, []string{"x=1", "y=3"}, "2"},
		{[]string{"wax=1"}, []string{"wax=1"}, ""},
	} {
		h := http.Header{"Cookie": append([]string(nil), tc.in...)}
		acc, _ := c.Take(h)
		if acc != tc.acc || !reflect.DeepEqual(h["Cookie"], tc.want) {
			t.Errorf("Take(%q) = %q, left %q; want %q, %q", tc.in, acc, h["Cookie"], tc.acc, tc.want)
		}
	}
	h := http.Header{"Cookie": {"theme=dark; wa=1"}}
	if n := testing.AllocsPerRun(100, func() {
		h["Cookie"][0] = "theme=dark; wa=1"
		c.Take(h)
	}); n != 0 {
		t.Errorf("Take of one other cookie allocates %v times", n)
	}
}
