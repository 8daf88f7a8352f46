package wechatauth_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
)

// TestE2EStripBeforeErrorRoutes: a site with two wechat_auth blocks of
// different header prefixes, the first with `errors caddy`, and
// handle_errors proxying to the upstream (an error page or a login page
// the app serves). Caddy sorts both guards ahead of both strip steps, so
// the first guard's 401 goes to handle_errors before the strip step of
// the other prefix has run: the forged headers of that prefix, and the
// other block's session cookies, must not reach the upstream there either.
func TestE2EStripBeforeErrorRoutes(t *testing.T) {
	up := echoUpstream(t)
	e := newE2E(t, "")
	dir := filepath.Dir(e.db)
	upstream := strings.TrimPrefix(up.URL, "http://")
	e.loadRaw(fmt.Sprintf(`{
	admin localhost:2999
	http_port 9080
	https_port 9443
	grace_period 1s
	skip_install_trust
}

http://127.0.0.1:9080 {
	wechat_auth /api/* {
		app_id      %[1]s
		app_secret  %[2]s
		api_base    http://127.0.0.1:9081
		db          %[3]s/a.db
		signing_key %[4]s
		login_path  /api/wx/login
		errors      caddy
	}
	wechat_auth /b/* {
		app_id        wxe2e00000000000b2
		app_secret    secret-of-b
		api_base      http://127.0.0.1:9081
		db            %[3]s/b.db
		header_prefix X-App-B-
		optional
		web {
			path   /b/web
			cookie wb
		}
	}
	handle_errors {
		reverse_proxy %[5]s
	}
	reverse_proxy %[5]s
}
`, e2eAppID, e2eSecret, dir, e2eKey, upstream))

	for _, path := range []string{"/api/x", "/other", "/b/x"} {
		req, err := http.NewRequest(http.MethodGet, siteURL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("X-App-B-User-ID", "2")
		req.Header.Set("X-WeChat-User-ID", "1")
		req.Header.Set("X-Not-Identity", "kept")
		want := "theirs=1"
		if path != "/b/x" { // there the block's own guard refuses the cookie
			req.Header.Set("Cookie", "wb=forged; wb_refresh=r; wb_state=s; theirs=1")
		} else {
			req.Header.Set("Cookie", want)
		}
		res, err := e.client.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		var got map[string][]string
		err = json.NewDecoder(res.Body).Decode(&got)
		res.Body.Close()
		if err != nil {
			t.Fatalf("GET %s: status %d, reading the echo: %v", path, res.StatusCode, err)
		}
		if got["X-Not-Identity"] == nil {
			t.Fatalf("GET %s: the request did not reach the upstream as expected: %v", path, got)
		}
		if v := got["Cookie"]; len(v) != 1 || v[0] != want {
			t.Errorf("GET %s (status %d): Cookie at the upstream = %q, want only theirs=1", path, res.StatusCode, v)
		}
		for k, v := range got {
			f := strings.ToLower(k)
			if strings.HasPrefix(f, "x-wechat-") || strings.HasPrefix(f, "x-app-b-") {
				t.Errorf("GET %s (status %d): forged header reached the upstream: %s: %v", path, res.StatusCode, k, v)
			}
		}
	}
}
