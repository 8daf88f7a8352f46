package wechatauth

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"
)

func init() {
	subcommands = append(subcommands,
		appsCommand, userCommand, sessionsCommand, revokeCommand,
		banCommand, unbanCommand, backupCommand)
}

// adminClient is what every admin subcommand shares: how to reach the
// server, which app, and how to print.
type adminClient struct {
	address string
	config  string
	adapter string
	app     string
	json    bool
	out     io.Writer
}

// adminFlags adds the shared flags to cmd and returns the client they fill.
func adminFlags(cmd *cobra.Command, withApp bool) *adminClient {
	c := &adminClient{}
	f := cmd.Flags()
	f.StringVar(&c.address, "address", "", "Address of Caddy's admin endpoint (default: from --config, else "+defaultAdminHint+")")
	f.StringVarP(&c.config, "config", "c", "", "Caddy config file to read the admin address from")
	f.StringVarP(&c.adapter, "adapter", "a", "", "Name of the config adapter of --config")
	f.BoolVar(&c.json, "json", false, "Print JSON only, for scripts")
	if withApp {
		f.StringVar(&c.app, "app", "", "The app_id to act on (default: the only app served)")
	}
	return c
}

const defaultAdminHint = "localhost:2019"

// runE wraps a subcommand: output goes to the command's stdout, and a
// failure is one line on stderr and a non-zero exit (cobra prints it).
func runE(c *adminClient, fn func(cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		c.out = cmd.OutOrStdout()
		cmd.SilenceUsage = true
		err := fn(cmd, args)
		if err != nil {
			// One line, whatever the cause carried.
			return errors.New(strings.Join(strings.Fields(err.Error()), " "))
		}
		return nil
	}
}

// adminAddress finds the admin endpoint as `caddy reload` does.
func (c *adminClient) adminAddress() (string, error) {
	addr, err := caddycmd.DetermineAdminAPIAddress(c.address, nil, c.config, c.adapter)
	if err != nil {
		return "", fmt.Errorf("finding the admin endpoint: %v", err)
	}
	return addr, nil
}

// adminErrorRE picks Caddy's "HTTP <status>: <body>" out of the error of
// caddycmd.AdminAPIRequest, which reads the body of a failed answer.
var adminErrorRE = regexp.MustCompile(`HTTP (\d{3}): (.*)$`)

// request sends one admin request and returns the answer of a
// success; a failure comes back as a one-line error.
func (c *adminClient) request(method, uri string, body any) (*http.Response, error) {
	addr, err := c.adminAddress()
	if err != nil {
		return nil, err
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	resp, err := caddycmd.AdminAPIRequest(addr, method, uri, nil, rd)
	if err == nil {
		return resp, nil
	}
	msg := err.Error()
	if m := adminErrorRE.FindStringSubmatch(strings.ReplaceAll(msg, "\n", " ")); m != nil {
		var e struct{ Error, Message string }
		if json.Unmarshal([]byte(strings.TrimSpace(m[2])), &e) == nil && e.Error != "" {
			if e.Message == "" {
				// Caddy's own error shape: {"error": "<text>"}.
				return nil, fmt.Errorf("caddy answered %s: %s", m[1], e.Error)
			}
			return nil, errors.New(e.Message)
		}
		return nil, fmt.Errorf("caddy answered %s: %s", m[1], strings.TrimSpace(m[2]))
	}
	if strings.HasPrefix(msg, "invalid admin address") || strings.HasPrefix(msg, "making request") {
		return nil, fmt.Errorf("invalid admin address %q", addr)
	}
	if strings.Contains(msg, "performing request") {
		return nil, fmt.Errorf("cannot reach Caddy's admin endpoint at %s (is Caddy running?)", addr)
	}
	return nil, errors.New(msg)
}

// call sends a request and decodes its JSON answer into dst, returning
// the raw bytes for --json.
func (c *adminClient) call(method, uri string, body, dst any) ([]byte, error) {
	resp, err := c.request(method, uri, body)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("reading the answer: %v", err)
	}
	if dst != nil {
		if err := json.Unmarshal(raw, dst); err != nil {
			return nil, fmt.Errorf("the answer is not the expected JSON: %v", err)
		}
	}
	return raw, nil
}

