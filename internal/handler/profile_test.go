package handler

import (
	"net/http/httptest"
	"strings"
	"testing"
)

// TestProfileValidation: the limits of each profile field, at their ends.
func TestProfileValidation(t *testing.T) {
	str := func(s string) *string { return &s }
	gender := func(g int) *flexInt { f := flexInt(g); return &f }
	long := "https://example.com/" + strings.Repeat("a", 2048-len("https://example.com/"))
	tests := []struct {
		name string
		in   profileFields
		ok   bool
	}{
		{"nothing", profileFields{}, true},
		{"nickname of 1", profileFields{Nickname: str("a")}, true},
		{"nickname of 64 runes", profileFields{Nickname: str(strings.Repeat("微", 64))}, true},
		{"nickname of 65 runes", profileFields{Nickname: str(strings.Repeat("a", 65))}, false},
		{"empty nickname", profileFields{Nickname: str("")}, false},
		{"nickname with a tab", profileFields{Nickname: str("a\tb")}, false},
		{"nickname with DEL", profileFields{Nickname: str("a\x7f")}, false},
		{"nickname with a C1 control", profileFields{Nickname: str("a\u0085")}, false},
		{"nickname with a line separator", profileFields{Nickname: str("a\u2028")}, false},
		{"nickname with a paragraph separator", profileFields{Nickname: str("a\u2029")}, false},
		{"nickname not UTF-8", profileFields{Nickname: str("a\xff")}, false},
		{"bad nickname, good gender", profileFields{Nickname: str(""), Gender: gender(1)}, false},
		{"avatar of 2048 bytes", profileFields{AvatarURL: str(long)}, true},
		{"avatar of 2049 bytes", profileFields{AvatarURL: str(long + "a")}, false},
		{"avatar http", profileFields{AvatarURL: str("http://example.com/a.png")}, true},
		{"avatar ftp", profileFields{AvatarURL: str("ftp://example.com/a.png")}, false},
		{"avatar relative", profileFields{AvatarURL: str("/a.png")}, false},
		{"avatar with user info", profileFields{AvatarURL: str("https://u:p@example.com/a.png")}, false},
		{"avatar with a control", profileFields{AvatarURL: str("https://example.com/a\x7f.png")}, false},
		{"gender 0", profileFields{Gender: gender(0)}, true},
		{"gender 2", profileFields{Gender: gender(2)}, true},
		{"gender -1", profileFields{Gender: gender(-1)}, false},
		{"gender 3", profileFields{Gender: gender(3)}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			patch, e := tt.in.validate()
			if !tt.ok {
				if e == nil || e.Status != 400 || e.Code != CodeInvalidRequest {
					t.Fatalf("accepted (or wrong error %v)", e)
				}
				return
			}
			if e != nil {
				t.Fatalf("refused: %v", e)
			}
			if (patch.Nickname != nil) != (tt.in.Nickname != nil) || (patch.AvatarURL != nil) != (tt.in.AvatarURL != nil) ||
				(patch.Gender != nil) != (tt.in.Gender != nil) {
				t.Fatalf("patch %+v from %+v", patch, tt.in)
			}
			if tt.in.Gender != nil && *patch.Gender != int(*tt.in.Gender) {
				t.Fatalf("gender %d, want %d", *patch.Gender, *tt.in.Gender)
			}
		})
	}
}

// TestProfileMethods: GET and HEAD read the profile (HEAD without a body),
// PATCH updates it, anything else is 405.
func TestProfileMethods(t *testing.T) {
	hs := newHarness(t)
	access, _ := hs.login("o1")
	auth := "Bearer " + access

	r := hs.call("PATCH", "/wx/profile", `{"nickname":"Ann","gender":2}`, "Authorization", auth)
	want(t, r, 200, "")
	if u, _ := r.body["user"].(map[string]any); u["nickname"] != "Ann" || u["gender"] != float64(2) {
		t.Fatalf("PATCH answered %s", r.raw)
	}
	r = hs.call("GET", "/wx/profile", "", "Authorization", auth)
	want(t, r, 200, "")
	if u, _ := r.body["user"].(map[string]any); u["nickname"] != "Ann" {
		t.Fatalf("GET answered %s", r.raw)
	}
	req := httptest.NewRequest("HEAD", "/wx/profile", nil)
	req.Header.Set("Authorization", auth)
	w := httptest.NewRecorder()
	if res, _, _ := hs.h.Serve(w, req); res != ResultEndpoint || w.Code != 200 {
		t.Fatalf("HEAD: %v %d %s", res, w.Code, w.Body)
	}
	want(t, hs.call("PATCH", "/wx/profile", `{"gender":7}`, "Authorization", auth), 400, CodeInvalidRequest)
	want(t, hs.call("PATCH", "/wx/profile", `{"phone":"1"}`, "Authorization", auth), 400, CodeInvalidRequest)
	want(t, hs.call("DELETE", "/wx/profile", "", "Authorization", auth), 405, CodeMethodNotAllowed)
	want(t, hs.call("PATCH", "/wx/profile", `{"nickname":"Bob"}`), 401, CodeInvalidToken)
}
