package wechatauth

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"
)

// subcommands builds the subcommands of `caddy wechat-auth`. Each file that
// adds one appends its constructor in its init, before Caddy's command
// line is parsed.
var subcommands []func() *cobra.Command

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "wechat-auth",
		Short: "Operate wechat_auth: users, sessions, bans, backups, export, import, secret rotation",
		Long: `
Operate the wechat_auth handlers of a running Caddy through its admin
endpoint (found as 'caddy reload' finds it: --address, or the admin address
in --config), or work on a stopped server's database directly (export,
import, rotate-secret). Tables are printed for people; --json prints JSON only, for scripts.
A failure exits non-zero with a one-line message.`,
		CobraFunc: func(cmd *cobra.Command) {
			cmd.SilenceUsage = true
			for _, sub := range subcommands {
				cmd.AddCommand(sub())
			}
		},
	})
}