// printJSON prints an answer as indented JSON.
func (c *adminClient) printJSON(raw []byte) error {
	var buf bytes.Buffer
	if err := json.Indent(&buf, bytes.TrimSpace(raw), "", "  "); err != nil {
		return fmt.Errorf("the answer is not JSON: %v", err)
	}
	buf.WriteByte('\n')
	_, err := c.out.Write(buf.Bytes())
	return err
}

// appPath is the admin path of the chosen app: --app, or the only app the
// server has.
func (c *adminClient) appPath() (string, error) {
	if c.app == "" {
		var apps []adminApp
		if _, err := c.call(http.MethodGet, "/wechat_auth/apps", nil, &apps); err != nil {
			return "", err
		}
		switch len(apps) {
		case 0:
			return "", errors.New("the server has no wechat_auth handler")
		case 1:
			c.app = apps[0].AppID
		default:
			ids := make([]string, len(apps))
			for i, a := range apps {
				ids[i] = a.AppID
			}
			return "", fmt.Errorf("the server has several apps (%s): choose one with --app", strings.Join(ids, ", "))
		}
	}
	return "/wechat_auth/apps/" + url.PathEscape(c.app), nil
}

// parseUserID reads a user id argument.
func parseUserID(s string) (uint64, error) {
	id, err := strconv.ParseUint(s, 10, 64)
	if err != nil || id == 0 {
		return 0, fmt.Errorf("user id %q is not a positive integer", s)
	}
	return id, nil
}

// table prints rows under a header, aligned.
func (c *adminClient) table(header []string, rows [][]string) error {
	tw := tabwriter.NewWriter(c.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

func fmtTime(t *time.Time) string {
	if t == nil || t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func appsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "apps [--address <addr> | --config <file>] [--json]",
		Short: "List the apps the running server serves, with user and session counts",
		Args:  cobra.NoArgs,
	}
	c := adminFlags(cmd, false)
	cmd.RunE = runE(c, func(*cobra.Command, []string) error {
		var apps []adminApp
		raw, err := c.call(http.MethodGet, "/wechat_auth/apps", nil, &apps)
		if err != nil {
			return err
		}
		if c.json {
			return c.printJSON(raw)
		}
		rows := make([][]string, 0, len(apps))
		for _, a := range apps {
			rows = append(rows, []string{a.AppID, a.Store, strconv.FormatInt(a.Users, 10), strconv.FormatInt(a.ActiveSessions, 10)})
		}
		return c.table([]string{"APP_ID", "STORE", "USERS", "ACTIVE_SESSIONS"}, rows)
	})
	return cmd
}

// printUser prints one user as a two-column table, or as JSON.
func (c *adminClient) printUser(raw []byte, u adminUser) error {
	if c.json {
		return c.printJSON(raw)
	}
	ban := "no"
	if u.Banned {
		ban = "yes"
		if u.BanReason != "" {
			ban += " (" + u.BanReason + ")"
		}
	}
	return c.table([]string{"FIELD", "VALUE"}, [][]string{
		{"id", strconv.FormatUint(u.ID, 10)},
		{"openid", u.OpenID},
		{"unionid", dash(u.UnionID)},
		{"nickname", dash(u.Nickname)},
		{"avatar_url", dash(u.AvatarURL)},
		{"gender", strconv.Itoa(u.Gender)},
		{"phone", dash(u.Phone)},
		{"created_at", fmtTime(&u.CreatedAt)},
		{"updated_at", fmtTime(&u.UpdatedAt)},
		{"banned", ban},
	})
}

func userCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "user <id> | --openid <openid> | --unionid <unionid> | --phone <phone>",
		Short: "Show one user, found by id, openid, unionid or phone",
		Args:  cobra.MaximumNArgs(1),
	}
	c := adminFlags(cmd, true)
	var openid, unionid, phone string
	cmd.Flags().StringVar(&openid, "openid", "", "Find the user by openid")
	cmd.Flags().StringVar(&unionid, "unionid", "", "Find the user by unionid")
	cmd.Flags().StringVar(&phone, "phone", "", "Find the user by phone number (as WeChat gave it)")
	cmd.RunE = runE(c, func(_ *cobra.Command, args []string) error {
		// openid, unionid and phone go in the body of a POST: Caddy's
		// admin endpoint logs every request's URI.
		lookup := map[string]string{}
		for _, k := range []struct{ name, val string }{{"openid", openid}, {"unionid", unionid}, {"phone", phone}} {
			if k.val != "" {
				lookup[k.name] = k.val
			}
		}
		if len(args)+len(lookup) != 1 {
			return errors.New("give exactly one of: a user id, --openid, --unionid, --phone")
		}
		p, err := c.appPath()
		if err != nil {
			return err
		}
		method, uri, body := http.MethodPost, p+"/users/lookup", any(lookup)
		if len(args) == 1 {
			id, err := parseUserID(args[0])
			if err != nil {
				return err
			}
			method, uri, body = http.MethodGet, p+"/users/"+strconv.FormatUint(id, 10), nil
		}
		var u adminUser
		raw, err := c.call(method, uri, body, &u)
		if err != nil {
			return err
		}
		return c.printUser(raw, u)
	})
	return cmd
}

