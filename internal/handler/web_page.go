package handler

import (
	"html/template"
	"net/http"
	"strconv"
	"time"
)

// The short HTML pages the browser endpoints and the cookie guard answer
// a navigation with: a person reads them, so they say what to do next.
var pageTemplate = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title></head>
<body data-error="{{.Code}}" style="font-family:sans-serif;max-width:32em;margin:3em auto;padding:0 1em">
<h1 style="font-size:1.3em">{{.Title}}</h1>
<p>{{.Text}}</p>
{{if .Link}}<p><a href="{{.Link}}">{{.LinkText}}</a></p>{{end}}
</body></html>
`))

// page is one HTML answer.
type page struct {
	Status   int
	Code     string // the error code, as in JSON answers
	Title    string
	Text     string
	Link     string // optional: a same-origin path
	LinkText string
}

// writePage writes p. It is never cached, and forbids scripts, frames and
// every subresource.
func writePage(w http.ResponseWriter, r *http.Request, p page, retryAfter time.Duration) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'")
	h.Set("Referrer-Policy", "no-referrer")
	if retryAfter > 0 {
		h.Set("Retry-After", strconv.FormatInt(int64((retryAfter+time.Second-1)/time.Second), 10))
	}
	w.WriteHeader(p.Status)
	if r.Method == http.MethodHead {
		return
	}
	_ = pageTemplate.Execute(w, p)
}

// writeWebError answers e of a browser endpoint: as JSON when the request
// asks for JSON, else as a page (a browser following a redirect, or a
// web-view, may send any Accept).
func writeWebError(w http.ResponseWriter, r *http.Request, e *Error, title, text string) {
	if wantsJSON(r) {
		WriteError(w, e)
		return
	}
	if e.Challenge != "" {
		w.Header().Set("WWW-Authenticate", e.Challenge)
	}
	if title == "" {
		title = "Something went wrong"
	}
	if text == "" {
		text = e.Message
	}
	writePage(w, r, page{Status: e.Status, Code: e.Code, Title: title, Text: text, Link: "/", LinkText: "Back to the start page"}, e.RetryAfter)
}
