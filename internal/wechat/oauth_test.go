package wechat

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

const testOAuthCode = "oauth-code-0001"

func okOAuth(t *testing.T, snapshot int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if q.Get("appid") != testAppID || q.Get("secret") != testSecret || q.Get("code") != testOAuthCode || q.Get("grant_type") != "authorization_code" {
			writeJSON(t, w, map[string]any{"errcode": 40029, "errmsg": "invalid code"})
			return
		}
		writeJSON(t, w, map[string]any{"access_token": "web-at", "expires_in": 7200, "refresh_token": "web-rt",
			"openid": "oWeb1", "scope": "snsapi_userinfo", "unionid": "uWeb1", "is_snapshotuser": snapshot})
	}
}

func TestOAuthExchange(t *testing.T) {
	srv, hits := newTestServer(t, map[string]http.HandlerFunc{"/sns/oauth2/access_token": okOAuth(t, 0)})
	c := newTestClient(t, srv.URL, nil)
	tok, err := c.OAuthExchange(context.Background(), testOAuthCode)
	if err != nil {
		t.Fatal(err)
	}
	want := OAuthToken{AccessToken: "web-at", OpenID: "oWeb1", UnionID: "uWeb1", Scope: "snsapi_userinfo"}
	if *tok != want {
		t.Fatalf("got %+v, want %+v", *tok, want)
	}
	if hits.count("/sns/oauth2/access_token") != 1 {
		t.Fatal("want one request")
	}
}

func TestOAuthExchangeSnapshot(t *testing.T) {
	srv, _ := newTestServer(t, map[string]http.HandlerFunc{"/sns/oauth2/access_token": okOAuth(t, 1)})
	c := newTestClient(t, srv.URL, nil)
	tok, err := c.OAuthExchange(context.Background(), testOAuthCode)
	if err != nil || !tok.SnapshotUser {
		t.Fatalf("got %+v, %v; want a snapshot user", tok, err)
	}
}

func TestOAuthExchangeErrors(t *testing.T) {
	tests := []struct {
		name    string
		answers []func(http.ResponseWriter, *http.Request)
		want    error
		calls   int
	}{
		{"invalid code", []func(http.ResponseWriter, *http.Request){errcodeAnswer(t, 40029, "invalid code")}, ErrInvalidCode, 1},
		{"used code", []func(http.ResponseWriter, *http.Request){errcodeAnswer(t, 40163, "code been used")}, ErrInvalidCode, 1},
		{"rate limited", []func(http.ResponseWriter, *http.Request){errcodeAnswer(t, 45011, "freq")}, ErrRateLimited, 1},
		{"other errcode", []func(http.ResponseWriter, *http.Request){errcodeAnswer(t, 40013, "invalid appid")}, ErrAPI, 1},
		{"busy then ok", []func(http.ResponseWriter, *http.Request){errcodeAnswer(t, -1, "busy"), okOAuth(t, 0)}, nil, 2},
		{"busy twice", []func(http.ResponseWriter, *http.Request){errcodeAnswer(t, -1, "busy"), errcodeAnswer(t, -1, "busy"), okOAuth(t, 0)}, ErrUnavailable, 2},
		{"no openid", []func(http.ResponseWriter, *http.Request){func(w http.ResponseWriter, r *http.Request) {
			writeJSON(t, w, map[string]any{"access_token": "x"})
		}}, ErrBadResponse, 1},
		{"not json", []func(http.ResponseWriter, *http.Request){func(w http.ResponseWriter, r *http.Request) {
			_, _ = w.Write([]byte("<html>"))
		}}, ErrBadResponse, 1},
		{"http 500", []func(http.ResponseWriter, *http.Request){func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(500)
		}}, ErrUnavailable, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			seq := &sequence{answers: tc.answers}
			srv, hits := newTestServer(t, map[string]http.HandlerFunc{"/sns/oauth2/access_token": seq.handle})
			c := newTestClient(t, srv.URL, nil)
			_, err := c.OAuthExchange(context.Background(), testOAuthCode)
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if err != nil && (strings.Contains(err.Error(), testSecret) || strings.Contains(err.Error(), testOAuthCode)) {
				t.Fatalf("error shows a secret or the code: %v", err)
			}
			if n := hits.count("/sns/oauth2/access_token"); n != tc.calls {
				t.Fatalf("requests = %d, want %d", n, tc.calls)
			}
		})
	}
}

