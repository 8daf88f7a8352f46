package wechatauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/wxauth/caddy-wechat-auth/store"
)

func init() {
	caddy.RegisterModule(AdminAPI{})
}

// adminPrefix is where the admin API's routes live on Caddy's admin
// endpoint.
const adminPrefix = "/wechat_auth/"

// maxAdminBody bounds the JSON body of an admin request.
const maxAdminBody = 64 << 10

// maxBanReason bounds the reason given with a ban.
const maxBanReason = 1024

// AdminAPI is the admin.api.wechat_auth module: routes under /wechat_auth/
// on Caddy's admin endpoint (so they have Caddy's admin access control)
// to look up users and sessions, end sessions, ban users and take
// backups of the running wechat_auth handlers. It reaches the handlers
// through the process's live registry, so it always acts on the config
// that is serving. Answers are JSON; errors are
// {"error":"<code>","message":"…"}. No answer ever carries a session_key
// or a token.
type AdminAPI struct {
	logger *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (AdminAPI) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.wechat_auth",
		New: func() caddy.Module { return new(AdminAPI) },
	}
}

// Provision keeps the logger.
func (a *AdminAPI) Provision(ctx caddy.Context) error {
	a.logger = ctx.Logger()
	return nil
}

// Routes returns the one route that serves every /wechat_auth/ path.
func (a *AdminAPI) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{{Pattern: adminPrefix, Handler: caddy.AdminHandlerFunc(a.serve)}}
}

// adminError is an error answer of the admin API.
type adminError struct {
	status  int
	code    string
	message string
	allow   string // for 405
	cause   error  // logged, never sent
}

func (e *adminError) Error() string { return e.code + ": " + e.message }

func adminErr(status int, code, format string, args ...any) *adminError {
	return &adminError{status: status, code: code, message: fmt.Sprintf(format, args...)}
}

func badAdminRequest(format string, args ...any) *adminError {
	return adminErr(http.StatusBadRequest, "invalid_request", format, args...)
}

func notFound(format string, args ...any) *adminError {
	return adminErr(http.StatusNotFound, "not_found", format, args...)
}

// methods answers 405 unless r's method is one of allowed.
func methods(r *http.Request, allowed ...string) *adminError {
	for _, m := range allowed {
		if r.Method == m {
			return nil
		}
	}
	e := adminErr(http.StatusMethodNotAllowed, "method_not_allowed", "method %s not allowed; use %s", r.Method, strings.Join(allowed, ", "))
	e.allow = strings.Join(allowed, ", ")
	return e
}

// serve routes a request and writes its answer or error.
func (a *AdminAPI) serve(w http.ResponseWriter, r *http.Request) error {
	if e := a.route(w, r); e != nil {
		if e.status >= 500 && a.logger != nil {
			a.logger.Error("wechat_auth admin request failed",
				zap.String("method", r.Method), zap.String("path", r.URL.Path),
				zap.String("error", e.code), zap.NamedError("cause", e.cause))
		}
		if e.allow != "" {
			w.Header().Set("Allow", e.allow)
		}
		writeAdminJSON(w, e.status, struct {
			Error   string `json:"error"`
			Message string `json:"message"`
		}{e.code, e.message})
	}
	return nil
}

