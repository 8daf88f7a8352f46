// Package websession holds the pieces of browser cookie sessions that
// carry no HTTP handler: the sealed OAuth state cookie, the constant-time
// state check, the sanitising of `next` redirect targets, the cookies'
// attributes and the one-time web-view tickets.
//
// The OAuth state is kept the way oauth2-proxy keeps it: a random nonce
// goes to WeChat in the URL's state parameter, and the same nonce, with
// the page to return to and the OAuth app used, travels in a short-lived
// cookie sealed with AES-GCM (encrypted and authenticated) under a key
// derived from a secret every instance shares. The state is bound to the
// browser that started the login, survives restarts and is understood by
// every instance, with no table of pending logins anywhere.
package websession
