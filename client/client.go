// Package client holds wechat-auth.js, the mini-program client of
// caddy-wechat-auth, and its type declarations, so that Go code can serve
// the very file a mini-program copies: the emulator's playground loads it
// from here. A mini-program does not use this package; it copies
// wechat-auth.js (and wechat-auth.d.ts) from this directory.
package client

import "embed"

// FS holds wechat-auth.js and wechat-auth.d.ts, byte for byte as in this
// directory.
//
//go:embed wechat-auth.js wechat-auth.d.ts
var FS embed.FS

// ScriptName is the name of the client script in FS.
const ScriptName = "wechat-auth.js"
