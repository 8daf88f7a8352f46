package emulator

import (
	"bytes"
	_ "embed"
	"errors"
	"html/template"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"go.uber.org/zap"
)

// maxStateBytes is the longest state WeChat carries through the redirect.
const maxStateBytes = 128

// oauthPageSource is the template of the authorize and qrconnect pages and
// of their error page.
//
//go:embed oauth_page.html
var oauthPageSource string

// oauthPage renders oauthPageSource. html/template escapes every value by
// its context (text, attribute, URL).
var oauthPage = template.Must(template.New("oauth").Parse(oauthPageSource))

// scopeTexts says what each scope gives the app, for the page.
var scopeTexts = map[string]string{
	scopeBase:     "your identity in this app (openid), silently: no nickname or avatar",
	scopeUserInfo: "your identity (openid, unionid) and your nickname and avatar",
	scopeLogin:    "to log you in to its website: your identity (openid, unionid), nickname and avatar",
}

// authorizeRequest is a checked authorize or qrconnect request.
type authorizeRequest struct {
	page        string // pathAuthorize or pathQRConnect
	appid       string
	redirectURI string
	redirect    *url.URL
	scope       string
	state       string
}

// pageError is what the page says about a refused request; code is WeChat's
// page error code where it has one, else 0.
type pageError struct {
	status int
	code   int
	msg    string
}

// oauthPageData is what the template shows.
type oauthPageData struct {
	Page         string
	Title        string
	AppID        string
	Scope        string
	ScopeText    string
	RedirectURI  string
	RedirectHost string
	State        string
	OpenID       string
	UnionID      string
	Nickname     string
	UserInfo     bool // the scope gives the profile: show the nickname field
	Snapshot     bool // the authorize page with snsapi_userinfo: offer a snapshot-page user
	ErrorCode    int
	Error        string
}

// serveAuthorizePage serves GET (the page) and POST (the Allow or Deny
// button) of /connect/oauth2/authorize and /connect/qrconnect.
func (e *Emulator) serveAuthorizePage(w http.ResponseWriter, r *http.Request, page string) {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		req, perr := e.parseAuthorize(page, r.URL.Query())
		if perr != nil {
			e.writePageError(w, r, *perr)
			return
		}
		e.writeAuthorizePage(w, r, req)
	case http.MethodPost:
		e.decide(w, r, page)
	default:
		w.Header().Set("Allow", "GET, HEAD, POST")
		e.writePageError(w, r, pageError{status: http.StatusMethodNotAllowed, msg: "method not allowed; open the page with GET"})
	}
}

// parseAuthorize checks an authorize or qrconnect query like WeChat: appid,
// redirect_uri (an absolute http(s) URL), response_type=code, a scope the
// page grants, and an optional state of at most 128 bytes.
func (e *Emulator) parseAuthorize(page string, v url.Values) (authorizeRequest, *pageError) {
	bad := func(code int, msg string) (authorizeRequest, *pageError) {
		return authorizeRequest{}, &pageError{status: http.StatusBadRequest, code: code, msg: msg}
	}
	for _, k := range []string{"appid", "redirect_uri", "response_type", "scope", "state"} {
		if len(v[k]) > 1 {
			return bad(0, k+" is given more than once")
		}
	}
	req := authorizeRequest{
		page:        page,
		appid:       v.Get("appid"),
		redirectURI: v.Get("redirect_uri"),
		scope:       v.Get("scope"),
		state:       v.Get("state"),
	}
	switch {
	case req.appid == "":
		return bad(10012, "appid is missing")
	case !validID(req.appid) || !e.knownOAuthApp(req.appid):
		return bad(0, "appid is not an app the emulator knows")
	case req.redirectURI == "":
		return bad(10011, "redirect_uri is missing")
	}
	u, err := redirectTarget(req.redirectURI)
	if err != nil {
		return bad(10003, "redirect_uri: "+err.Error())
	}
	req.redirect = u
	switch {
	case v.Get("response_type") != "code":
		return bad(0, "response_type must be code")
	case req.scope == "":
		return bad(10010, "scope is missing")
	case page == pathQRConnect && req.scope != scopeLogin:
		return bad(0, "scope must be snsapi_login on the QR login page")
	case page == pathAuthorize && req.scope != scopeBase && req.scope != scopeUserInfo:
		return bad(10005, "scope must be snsapi_base or snsapi_userinfo")
	case len(req.state) > maxStateBytes:
		return bad(0, "state is longer than 128 bytes")
	case hasControl(req.state):
		return bad(0, "state contains control characters")
	}
	return req, nil
}

// redirectTarget parses a redirect_uri: an absolute http or https URL with
// a plain host name or address, no user information and no fragment.
func redirectTarget(raw string) (*url.URL, error) {
	if len(raw) > maxURLBytes || hasControl(raw) {
		return nil, errors.New("must be an absolute http(s) URL of at most 2048 bytes")
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Opaque != "" {
		return nil, errors.New("must be an absolute http(s) URL")
	}
	if u.User != nil {
		return nil, errors.New("must not carry user information")
	}
	if u.Fragment != "" || strings.Contains(raw, "#") {
		return nil, errors.New("must not carry a fragment")
	}
	if !validHost(u.Hostname()) {
		return nil, errors.New("host must be a domain name or an IP address")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return nil, errors.New("port must be 1 to 65535")
		}
	}
	return u, nil
}