// route dispatches on the path below /wechat_auth/:
//
//	apps
//	apps/{app}
//	apps/{app}/users            (a lookup by query string: refused, see below)
//	apps/{app}/users/lookup     (POST {"openid"|"unionid"|"phone": …})
//	apps/{app}/users/{id}
//	apps/{app}/users/{id}/sessions
//	apps/{app}/users/{id}/ban
//	apps/{app}/sessions/{sid}
//	apps/{app}/backup
func (a *AdminAPI) route(w http.ResponseWriter, r *http.Request) *adminError {
	seg, err := pathSegments(strings.TrimPrefix(r.URL.EscapedPath(), adminPrefix))
	if err != nil {
		return badAdminRequest("malformed path: %v", err)
	}
	if len(seg) == 0 || seg[0] != "apps" {
		return notFound("no such admin route %s", r.URL.Path)
	}
	if len(seg) == 1 {
		if e := methods(r, http.MethodGet); e != nil {
			return e
		}
		return a.listApps(w, r)
	}
	app := liveApps.get(seg[1])
	if app == nil {
		return adminErr(http.StatusNotFound, "unknown_app", "no wechat_auth handler serves app %q", seg[1])
	}
	rest := seg[2:]
	switch {
	case len(rest) == 0:
		if e := methods(r, http.MethodGet); e != nil {
			return e
		}
		info, e := appInfo(r.Context(), app)
		if e != nil {
			return e
		}
		writeAdminJSON(w, http.StatusOK, info)
		return nil
	case rest[0] == "users" && len(rest) == 1:
		if e := methods(r, http.MethodGet); e != nil {
			return e
		}
		return badAdminRequest(`look a user up with POST …/users/lookup and a JSON body such as {"openid":"…"} (or "unionid", "phone"), ` +
			`or GET …/users/{id}: the query string is written to Caddy's admin log, and openids and phone numbers are personal data`)
	case rest[0] == "users" && len(rest) == 2 && rest[1] == "lookup":
		if e := methods(r, http.MethodPost); e != nil {
			return e
		}
		return a.lookupUser(w, r, app)
	case rest[0] == "users" && len(rest) <= 3:
		id, err := strconv.ParseUint(rest[1], 10, 64)
		if err != nil || id == 0 {
			return badAdminRequest("user id %q is not a positive integer", rest[1])
		}
		if len(rest) == 2 {
			if e := methods(r, http.MethodGet); e != nil {
				return e
			}
			u, err := app.st.User(r.Context(), app.handler.AppID(), id)
			if err != nil {
				return storeErr(err, "no user %d in app %q", id, app.handler.AppID())
			}
			writeAdminJSON(w, http.StatusOK, viewAdminUser(u))
			return nil
		}
		switch rest[2] {
		case "sessions":
			return a.userSessions(w, r, app, id)
		case "ban":
			return a.ban(w, r, app, id)
		}
	case rest[0] == "sessions" && len(rest) == 2:
		if e := methods(r, http.MethodDelete); e != nil {
			return e
		}
		s, err := app.handler.RevokeSession(r.Context(), rest[1])
		if err != nil {
			return storeErr(err, "no session %q in app %q", rest[1], app.handler.AppID())
		}
		writeAdminJSON(w, http.StatusOK, viewAdminSession(s))
		return nil
	case rest[0] == "backup" && len(rest) == 1:
		if e := methods(r, http.MethodGet); e != nil {
			return e
		}
		return a.backup(w, r, app)
	}
	return notFound("no such admin route %s", r.URL.Path)
}

// pathSegments splits an escaped path into unescaped segments, ignoring
// one trailing slash.
func pathSegments(p string) ([]string, error) {
	p = strings.TrimSuffix(p, "/")
	if p == "" {
		return nil, nil
	}
	parts := strings.Split(p, "/")
	for i, s := range parts {
		u, err := url.PathUnescape(s)
		if err != nil {
			return nil, err
		}
		if u == "" {
			return nil, errors.New("empty path segment")
		}
		parts[i] = u
	}
	return parts, nil
}

// adminApp is one app in GET /wechat_auth/apps.
type adminApp struct {
	AppID          string `json:"app_id"`
	Store          string `json:"store"`
	Users          int64  `json:"users"`
	ActiveSessions int64  `json:"active_sessions"`
}

func appInfo(ctx context.Context, app *liveApp) (adminApp, *adminError) {
	id := app.handler.AppID()
	st, err := app.st.Stats(ctx, id, time.Now())
	if err != nil {
		return adminApp{}, storeErr(err, "app %q has no data", id)
	}
	return adminApp{AppID: id, Store: app.store, Users: st.Users, ActiveSessions: st.ActiveSessions}, nil
}

func (a *AdminAPI) listApps(w http.ResponseWriter, r *http.Request) *adminError {
	out := []adminApp{}
	for _, app := range liveApps.list() {
		info, e := appInfo(r.Context(), app)
		if e != nil {
			return e
		}
		out = append(out, info)
	}
	writeAdminJSON(w, http.StatusOK, out)
	return nil
}

// userLookup is the body of POST …/users/lookup: exactly one key, given
// in the body because Caddy's admin endpoint logs every request's URI.
type userLookup struct {
	OpenID  *string `json:"openid"`
	UnionID *string `json:"unionid"`
	Phone   *string `json:"phone"`
}