// printSessions prints sessions as a table, or as JSON.
func (c *adminClient) printSessions(raw []byte, ss []adminSession) error {
	if c.json {
		return c.printJSON(raw)
	}
	rows := make([][]string, 0, len(ss))
	for _, s := range ss {
		state := "active"
		if s.RevokedAt != nil {
			state = "revoked (" + dash(s.RevokedReason) + ")"
		} else if !s.ExpiresAt.After(time.Now()) {
			state = "expired"
		}
		rows = append(rows, []string{s.SID, fmtTime(&s.CreatedAt), fmtTime(s.RefreshedAt), fmtTime(&s.ExpiresAt), fmtTime(s.RevokedAt), state})
	}
	return c.table([]string{"SID", "CREATED", "REFRESHED", "EXPIRES", "REVOKED", "STATE"}, rows)
}

func sessionsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "sessions <user-id>",
		Short: "List a user's sessions, newest first, revoked ones included",
		Args:  cobra.ExactArgs(1),
	}
	c := adminFlags(cmd, true)
	cmd.RunE = runE(c, func(_ *cobra.Command, args []string) error {
		id, err := parseUserID(args[0])
		if err != nil {
			return err
		}
		p, err := c.appPath()
		if err != nil {
			return err
		}
		var ss []adminSession
		raw, err := c.call(http.MethodGet, p+"/users/"+strconv.FormatUint(id, 10)+"/sessions", nil, &ss)
		if err != nil {
			return err
		}
		return c.printSessions(raw, ss)
	})
	return cmd
}

func revokeCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "revoke --session <sid> | --user <id>",
		Short: "End one session, or every session of a user; their tokens are refused at once",
		Args:  cobra.NoArgs,
	}
	c := adminFlags(cmd, true)
	var sid, user string
	cmd.Flags().StringVar(&sid, "session", "", "The session id (sid) to end")
	cmd.Flags().StringVar(&user, "user", "", "The user id whose sessions to end")
	cmd.RunE = runE(c, func(*cobra.Command, []string) error {
		if (sid == "") == (user == "") {
			return errors.New("give exactly one of --session or --user")
		}
		p, err := c.appPath()
		if err != nil {
			return err
		}
		if sid != "" {
			var s adminSession
			raw, err := c.call(http.MethodDelete, p+"/sessions/"+url.PathEscape(sid), nil, &s)
			if err != nil {
				return err
			}
			return c.printSessions(wrapArray(raw), []adminSession{s})
		}
		id, err := parseUserID(user)
		if err != nil {
			return err
		}
		var res struct {
			UserID  uint64         `json:"user_id"`
			Revoked []adminSession `json:"revoked"`
		}
		raw, err := c.call(http.MethodDelete, p+"/users/"+strconv.FormatUint(id, 10)+"/sessions", nil, &res)
		if err != nil {
			return err
		}
		if c.json {
			return c.printJSON(raw)
		}
		_, err = fmt.Fprintf(c.out, "revoked %d session(s) of user %d\n", len(res.Revoked), res.UserID)
		return err
	})
	return cmd
}

// wrapArray makes one JSON value a one-element array, so `revoke
// --session --json` prints the same shape as `sessions --json`.
func wrapArray(raw []byte) []byte {
	return append(append([]byte{'['}, bytes.TrimSpace(raw)...), ']')
}

func banCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ban <user-id> [--reason <text>]",
		Short: "Ban a user: every session ends at once and logins answer user_banned",
		Args:  cobra.ExactArgs(1),
	}
	c := adminFlags(cmd, true)
	var reason string
	cmd.Flags().StringVar(&reason, "reason", "", "Why, kept with the ban")
	cmd.RunE = runE(c, func(_ *cobra.Command, args []string) error {
		id, err := parseUserID(args[0])
		if err != nil {
			return err
		}
		p, err := c.appPath()
		if err != nil {
			return err
		}
		var res struct {
			User            adminUser `json:"user"`
			RevokedSessions int       `json:"revoked_sessions"`
		}
		raw, err := c.call(http.MethodPut, p+"/users/"+strconv.FormatUint(id, 10)+"/ban", map[string]string{"reason": reason}, &res)
		if err != nil {
			return err
		}
		if c.json {
			return c.printJSON(raw)
		}
		_, err = fmt.Fprintf(c.out, "banned user %d; revoked %d session(s)\n", res.User.ID, res.RevokedSessions)
		return err
	})
	return cmd
}

func unbanCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "unban <user-id>",
		Short: "Lift a user's ban; the user can log in again",
		Args:  cobra.ExactArgs(1),
	}
	c := adminFlags(cmd, true)
	cmd.RunE = runE(c, func(_ *cobra.Command, args []string) error {
		id, err := parseUserID(args[0])
		if err != nil {
			return err
		}
		p, err := c.appPath()
		if err != nil {
			return err
		}
		var u adminUser
		raw, err := c.call(http.MethodDelete, p+"/users/"+strconv.FormatUint(id, 10)+"/ban", nil, &u)
		if err != nil {
			return err
		}
		if c.json {
			return c.printJSON(raw)
		}
		_, err = fmt.Fprintf(c.out, "unbanned user %d\n", u.ID)
		return err
	})
	return cmd
}

func backupCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "backup [--out <file>]",
		Short: "Save a consistent snapshot of the app's database, taken while serving (bbolt)",
		Long: `
Saves a consistent snapshot of the running server's bbolt database file
(every app kept in that file), taken in one read transaction while logins
go on. The snapshot is a complete database file: to restore, stop Caddy,
put it in place of the db file (or point db at it) and start Caddy.
For PostgreSQL, use pg_dump instead.`,
		Args: cobra.NoArgs,
	}
	c := adminFlags(cmd, true)
	var out string
	cmd.Flags().StringVarP(&out, "out", "o", "", "File to write (default: the name the server suggests, in the current directory); - for stdout")
	cmd.RunE = runE(c, func(*cobra.Command, []string) error {
		p, err := c.appPath()
		if err != nil {
			return err
		}
		resp, err := c.request(http.MethodGet, p+"/backup", nil)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if out == "-" {
			if c.json {
				return errors.New("--json prints JSON only: write the snapshot to a file with --out")
			}
			_, err := io.Copy(c.out, resp.Body)
			return err
		}
		if out == "" {
			out = suggestedName(resp.Header.Get("Content-Disposition"))
		}
		n, err := writeFileAtomic(out, resp.Body)
		if err != nil {
			return err
		}
		if c.json {
			b, _ := json.Marshal(map[string]any{"app_id": c.app, "file": out, "bytes": n})
			return c.printJSON(b)
		}
		_, err = fmt.Fprintf(c.out, "wrote %d bytes to %s\n", n, out)
		return err
	})
	return cmd
}

// suggestedName is the file name of a Content-Disposition header, reduced
// to a base name; a fixed name when there is none.
func suggestedName(cd string) string {
	if _, params, err := mime.ParseMediaType(cd); err == nil {
		if name := filepath.Base(params["filename"]); name != "." && name != "/" && name != "" && name != ".." {
			return name
		}
	}
	return "wechat_auth-backup.db"
}

// writeFileAtomic writes r to path through a temporary file in the same
// directory, synced and renamed into place, so a failed or interrupted
// download never leaves a partial snapshot under the final name. The
// file is private (0600): it holds every user and session.
func writeFileAtomic(path string, r io.Reader) (int64, error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, ".wechat_auth-backup-*")
	if err != nil {
		return 0, fmt.Errorf("creating the backup file: %v", err)
	}
	defer os.Remove(tmp.Name()) // after a successful rename there is nothing to remove
	n, err := io.Copy(tmp, r)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return n, fmt.Errorf("writing the backup (%d bytes received): %v", n, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return n, fmt.Errorf("saving the backup as %s: %v", path, err)
	}
	return n, nil
}
