package wechatauth_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
)

// TestE2EStripTrailers sends the forged identity fields as request
// trailers of a chunked body: the upstream must not receive them there
// either (Caddy's reverse_proxy forwards request trailers), on a guarded
// path, in the optional block and outside every matcher.
func TestE2EStripTrailers(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body) // trailers arrive at the body's end
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]http.Header{"header": r.Header, "trailer": r.Trailer})
	}))
	t.Cleanup(up.Close)
	e := newE2E(t, "")
	e.loadRaw(stripConfig(filepath.Dir(e.db), up.URL, ""))
	a := e.postJSON(siteURL+"/api/wx/login", map[string]string{"code": e.mint("o_trailer_user")}, nil)
	expect(t, a, 200, "")
	tok := a.body["token"].(string)

	for _, path := range []string{"/api/x", "/b/x", "/other"} {
		t.Run(path, func(t *testing.T) {
			body := io.MultiReader(strings.NewReader("hello")) // unknown length: chunked
			req, err := http.NewRequest(http.MethodPost, siteURL+path, body)
			if err != nil {
				t.Fatal(err)
			}
			req.ContentLength = -1
			if path == "/api/x" {
				req.Header.Set("Authorization", "Bearer "+tok)
			}
			req.Trailer = http.Header{
				"X-Wechat-User-Id":  {"999"},
				"X-Wechat-Platform": {"alipay"},
				"X-App-B-Openid":    {"o_forged"},
				"X-Not-Identity":    {"kept"},
			}
			res, err := e.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			if res.StatusCode != http.StatusOK {
				t.Fatalf("status %d", res.StatusCode)
			}
			var got map[string]http.Header
			if err := json.NewDecoder(res.Body).Decode(&got); err != nil {
				t.Fatal(err)
			}
			for k, v := range got["trailer"] {
				f := strings.ToLower(k)
				if strings.HasPrefix(f, "x-wechat-") || strings.HasPrefix(f, "x-app-b-") {
					t.Errorf("forged trailer reached the upstream: %s: %v", k, v)
				}
			}
			if v := got["trailer"].Get("X-Not-Identity"); v != "kept" {
				t.Errorf("an unrelated trailer did not arrive: %v", got["trailer"])
			}
		})
	}
}
