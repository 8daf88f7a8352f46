package handler

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/wxauth/caddy-wechat-auth/internal/websession"
	"github.com/wxauth/caddy-wechat-auth/internal/wechat"
)

// fakeOAuth is one OAuth app's WeChat: single-use codes it was told
// about, and userinfo for the access tokens it handed out.
type fakeOAuth struct {
	mu        sync.Mutex
	codes     map[string]wechat.OAuthToken
	infos     map[string]wechat.UserInfo // by openid
	err       error
	block     chan struct{} // when set, exchanges wait for it
	exchanges int
	userinfos int
}

func newFakeOAuth() *fakeOAuth {
	return &fakeOAuth{codes: map[string]wechat.OAuthToken{}, infos: map[string]wechat.UserInfo{}}
}

func (f *fakeOAuth) addCode(code string, tok wechat.OAuthToken) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if tok.AccessToken == "" {
		tok.AccessToken = "web-at-" + code
	}
	f.codes[code] = tok
}

func (f *fakeOAuth) OAuthExchange(_ context.Context, code string) (*wechat.OAuthToken, error) {
	if f.block != nil {
		<-f.block
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.exchanges++
	if f.err != nil {
		return nil, f.err
	}
	t, ok := f.codes[code]
	if !ok {
		return nil, &wechat.APIError{API: "oauth2_access_token", Code: 40163, Message: "code been used"}
	}
	delete(f.codes, code)
	return &t, nil
}

func (f *fakeOAuth) UserInfo(_ context.Context, at, openid string) (*wechat.UserInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.userinfos++
	info, ok := f.infos[openid]
	if !ok {
		return nil, &wechat.APIError{API: "userinfo", Code: 40003, Message: "invalid openid"}
	}
	return &info, nil
}

// webHarness is a handler with browser sessions and a browser: a cookie
// jar that keeps what the answers set.
type webHarness struct {
	*harness
	oa, site *fakeOAuth
	jar      map[string]string
	upstream http.Header // the request headers the last ResultOK passed on
}

// newWebHarness builds a handler with a web block (path /wx/web, cookie
// "wa", both OAuth apps); mod may change the block first.
func newWebHarness(t *testing.T, mod func(*WebConfig)) *webHarness {
	t.Helper()
	hs := newHarness(t)
	state, err := websession.NewStateSealer(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	wh := &webHarness{oa: newFakeOAuth(), site: newFakeOAuth(), jar: map[string]string{}}
	cfg := &WebConfig{
		Path:      "/wx/web",
		Cookies:   websession.Cookies{Name: "wa", Secure: websession.SecureAuto},
		OA:        &OAuthApp{AppID: "wxoa", Scope: wechat.ScopeBase, Client: wh.oa},
		Site:      &OAuthApp{AppID: "wxsite", Scope: wechat.ScopeLogin, Client: wh.site},
		OAuthBase: "https://open.example",
		State:     state,
		Tickets:   hs.st,
	}
	if mod != nil {
		mod(cfg)
	}
	c := hs.h.cfg
	c.Web = cfg
	h, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	hs.h = h
	wh.harness = hs
	return wh
}

// browse sends a request with the jar's cookies (and any given in hdr as
// "Cookie"), applies the Set-Cookie headers of the answer to the jar and
// returns the answer.
func (wh *webHarness) browse(method, target, body string, hdr ...string) result {
	wh.t.Helper()
	r := httptest.NewRequest(method, target, strings.NewReader(body))
	if body != "" {
		r.Header.Set("Content-Type", "application/json")
	}
	var parts []string
	for k, v := range wh.jar {
		parts = append(parts, k+"="+v)
	}
	if len(parts) > 0 {
		r.Header.Set("Cookie", strings.Join(parts, "; "))
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i] == "Cookie" && len(parts) > 0 {
			r.Header.Set("Cookie", r.Header.Get("Cookie")+"; "+hdr[i+1])
			continue
		}
		r.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	wh.upstream = nil
	if res, c, _ := wh.h.Serve(w, r); res == ResultOK {
		wh.upstream = r.Header.Clone()
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte("page of user " + c.Subject))
	}
	for _, ck := range (&http.Response{Header: w.Header()}).Cookies() {
		if ck.MaxAge < 0 || ck.Value == "" {
			delete(wh.jar, ck.Name)
		} else {
			wh.jar[ck.Name] = ck.Value
		}
	}
	res := result{status: w.Code, header: w.Header(), raw: w.Body.String()}
	_ = json.Unmarshal(w.Body.Bytes(), &res.body)
	return res
}

// setCookies returns the Set-Cookie lines of an answer by cookie name.
func setCookies(r result) map[string]*http.Cookie {
	out := map[string]*http.Cookie{}
	for _, ck := range (&http.Response{Header: r.header}).Cookies() {
		out[ck.Name] = ck
	}
	return out
}

// location returns the parsed Location of a redirect.
func location(t testing.TB, r result) *url.URL {
	t.Helper()
	u, err := url.Parse(r.header.Get("Location"))
	if err != nil || r.header.Get("Location") == "" {
		t.Fatalf("no usable Location in %d answer: %q", r.status, r.header.Get("Location"))
	}
	return u
}

// navigate is a page load.
func (wh *webHarness) navigate(target string, hdr ...string) result {
	wh.t.Helper()
	return wh.browse("GET", target, "", append([]string{"Accept", "text/html,application/xhtml+xml"}, hdr...)...)
}

// oauthLogin runs login and callback for code with the given user agent
// and returns the callback's answer.
func (wh *webHarness) oauthLogin(next, ua, code string) result {
	wh.t.Helper()
	r := wh.navigate("/wx/web/login?next="+url.QueryEscape(next), "User-Agent", ua)
	if r.status != http.StatusFound {
		wh.t.Fatalf("login: %d %s", r.status, r.raw)
	}
	state := location(wh.t, r).Query().Get("state")
	return wh.navigate("/wx/web/callback?code=" + url.QueryEscape(code) + "&state=" + url.QueryEscape(state))
}