// lookupUser answers POST …/users/lookup: the user with the one openid,
// unionid or phone of the body (with a shared phone: the lowest id).
func (a *AdminAPI) lookupUser(w http.ResponseWriter, r *http.Request, app *liveApp) *adminError {
	var req userLookup
	if e := decodeAdminBody(r, &req); e != nil {
		return e
	}
	var (
		key, val string
		n        int
	)
	for _, k := range []struct {
		name string
		v    *string
	}{{"openid", req.OpenID}, {"unionid", req.UnionID}, {"phone", req.Phone}} {
		if k.v == nil {
			continue
		}
		if *k.v == "" {
			return badAdminRequest("%s is empty", k.name)
		}
		key, val, n = k.name, *k.v, n+1
	}
	if n != 1 {
		return badAdminRequest(`give exactly one of openid, unionid or phone, as a JSON body such as {"openid":"…"}`)
	}
	st, id, ctx := app.st, app.handler.AppID(), r.Context()
	var (
		u   store.User
		err error
	)
	switch key {
	case "openid":
		u, err = st.UserByOpenID(ctx, id, val)
	case "unionid":
		u, err = st.UserByUnionID(ctx, id, val)
	case "phone":
		u, err = st.UserByPhone(ctx, id, val)
	}
	if err != nil {
		return storeErr(err, "no user with that %s in app %q", key, id)
	}
	writeAdminJSON(w, http.StatusOK, viewAdminUser(u))
	return nil
}

// userSessions answers GET (list) and DELETE (revoke all) on
// …/users/{id}/sessions.
func (a *AdminAPI) userSessions(w http.ResponseWriter, r *http.Request, app *liveApp, uid uint64) *adminError {
	if e := methods(r, http.MethodGet, http.MethodDelete); e != nil {
		return e
	}
	appID := app.handler.AppID()
	if r.Method == http.MethodDelete {
		ss, err := app.handler.RevokeUserSessions(r.Context(), uid)
		if err != nil {
			return storeErr(err, "no user %d in app %q", uid, appID)
		}
		writeAdminJSON(w, http.StatusOK, struct {
			UserID  uint64         `json:"user_id"`
			Revoked []adminSession `json:"revoked"`
		}{uid, viewAdminSessions(ss)})
		return nil
	}
	ss, err := app.st.UserSessions(r.Context(), appID, uid)
	if err != nil {
		return storeErr(err, "no user %d in app %q", uid, appID)
	}
	writeAdminJSON(w, http.StatusOK, viewAdminSessions(ss))
	return nil
}

// ban answers PUT (ban, body {"reason"}) and DELETE (lift) on
// …/users/{id}/ban.
func (a *AdminAPI) ban(w http.ResponseWriter, r *http.Request, app *liveApp, uid uint64) *adminError {
	if e := methods(r, http.MethodPut, http.MethodDelete); e != nil {
		return e
	}
	appID := app.handler.AppID()
	if r.Method == http.MethodDelete {
		u, err := app.handler.Unban(r.Context(), uid)
		if err != nil {
			return storeErr(err, "no user %d in app %q", uid, appID)
		}
		writeAdminJSON(w, http.StatusOK, viewAdminUser(u))
		return nil
	}
	var req struct {
		Reason string `json:"reason"`
	}
	if e := decodeAdminBody(r, &req); e != nil {
		return e
	}
	if len(req.Reason) > maxBanReason || !utf8.ValidString(req.Reason) || strings.ContainsFunc(req.Reason, isControl) {
		return badAdminRequest("reason must be UTF-8 text of at most %d bytes without control characters", maxBanReason)
	}
	u, ss, err := app.handler.Ban(r.Context(), uid, req.Reason)
	if err != nil {
		return storeErr(err, "no user %d in app %q", uid, appID)
	}
	writeAdminJSON(w, http.StatusOK, struct {
		User            adminUser `json:"user"`
		RevokedSessions int       `json:"revoked_sessions"`
	}{viewAdminUser(u), len(ss)})
	return nil
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

// decodeAdminBody reads a JSON object into dst: an empty body leaves dst
// as it is; unknown fields, trailing data and oversized bodies are refused.
func decodeAdminBody(r *http.Request, dst any) *adminError {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxAdminBody+1))
	if err != nil {
		return badAdminRequest("reading the body: %v", err)
	}
	if len(body) > maxAdminBody {
		return adminErr(http.StatusRequestEntityTooLarge, "payload_too_large", "body over %d bytes", maxAdminBody)
	}
	if len(strings.TrimSpace(string(body))) == 0 {
		return nil
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return badAdminRequest("body is not the expected JSON object: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return badAdminRequest("body has data after the JSON object")
	}
	return nil
}

