package handler

import (
	"net/http/httptest"
	"strings"
	"testing"
)

func TestDecodeBody(t *testing.T) {
	type body struct {
		Code   string   `json:"code"`
		Gender *flexInt `json:"gender"`
		All    flexBool `json:"all"`
	}
	cases := []struct {
		name, ct, in string
		strict       bool
		status       int
		wantCode     string
	}{
		{"json", "application/json", `{"code":"c","gender":1,"all":true}`, true, 0, "c"},
		{"json charset", "application/json; charset=utf-8", `{"code":"c"}`, true, 0, "c"},
		{"form", "application/x-www-form-urlencoded", `code=c&gender=2&all=1`, true, 0, "c"},
		{"no type but json", "", `{"code":"c"}`, true, 0, "c"},
		{"string gender", "application/json", `{"code":"c","gender":"1"}`, true, 0, "c"},
		{"bad gender", "application/json", `{"gender":"x"}`, true, 400, ""},
		{"unknown strict", "application/json", `{"zzz":1}`, true, 400, ""},
		{"unknown lax", "application/json", `{"zzz":1,"code":"c"}`, false, 0, "c"},
		{"trailing data", "application/json", `{"code":"c"}{"code":"d"}`, true, 400, ""},
		{"array", "application/json", `[]`, true, 400, ""},
		{"wrong type", "application/json", `{"code":5}`, true, 400, ""},
		{"xml", "application/xml", `<a/>`, true, 415, ""},
		{"bad content type", "a/b/c;;", `{}`, true, 415, ""},
		{"repeated form field", "application/x-www-form-urlencoded", `code=a&code=b`, true, 400, ""},
		{"empty", "application/json", ``, true, 400, ""},
		{"too large", "application/json", `{"code":"` + strings.Repeat("x", MaxBodySize) + `"}`, true, 413, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/", strings.NewReader(c.in))
			if c.ct != "" {
				r.Header.Set("Content-Type", c.ct)
			}
			var b body
			e := decodeBody(httptest.NewRecorder(), r, &b, c.strict, false)
			if c.status == 0 {
				if e != nil {
					t.Fatalf("unexpected error %v", e)
				}
				if b.Code != c.wantCode {
					t.Fatalf("code %q", b.Code)
				}
				return
			}
			if e == nil || e.Status != c.status {
				t.Fatalf("want status %d, got %v", c.status, e)
			}
			if strings.Contains(e.Message, "xxxx") {
				t.Fatalf("message echoes the input: %q", e.Message)
			}
		})
	}
}
