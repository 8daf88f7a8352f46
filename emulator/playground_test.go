package emulator

import (
	"bytes"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/wxauth/caddy-wechat-auth/client"
)

func TestPlaygroundFiles(t *testing.T) {
	e, _ := configured(t)
	clientJS, err := fs.ReadFile(client.FS, client.ScriptName)
	if err != nil {
		t.Fatal(err)
	}
	onDisk, err := os.ReadFile(filepath.Join("..", "client", client.ScriptName))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, method, path string
		status             int
		ctype              string
		body               []byte // exact body, when set
		contains           string
	}{
		{"page", "GET", "/emulator/playground", 200, "text/html; charset=utf-8", nil, "wechat_auth playground"},
		{"page HEAD", "HEAD", "/emulator/playground", 200, "text/html; charset=utf-8", []byte{}, ""},
		{"client script is the mini-program's file", "GET", "/emulator/playground/wechat-auth.js", 200, "text/javascript; charset=utf-8", onDisk, ""},
		{"client types", "GET", "/emulator/playground/wechat-auth.d.ts", 200, "text/plain; charset=utf-8", nil, "export function createClient"},
		{"shim", "GET", "/emulator/playground/wx-shim.js", 200, "text/javascript; charset=utf-8", nil, "createPlaygroundWx"},
		{"style", "GET", "/emulator/playground/style.css", 200, "text/css; charset=utf-8", nil, ""},
		{"unknown asset", "GET", "/emulator/playground/nope.js", 404, "application/json", nil, "no such playground file"},
		{"directory", "GET", "/emulator/playground/playground", 404, "application/json", nil, ""},
		{"index by name is not a second page", "GET", "/emulator/playground/index.html", 404, "application/json", nil, ""},
		{"traversal", "GET", "/emulator/playground/../emulator.go", 404, "application/json", nil, ""},
		{"post", "POST", "/emulator/playground", 405, "application/json", nil, "use GET"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(tt.method, "http://emulator.test/", nil)
			r.URL.Path = tt.path // unclean paths as a raw client could send them
			w, called, err := serve(t, e, r)
			if err != nil || called {
				t.Fatalf("err=%v, next called=%v", err, called)
			}
			if w.Code != tt.status {
				t.Fatalf("status %d, want %d; body %q", w.Code, tt.status, w.Body.String())
			}
			if got := w.Header().Get("Content-Type"); got != tt.ctype {
				t.Errorf("Content-Type %q, want %q", got, tt.ctype)
			}
			if tt.body != nil && !bytes.Equal(w.Body.Bytes(), tt.body) {
				t.Errorf("body differs from the expected bytes (%d bytes, want %d)", w.Body.Len(), len(tt.body))
			}
			if !strings.Contains(w.Body.String(), tt.contains) {
				t.Errorf("body does not contain %q", tt.contains)
			}
			if tt.status == 200 {
				h := w.Header()
				if h.Get("X-Content-Type-Options") != "nosniff" || !strings.Contains(h.Get("Content-Security-Policy"), "script-src 'self'") {
					t.Errorf("missing protective headers: %v", h)
				}
			}
		})
	}
	if !bytes.Equal(clientJS, onDisk) {
		t.Fatal("client.FS does not hold client/wechat-auth.js as it is on disk")
	}
	if allow := mustServe(t, e, "POST", "/emulator/playground").Header().Get("Allow"); allow != "GET, HEAD" {
		t.Errorf("Allow %q", allow)
	}
}

// TestPlaygroundSlashRedirect: the page's asset URLs are relative to
// /emulator/playground, so the trailing-slash form is sent there.
func TestPlaygroundSlashRedirect(t *testing.T) {
	e, _ := configured(t)
	w := mustServe(t, e, "GET", "/emulator/playground/")
	if w.Code != http.StatusFound || w.Header().Get("Location") != "../playground" {
		t.Fatalf("got %d Location %q", w.Code, w.Header().Get("Location"))
	}
}

// TestPlaygroundReferences: every script and stylesheet the page names is
// served.
func TestPlaygroundReferences(t *testing.T) {
	e, _ := configured(t)
	page := mustServe(t, e, "GET", "/emulator/playground").Body.String()
	refs := regexp.MustCompile(`(?:src|href)="([^"]+)"`).FindAllStringSubmatch(page, -1)
	if len(refs) < 4 {
		t.Fatalf("found %d references in the page, want at least 4", len(refs))
	}
	for _, m := range refs {
		if m[1] == "data:," { // the empty favicon: no request at all
			continue
		}
		if !strings.HasPrefix(m[1], "playground/") {
			t.Errorf("reference %q is not relative to the page", m[1])
			continue
		}
		if w := mustServe(t, e, "GET", "/emulator/"+m[1]); w.Code != 200 {
			t.Errorf("%s: status %d", m[1], w.Code)
		}
	}
	// Nothing is fetched from elsewhere: offline, no CDN.
	if strings.Contains(page, "//") && regexp.MustCompile(`(?:src|href)="(?:https?:)?//`).MatchString(page) {
		t.Error("the page loads something from another host")
	}
}

// TestPlaygroundOtherPathsPass: paths that only look alike go to next.
func TestPlaygroundOtherPathsPass(t *testing.T) {
	e, _ := configured(t)
	for _, p := range []string{"/emulator/playgroundx", "/playground", "/emulator/play"} {
		r := httptest.NewRequest("GET", "http://emulator.test"+p, nil)
		_, called, err := serve(t, e, r)
		if err != nil || !called {
			t.Errorf("%s: next called=%v err=%v, want next", p, called, err)
		}
	}
}

func mustServe(t *testing.T, e *Emulator, method, path string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(method, "http://emulator.test"+path, nil)
	w, _, err := serve(t, e, r)
	if err != nil {
		t.Fatal(err)
	}
	return w
}