// validHTTPURL reports whether s is an absolute http(s) URL of at most
// 2048 bytes.
func validHTTPURL(s string) bool {
	if len(s) > maxURLBytes || hasControl(s) {
		return false
	}
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

// validHost reports whether h is made of the characters of a domain name or
// an IP address (IPv6 with its colons), so that it is safe in a header.
func validHost(h string) bool {
	if h == "" {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '-' || c == ':') {
			return false
		}
	}
	return true
}

// hasControl reports whether s contains an ASCII control character.
func hasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return true
		}
	}
	return false
}

// writeAuthorizePage answers the authorize or qrconnect page, its fields
// prefilled with the app's latest grant (so a second login is the same user)
// or with a fresh openid.
func (e *Emulator) writeAuthorizePage(w http.ResponseWriter, r *http.Request, req authorizeRequest) {
	data := oauthPageData{
		Page:         req.page,
		Title:        "Authorize",
		AppID:        req.appid,
		Scope:        req.scope,
		ScopeText:    scopeTexts[req.scope],
		RedirectURI:  req.redirectURI,
		RedirectHost: req.redirect.Host,
		State:        req.state,
		OpenID:       newOpenID(),
		Nickname:     defaultOAuthNickname,
		UserInfo:     req.scope != scopeBase,
		Snapshot:     req.page == pathAuthorize && req.scope == scopeUserInfo,
	}
	if req.page == pathQRConnect {
		data.Title = "Log in with WeChat"
	}
	if last, ok := e.state.lastOAuthGrant(req.appid); ok {
		data.OpenID, data.UnionID, data.Nickname = last.openid, last.unionid, last.nickname
	}
	e.renderPage(w, r, http.StatusOK, data, req.redirect)
}

// decide serves the page's form: Allow mints a code and sends the browser to
// redirect_uri?code=…&state=…; Deny sends it to redirect_uri?state=…. The
// request is checked again: the form's hidden fields are the browser's to
// change.
func (e *Emulator) decide(w http.ResponseWriter, r *http.Request, page string) {
	ctype, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if ctype != "application/x-www-form-urlencoded" {
		e.writePageError(w, r, pageError{status: http.StatusUnsupportedMediaType, msg: "the form must be sent as application/x-www-form-urlencoded"})
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxBodyBytes)
	if err := r.ParseForm(); err != nil {
		status := http.StatusBadRequest
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			status = http.StatusRequestEntityTooLarge
		}
		e.writePageError(w, r, pageError{status: status, msg: "the form could not be read"})
		return
	}
	f := r.PostForm
	req, perr := e.parseAuthorize(page, f)
	if perr != nil {
		e.writePageError(w, r, *perr)
		return
	}
	switch f.Get("action") {
	case "deny":
		redirectWith(w, req.redirect, url.Values{"state": {req.state}})
		return
	case "allow":
	default:
		e.writePageError(w, r, pageError{status: http.StatusBadRequest, msg: "action must be allow or deny"})
		return
	}
	g := oauthGrant{
		appid:    req.appid,
		openid:   strings.TrimSpace(f.Get("openid")),
		unionid:  strings.TrimSpace(f.Get("unionid")),
		scope:    req.scope,
		snapshot: f.Get("snapshot") != "",
		nickname: strings.TrimSpace(f.Get("nickname")),
	}
	if g.nickname == "" {
		g.nickname = defaultOAuthNickname
	}
	if msg := e.checkGrant(g, page == pathQRConnect); msg != "" {
		e.writePageError(w, r, pageError{status: http.StatusBadRequest, msg: msg})
		return
	}
	code, err := e.state.mintOAuthCode(e.now(), g)
	if err != nil {
		e.writePageError(w, r, pageError{status: http.StatusServiceUnavailable, msg: "minting the code failed; try again"})
		return
	}
	redirectWith(w, req.redirect, url.Values{"code": {code}, "state": {req.state}})
}

// redirectWith answers 302 to u with params appended to its query, in the
// order code, state (the parameters it already has are kept as they are).
func redirectWith(w http.ResponseWriter, u *url.URL, params url.Values) {
	var b strings.Builder
	for _, k := range []string{"code", "state"} {
		vs, ok := params[k]
		if !ok {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('&')
		}
		b.WriteString(k + "=" + url.QueryEscape(vs[0]))
	}
	target := *u
	if target.RawQuery == "" {
		target.RawQuery = b.String()
	} else {
		target.RawQuery += "&" + b.String()
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Location", target.String())
	w.WriteHeader(http.StatusFound)
}

// writePageError answers an HTML page saying what is wrong with the request.
func (e *Emulator) writePageError(w http.ResponseWriter, r *http.Request, perr pageError) {
	e.renderPage(w, r, perr.status, oauthPageData{Title: "Authorization failed", ErrorCode: perr.code, Error: perr.msg}, nil)
}

// renderPage renders the template with the page's security headers. The
// form may send the browser on to redirect's origin (browsers check a
// form's redirects against form-action).
func (e *Emulator) renderPage(w http.ResponseWriter, r *http.Request, status int, data oauthPageData, redirect *url.URL) {
	var buf bytes.Buffer
	if err := oauthPage.Execute(&buf, data); err != nil {
		e.logger.Error("rendering the emulated OAuth page", zap.Error(err))
		http.Error(w, "rendering page", http.StatusInternalServerError)
		return
	}
	formAction := "'none'"
	if redirect != nil {
		formAction = "'self' " + redirect.Scheme + "://" + redirect.Host
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(buf.Len()))
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; frame-ancestors 'none'; form-action "+formAction)
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(buf.Bytes())
	}
}