func TestOAuthExchangeNoRetryAfterTimeout(t *testing.T) {
	srv, hits := newTestServer(t, map[string]http.HandlerFunc{
		"/sns/oauth2/access_token": func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() },
	})
	c := newTestClient(t, srv.URL, func(cfg *Config) { cfg.Timeout = 50 * time.Millisecond })
	_, err := c.OAuthExchange(context.Background(), testOAuthCode)
	if !errors.Is(err, ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
	if n := hits.count("/sns/oauth2/access_token"); n != 1 {
		t.Fatalf("requests = %d, want 1", n)
	}
}

func TestOAuthExchangeLocalChecks(t *testing.T) {
	c := newTestClient(t, "http://127.0.0.1:1", nil)
	for _, code := range []string{"", strings.Repeat("x", maxCodeBytes+1)} {
		if _, err := c.OAuthExchange(context.Background(), code); !errors.Is(err, ErrInvalidCode) {
			t.Errorf("code of %d bytes: %v", len(code), err)
		}
	}
}

// TestOAuthExchangeShared: concurrent callbacks with one code make one
// request to WeChat.
func TestOAuthExchangeShared(t *testing.T) {
	release := make(chan struct{})
	srv, hits := newTestServer(t, map[string]http.HandlerFunc{
		"/sns/oauth2/access_token": func(w http.ResponseWriter, r *http.Request) {
			<-release
			okOAuth(t, 0)(w, r)
		},
	})
	c := newTestClient(t, srv.URL, nil)
	entered := make(chan struct{}, 8)
	c.testHookCodeWait = func() { entered <- struct{}{} }
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := c.OAuthExchange(context.Background(), testOAuthCode)
			errs <- err
		}()
	}
	for range 4 {
		<-entered
	}
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := hits.count("/sns/oauth2/access_token"); n != 1 {
		t.Fatalf("requests = %d, want 1", n)
	}
}

func TestUserInfo(t *testing.T) {
	srv, _ := newTestServer(t, map[string]http.HandlerFunc{"/sns/userinfo": func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if q.Get("access_token") != "web-at" || q.Get("lang") != "zh_CN" {
			writeJSON(t, w, map[string]any{"errcode": 40001, "errmsg": "invalid credential, access_token is invalid web-at"})
			return
		}
		writeJSON(t, w, map[string]any{"openid": q.Get("openid"), "unionid": "u1", "nickname": "Ann", "headimgurl": "https://x/y.png", "sex": 2})
	}})
	c := newTestClient(t, srv.URL, nil)
	info, err := c.UserInfo(context.Background(), "web-at", "oWeb1")
	if err != nil {
		t.Fatal(err)
	}
	if *info != (UserInfo{OpenID: "oWeb1", UnionID: "u1", Nickname: "Ann", HeadImgURL: "https://x/y.png", Gender: 2}) {
		t.Fatalf("got %+v", *info)
	}
	_, err = c.UserInfo(context.Background(), "bad-token", "oWeb1")
	if !errors.Is(err, ErrAPI) || strings.Contains(err.Error(), "bad-token") {
		t.Fatalf("err = %v", err)
	}
	if _, err := c.UserInfo(context.Background(), "", "oWeb1"); err == nil {
		t.Fatal("empty access token accepted")
	}
}

func TestUserInfoOtherOpenID(t *testing.T) {
	srv, _ := newTestServer(t, map[string]http.HandlerFunc{"/sns/userinfo": func(w http.ResponseWriter, r *http.Request) {
		writeJSON(t, w, map[string]any{"openid": "someone-else"})
	}})
	c := newTestClient(t, srv.URL, nil)
	if _, err := c.UserInfo(context.Background(), "web-at", "oWeb1"); !errors.Is(err, ErrBadResponse) {
		t.Fatalf("err = %v", err)
	}
}
