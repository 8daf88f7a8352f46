// Command caddy is a Caddy binary with the wechat_auth plugin, the
// wechat_emulator module and Caddy's standard modules.
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/wxauth/caddy-wechat-auth"
	_ "github.com/wxauth/caddy-wechat-auth/emulator"
)

func main() {
	caddycmd.Main()
}
