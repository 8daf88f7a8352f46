package websession

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

func newSealer(t *testing.T, seed byte) *StateSealer {
	t.Helper()
	s, err := NewStateSealer(bytes.Repeat([]byte{seed}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestStateRoundTrip(t *testing.T) {
	s := newSealer(t, 1)
	st := State{Nonce: "n1", Next: "/page?x=1", App: "wxoa", Expires: t0.Add(MaxStateAge)}
	v, err := s.Seal(st)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(v, "page") || strings.Contains(v, "wxoa") {
		t.Fatalf("sealed value shows its content: %q", v)
	}
	got, err := s.Open(v, t0)
	if err != nil {
		t.Fatal(err)
	}
	if got.Nonce != st.Nonce || got.Next != st.Next || got.App != st.App || !got.Expires.Equal(st.Expires) {
		t.Fatalf("Open = %+v, want %+v", got, st)
	}
	v2, _ := s.Seal(st)
	if v2 == v {
		t.Fatal("two seals of one state are identical: the GCM nonce is not random")
	}
}

func TestStateRefused(t *testing.T) {
	s := newSealer(t, 1)
	st := State{Nonce: "n1", Next: "/", App: "wxoa", Expires: t0.Add(MaxStateAge)}
	v, err := s.Seal(st)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := base64.RawURLEncoding.DecodeString(v)
	flipped := append([]byte(nil), raw...)
	flipped[len(flipped)-1] ^= 1
	long, _ := s.Seal(State{Nonce: "n", Expires: t0.Add(time.Hour)})
	noNonce, _ := s.Seal(State{Expires: t0.Add(time.Minute)})
	tests := []struct {
		name string
		v    string
		s    *StateSealer
		now  time.Time
		want error
	}{
		{"empty", "", s, t0, ErrBadState},
		{"not base64", "!!!", s, t0, ErrBadState},
		{"short", "AAAA", s, t0, ErrBadState},
		{"tampered", base64.RawURLEncoding.EncodeToString(flipped), s, t0, ErrBadState},
		{"other key", v, newSealer(t, 2), t0, ErrBadState},
		{"expired", v, s, t0.Add(MaxStateAge), ErrExpiredOrBad},
		{"lifetime too long", long, s, t0, ErrBadState},
		{"no nonce", noNonce, s, t0, ErrBadState},
		{"huge", strings.Repeat("A", 5000), s, t0, ErrBadState},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.s.Open(tc.v, tc.now)
			want := tc.want
			if want == ErrExpiredOrBad {
				want = ErrStateExpired
			}
			if !errors.Is(err, want) {
				t.Fatalf("Open: %v, want %v", err, want)
			}
		})
	}
}

// ErrExpiredOrBad is a marker for the table above.
var ErrExpiredOrBad = errors.New("marker")

func TestNewStateSealerShortSecret(t *testing.T) {
	if _, err := NewStateSealer(make([]byte, 31)); err == nil {
		t.Fatal("a 31-byte secret was accepted")
	}
}

func TestStateMatches(t *testing.T) {
	n, err := NewNonce()
	if err != nil {
		t.Fatal(err)
	}
	if len(n) < 43 {
		t.Fatalf("nonce %q is shorter than 256 bits", n)
	}
	// WeChat takes a state of at most 128 bytes of [a-zA-Z0-9]. Twenty
	// nonces: base64url would put a '-' or '_' in one of them all but
	// surely.
	for i := 0; i < 20; i++ {
		m, err := NewNonce()
		if err != nil {
			t.Fatal(err)
		}
		if len(m) > 128 || strings.IndexFunc(m, func(r rune) bool {
			return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9')
		}) >= 0 {
			t.Fatalf("nonce %q is not what WeChat takes as a state", m)
		}
	}
	tests := []struct {
		cookie, param string
		want          bool
	}{
		{n, n, true},
		{n, n + "x", false},
		{n, n[:len(n)-1], false},
		{n, "", false},
		{"", "", false},
		{"", n, false},
		{"abc", "abd", false},
	}
	for _, tc := range tests {
		if got := StateMatches(tc.cookie, tc.param); got != tc.want {
			t.Errorf("StateMatches(%q, %q) = %v", tc.cookie, tc.param, got)
		}
	}
}

func TestTicket(t *testing.T) {
	a, ha, err := NewTicket()
	if err != nil {
		t.Fatal(err)
	}
	b, hb, _ := NewTicket()
	if a == b || ha == hb {
		t.Fatal("two tickets are equal")
	}
	if raw, err := base64.RawURLEncoding.DecodeString(a); err != nil || len(raw) < 16 {
		t.Fatalf("ticket %q has fewer than 128 random bits", a)
	}
	if HashTicket(a) != ha || bytes.Contains(ha[:], []byte(a)) {
		t.Fatal("HashTicket differs from the hash NewTicket gave")
	}
}
