package handler

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzDecodeBody: any body with any content type gets an answer or a
// clean error with a 4xx status, never a panic.
func FuzzDecodeBody(f *testing.F) {
	f.Add("application/json", `{"code":"c","gender":"1","all":true}`)
	f.Add("application/x-www-form-urlencoded", "code=c&gender=2&nickname=%E5%AE%89")
	f.Add("", `{"nickname":"\u0000"}`)
	f.Add("application/json; charset=utf-8", `{"gender":1e400}`)
	f.Add("multipart/form-data; boundary=x", "--x--")
	f.Fuzz(func(t *testing.T, contentType, body string) {
		r := httptest.NewRequest("POST", "/", strings.NewReader(body))
		r.Header.Set("Content-Type", contentType)
		var dst struct {
			Code string   `json:"code"`
			All  flexBool `json:"all"`
			profileFields
		}
		e := decodeBody(httptest.NewRecorder(), r, &dst, true, true)
		if e != nil && (e.Status < 400 || e.Status > 499 || e.Message == "") {
			t.Fatalf("bad error %+v", e)
		}
		if e == nil {
			_, _ = dst.profileFields.validate()
		}
	})
}

// FuzzGuardHeaders: whatever headers a client sends, the identity headers
// are gone after the guard ran, in any spelling a CGI-style backend reads
// as one ('-', '_' or '.'), and a random token is refused. The oracle
// folds names with the standard library, independently of the guard's own
// folding.
func FuzzGuardHeaders(f *testing.F) {
	f.Add("X_WeChat_User_ID", "1", "Bearer x.y.z")
	f.Add("x-wechat-openid", "o", "bearer ")
	f.Add("X-WECHAT-", "", "Bearer")
	f.Add("X.WeChat.User.ID", "1", "Bearer x.y.z")
	hs := newHarness(f)
	f.Fuzz(func(t *testing.T, name, value, auth string) {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header = http.Header{name: {value}, "Authorization": {auth}}
		res, _, _ := hs.h.Serve(httptest.NewRecorder(), r)
		if res == ResultOK {
			t.Fatalf("random Authorization %q accepted", auth)
		}
		for k := range r.Header {
			if strings.HasPrefix(strings.NewReplacer("_", "-", ".", "-").Replace(strings.ToLower(k)), "x-wechat-") {
				t.Fatalf("identity header %q kept", k)
			}
		}
	})
}