// backup streams a snapshot of the app's database file.
func (a *AdminAPI) backup(w http.ResponseWriter, r *http.Request, app *liveApp) *adminError {
	b := app.backup
	if b == nil {
		return adminErr(http.StatusNotImplemented, "not_supported",
			"the %s store of app %q cannot be snapshotted through Caddy; back the database up with its own tools (for PostgreSQL: pg_dump)", app.store, app.handler.AppID())
	}
	name := fmt.Sprintf("wechat_auth-%s-%s.db", safeFileName(app.handler.AppID()), time.Now().UTC().Format("20060102T150405Z"))
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Disposition", `attachment; filename="`+name+`"`)
	h.Set("Cache-Control", "no-store")
	start := time.Now()
	n, err := b.Backup(r.Context(), w)
	if err != nil {
		if a.logger != nil {
			a.logger.Error("wechat_auth backup failed", zap.String("app_id", app.handler.AppID()), zap.Int64("bytes", n), zap.Error(err))
		}
		if n == 0 {
			return adminErr(http.StatusInternalServerError, "internal_error", "the snapshot could not be written; see Caddy's log")
		}
		// The status line went with the first byte. Abort the connection
		// instead of ending the body normally, so the client sees a
		// broken download, never a short snapshot that looks complete.
		panic(http.ErrAbortHandler)
	}
	if a.logger != nil {
		a.logger.Info("wechat_auth backup", zap.String("app_id", app.handler.AppID()), zap.Int64("bytes", n), zap.Duration("duration", time.Since(start)))
	}
	return nil
}

// storeErr maps a store error: not found → 404 with the message, conflict
// → 409, unavailable → 503, anything else → 500.
func storeErr(err error, notFoundFormat string, args ...any) *adminError {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return notFound(notFoundFormat, args...)
	case errors.Is(err, store.ErrConflict):
		return &adminError{status: http.StatusConflict, code: "conflict", message: "the change conflicts with stored data", cause: err}
	case errors.Is(err, store.ErrUnavailable):
		return &adminError{status: http.StatusServiceUnavailable, code: "store_unavailable", message: "the database cannot be reached; try again later", cause: err}
	}
	return &adminError{status: http.StatusInternalServerError, code: "internal_error", message: "storage failure, nothing was changed", cause: err}
}

// adminUser is a user as the admin API shows it.
type adminUser struct {
	ID        uint64    `json:"id"`
	OpenID    string    `json:"openid"`
	UnionID   string    `json:"unionid"`
	Nickname  string    `json:"nickname"`
	AvatarURL string    `json:"avatar_url"`
	Gender    int       `json:"gender"`
	Phone     string    `json:"phone"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	Banned    bool      `json:"banned"`
	BanReason string    `json:"ban_reason"`
}

func viewAdminUser(u store.User) adminUser {
	return adminUser{
		ID: u.ID, OpenID: u.OpenID, UnionID: u.UnionID, Nickname: u.Nickname,
		AvatarURL: u.AvatarURL, Gender: u.Gender, Phone: u.Phone,
		CreatedAt: u.CreatedAt.UTC(), UpdatedAt: u.UpdatedAt.UTC(),
		Banned: u.Banned, BanReason: u.BanReason,
	}
}

// adminSession is a session as the admin API shows it: no session_key,
// no token. Times not reached yet are null.
type adminSession struct {
	SID           string     `json:"sid"`
	CreatedAt     time.Time  `json:"created_at"`
	RefreshedAt   *time.Time `json:"refreshed_at"`
	ExpiresAt     time.Time  `json:"expires_at"`
	RevokedAt     *time.Time `json:"revoked_at"`
	RevokedReason string     `json:"revoked_reason"`
}

func viewAdminSession(s store.Session) adminSession {
	opt := func(t time.Time) *time.Time {
		if t.IsZero() {
			return nil
		}
		t = t.UTC()
		return &t
	}
	return adminSession{
		SID: s.ID, CreatedAt: s.CreatedAt.UTC(), RefreshedAt: opt(s.RefreshedAt),
		ExpiresAt: s.ExpiresAt.UTC(), RevokedAt: opt(s.RevokedAt), RevokedReason: s.RevokeReason,
	}
}

func viewAdminSessions(ss []store.Session) []adminSession {
	out := make([]adminSession, 0, len(ss))
	for _, s := range ss {
		out = append(out, viewAdminSession(s))
	}
	return out
}

// writeAdminJSON writes v as the JSON answer with status.
func writeAdminJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"error":"internal_error","message":"encoding the answer failed"}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// Interface guards
var (
	_ caddy.Provisioner = (*AdminAPI)(nil)
	_ caddy.AdminRouter = (*AdminAPI)(nil)
)
