package handler

import (
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/wxauth/caddy-wechat-auth/internal/wechat"
)

func TestLoginErrors(t *testing.T) {
	hs := newHarness(t)
	want(t, hs.call("POST", "/wx/login", `{"code":"unknown"}`), 400, CodeInvalidCode)
	want(t, hs.call("POST", "/wx/login", `{}`), 400, CodeInvalidRequest)
	want(t, hs.call("POST", "/wx/login", `{"code":"`+strings.Repeat("c", 300)+`"}`), 400, CodeInvalidRequest)
	want(t, hs.call("POST", "/wx/login", `{"code":"a","jscode":"b"}`), 400, CodeInvalidRequest)
	hs.wx.addCode("c1", "o1", "")
	want(t, hs.call("POST", "/wx/login", `{"code":"c1","gender":7}`), 400, CodeInvalidRequest)
	want(t, hs.call("PUT", "/wx/login", `{"code":"c1"}`), 405, CodeMethodNotAllowed)
	for _, tc := range []struct {
		err    error
		status int
		code   string
	}{
		{&wechat.APIError{API: "jscode2session", Code: 40163}, 400, CodeInvalidCode},
		{&wechat.APIError{API: "jscode2session", Code: 40226}, 403, CodeUserBlocked},
		{&wechat.APIError{API: "jscode2session", Code: 45011}, 429, CodeRateLimited},
		{&wechat.APIError{API: "jscode2session", Code: -1}, 503, CodeWeChatUnavailable},
		{&wechat.APIError{API: "jscode2session", Code: 40013}, 502, CodeWeChatError},
		{fmt.Errorf("x: %w", wechat.ErrBadResponse), 502, CodeWeChatError},
		{fmt.Errorf("x: %w", wechat.ErrUnavailable), 503, CodeWeChatUnavailable},
	} {
		hs.wx.err = tc.err
		r := hs.call("POST", "/wx/login", `{"code":"c1"}`)
		want(t, r, tc.status, tc.code)
		if (tc.status == 429 || tc.status == 503) && r.header.Get("Retry-After") == "" {
			t.Fatalf("%d without Retry-After", tc.status)
		}
	}
}

func TestLinkUnionID(t *testing.T) {
	for _, link := range []bool{false, true} {
		t.Run(fmt.Sprintf("link=%v", link), func(t *testing.T) {
			hs := newHarness(t)
			cfg := hs.h.cfg
			cfg.LinkUnionID = link
			h, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			hs.h = h
			loginAs := func(code, openid string) result {
				hs.wx.addCode(code, openid, "u_same_person")
				r := hs.call("POST", "/wx/login", `{"code":"`+code+`"}`)
				want(t, r, 200, "")
				return r
			}
			first := loginAs("c1", "o_first")
			second := loginAs("c2", "o_second")
			sameUser := second.body["user_id"] == first.body["user_id"]
			if sameUser != link || second.body["new_user"] == link {
				t.Fatalf("link_unionid=%v: first %s, second %s", link, first.raw, second.raw)
			}
			// The token carries the unionid either way, and the guard
			// hands it to the upstream.
			r := httptest.NewRequest("GET", "/x", nil)
			r.Header.Set("Authorization", "Bearer "+second.body["token"].(string))
			if res, c, _ := hs.h.Serve(httptest.NewRecorder(), r); res != ResultOK || c.UnionID != "u_same_person" || r.Header.Get("X-WeChat-UnionID") != "u_same_person" {
				t.Fatalf("link_unionid=%v: result %v, claims %+v, header %q", link, res, c, r.Header.Get("X-WeChat-UnionID"))
			}
		})
	}
}

func TestLoginRateLimit(t *testing.T) {
	hs := newHarness(t)
	cfg := hs.h.cfg
	cfg.LoginLimit = NewRateLimiter(2, time.Minute)
	h, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	hs.h = h
	hs.login("o1")
	hs.login("o1")
	hs.wx.addCode("c-limited", "o1", "")
	r := hs.call("POST", "/wx/login", `{"code":"c-limited"}`)
	want(t, r, 429, CodeRateLimited)
	if r.header.Get("Retry-After") != "30" {
		t.Fatalf("Retry-After %q", r.header.Get("Retry-After"))
	}
	// The refused attempt did not spend the code at WeChat.
	hs.clock.Advance(30 * time.Second)
	want(t, hs.call("POST", "/wx/login", `{"code":"c-limited"}`), 200, "")
	// Other clients are not limited.
	hs.wx.addCode("c-other", "o2", "")
	hs.clock.Advance(time.Second)
	want(t, hs.call("POST", "/wx/login", `{"code":"c-other"}`), 429, CodeRateLimited) // same RemoteAddr in httptest
	req := httptest.NewRequest("POST", "/wx/login", strings.NewReader(`{"code":"c-other"}`))
	req.RemoteAddr = "203.0.113.9:4567"
	req.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	hs.h.Serve(w, req)
	if w.Code != 200 {
		t.Fatalf("another client: %d %s", w.Code, w.Body)
	}
}
