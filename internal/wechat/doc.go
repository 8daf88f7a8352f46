// Package wechat is a client for the parts of WeChat's server API that a
// mini-program login backend needs, plus the open-data cryptography that
// goes with them. It uses plain net/http and knows nothing about Caddy.
//
// # Calls
//
//   - [Client.Code2Session] exchanges the one-time code from wx.login at
//     /sns/jscode2session for the user's openid, unionid and session_key.
//   - [Client.AccessToken] returns the app's access token from
//     /cgi-bin/stable_token, cached in memory until shortly before it expires.
//   - [Client.PhoneNumber] exchanges the code from the getPhoneNumber button
//     at /wxa/business/getuserphonenumber.
//   - [Client.CheckSession] asks /wxa/checksession whether a stored
//     session_key is still the user's current one.
//
// WeChat answers API errors with HTTP 200 and a JSON body carrying a
// non-zero errcode. Such answers become an [*APIError], which matches the
// sentinel errors of this package with errors.Is: [ErrInvalidCode],
// [ErrUserBlocked], [ErrRateLimited], [ErrUnavailable],
// [ErrSessionKeyInvalid], or [ErrAPI] for every other errcode. Transport
// failures (timeouts, refused connections, HTTP 5xx) match
// [ErrUnavailable]; answers that are not what WeChat documents match
// [ErrBadResponse]. [RetryAfter] suggests how long a caller should tell its
// own client to wait.
//
// # Retries and sharing
//
// A call is retried at most once, and only after errcode -1 ("system busy").
// It is never retried after a timeout or a connection error: the login code
// may already have been spent. Concurrent Code2Session calls with the same
// code share one upstream request, which runs on a context detached from
// any single caller so that one impatient caller cannot fail the others;
// every caller still stops waiting when its own context ends. Concurrent
// AccessToken callers without a valid cached token share one fetch. When
// WeChat rejects the access token (errcode 40001, 40014 or 42001), the
// token is fetched again with force_refresh=true, once, and only if the
// cached token is still the rejected one, and the call is retried once.
//
// # Secrets
//
// The app secret, login and phone codes, access tokens and session keys
// never appear in errors or log entries. Errors carry the API name, the
// errcode and WeChat's errmsg (with any of those values redacted); network
// errors are stripped of the request URL, which holds secrets in its query.
//
// # Open data
//
// [DecryptOpenData] decrypts the encryptedData/iv pairs that mini-program
// APIs such as wx.getUserInfo hand to the client (AES-128-CBC keyed by the
// session key, PKCS#7 padding) and checks their watermark.
// [VerifyRawSignature] checks the rawData signature that comes with them.
// [EncryptOpenData] and [SessionSignature] implement WeChat's side of the
// same rules, for emulators and tests.
package wechat
