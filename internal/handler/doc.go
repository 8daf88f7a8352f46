// Package handler holds the HTTP side of caddy-wechat-auth as plain net/http
// code with no Caddy types: the endpoints (login, refresh, logout, profile,
// phone, decrypt, JWKS) and the token guard that runs on every other request.
//
// The Caddy module (package wechatauth at the repository root) builds one
// Handler per configured wechat_auth block and calls Handler.Serve for each
// request: Serve removes client-sent identity headers, lets a CORS
// preflight through, answers endpoint paths, and otherwise verifies the
// access token, puts the identity on the request and tells the module
// whether to call the next handler (see Serve for the order).
//
// With Config.Web the handler also serves browser pages (web.go and the
// web_*.go files): cookie sessions of the same users, reached through a
// web-view ticket or WeChat's web OAuth, and a guard that reads the access
// cookie, renews an expired one inline from the refresh cookie, sends an
// unauthenticated page load to the login and refuses cross-origin requests
// that carry only the cookie. Those endpoints answer a short HTML page
// instead of JSON unless the request asks for JSON.
//
// Every other endpoint answers JSON. Success bodies carry "status":"success";
// errors are {"status":"error","error":"<code>","message":"<text>"} with the
// codes listed in errors.go. Nothing here ever writes a WeChat session_key, the app
// secret, a login code or a token to a log.
//
// Sessions end for real: a refresh token is single-use (rotation with reuse
// detection, see store.Rotate) and a logout puts the session on an in-memory
// revocation list (Revocations) that the guard consults on every request
// without touching the store.
package handler
