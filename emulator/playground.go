package emulator

import (
	"embed"
	"io/fs"
	"net/http"
	"path"
	"strconv"
	"strings"

	"github.com/wxauth/caddy-wechat-auth/client"
)

// pathPlayground is where the playground page is served; its assets live
// under pathPlayground + "/".
const pathPlayground = "/emulator/playground"

// playgroundFiles holds the page and its assets. The client script is not
// among them: it is served from package client, so the playground runs the
// same wechat-auth.js file a mini-program copies.
//
//go:embed playground
var playgroundFiles embed.FS

// playgroundIndex is the page served at pathPlayground.
const playgroundIndex = "index.html"

// playgroundCSP keeps the page to its own scripts and styles; it may call
// any http(s) site, since the protected site's URL is typed into the page,
// and show images from it (the avatars the site serves).
const playgroundCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: http: https:; " +
	"connect-src 'self' http: https:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// playgroundTypes are the Content-Types of the playground's files, by
// extension.
var playgroundTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".ts":   "text/plain; charset=utf-8",
}

// isPlaygroundPath reports whether p is the playground page or one of its
// assets.
func isPlaygroundPath(p string) bool {
	return p == pathPlayground || strings.HasPrefix(p, pathPlayground+"/")
}

// servePlayground serves the playground page at pathPlayground, its assets
// under it, and the client script (and its .d.ts) from package client.
func (e *Emulator) servePlayground(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeHelperError(w, http.StatusMethodNotAllowed, "method not allowed; use GET")
		return nil
	}
	rest := strings.TrimPrefix(r.URL.Path, pathPlayground)
	var (
		fsys fs.FS = playgroundFiles
		name string
	)
	switch {
	case rest == "":
		name = "playground/" + playgroundIndex
	case rest == "/":
		// The page's asset URLs are relative to pathPlayground itself, so
		// send the browser there (relatively, so a path prefix survives).
		w.Header().Set("Location", "../playground")
		w.WriteHeader(http.StatusFound)
		return nil
	case rest == "/"+client.ScriptName || rest == "/wechat-auth.d.ts":
		fsys, name = client.FS, rest[1:]
	case rest == "/"+playgroundIndex:
		// One URL for the page: its relative asset URLs only work there.
		name = ""
	default:
		name = "playground" + rest
	}
	ctype, known := playgroundTypes[path.Ext(name)]
	body, err := fs.ReadFile(fsys, name)
	if !known || !fs.ValidPath(name) || err != nil {
		writeHelperError(w, http.StatusNotFound, "no such playground file")
		return nil
	}
	h := w.Header()
	h.Set("Content-Type", ctype)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", playgroundCSP)
	h.Set("Referrer-Policy", "no-referrer")
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
	return nil
}
