package wechatauth

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/spf13/cobra"

	"github.com/wxauth/caddy-wechat-auth/store"
	"github.com/wxauth/caddy-wechat-auth/store/bolt"
	"github.com/wxauth/caddy-wechat-auth/store/postgres"
)

func init() {
	subcommands = append(subcommands, newExportCommand, newImportCommand)
}

// transferLockTimeout is how long export and import wait for a bbolt
// file's lock before saying that a server holds it.
const transferLockTimeout = 2 * time.Second

// maxRecordLine bounds one line of an import file: an avatar record holds
// up to store.MaxAvatarBytes of image, base64-encoded.
const maxRecordLine = 8 << 20

func newExportCommand() *cobra.Command {
	var db, app, out string
	cmd := &cobra.Command{
		Use:   "export --app <app_id> [--db <path|url>] [--out <file>]",
		Short: "Write an app's users, sessions and keys as JSON lines",
		Long: `
Writes every record of one app — its generated keys and secrets, its users
(with their ids), the openids linked to users by unionid, its sessions
(session_key sealed as stored) and their refresh-token records — as JSON
lines, to --out or standard output.

The database is opened directly: a bbolt file only while no server uses it
(stop Caddy first), a PostgreSQL database while servers run. The output
holds the app's signing key: keep it private (--out files are created with
mode 0600).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, app, err := openForTransfer(db, app, false)
			if err != nil {
				return err
			}
			defer st.Close()
			w := cmd.OutOrStdout()
			var f *os.File
			if out != "" && out != "-" {
				if f, err = os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600); err != nil {
					return fmt.Errorf("creating %s: %w", out, err)
				}
				w = f
			}
			bw := bufio.NewWriter(w)
			enc := json.NewEncoder(bw)
			var counts recordCounts
			err = st.Export(cmd.Context(), app, func(r store.Record) error {
				counts.add(r)
				return enc.Encode(r)
			})
			if err == nil {
				err = bw.Flush()
			}
			if f != nil {
				if cerr := f.Close(); err == nil {
					err = cerr
				}
				if err != nil {
					_ = os.Remove(out)
				}
			}
			if err != nil {
				return fmt.Errorf("exporting app %s: %w", app, err)
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "exported %s of app %s\n", counts, app)
			return nil
		},
	}
	cmd.Flags().StringVar(&db, "db", "", "bbolt file or PostgreSQL URL (default: the module's default file for the app)")
	cmd.Flags().StringVar(&app, "app", "", "the app_id to export (required)")
	cmd.Flags().StringVar(&out, "out", "", "file to create (default: standard output)")
	return cmd
}

func newImportCommand() *cobra.Command {
	var db, app, in string
	cmd := &cobra.Command{
		Use:   "import --app <app_id> [--db <path|url>] [--in <file>]",
		Short: "Read JSON lines written by export into a database",
		Long: `
Reads records written by 'caddy wechat-auth export' (from --in or standard
input) into the app in the database, in one transaction: all or nothing.
Users keep their ids, and users created later get ids after the highest
one. A record that collides with one already there (user id, openid or
linked openid, session id, refresh token, secret) fails the whole import.

Sealed session_keys and the generated signing key and refresh secret are
bound to the app secret: configure the same app_secret where the records
go, and existing access and refresh tokens stay valid.

The database is opened directly: a bbolt file only while no server uses it
(stop Caddy first), a PostgreSQL database while servers run.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r := cmd.InOrStdin()
			if in != "" && in != "-" {
				f, err := os.Open(in)
				if err != nil {
					return fmt.Errorf("opening %s: %w", in, err)
				}
				defer f.Close()
				r = f
			}
			recs, err := readRecords(r)
			if err != nil {
				return err
			}
			st, app, err := openForTransfer(db, app, true)
			if err != nil {
				return err
			}
			defer st.Close()
			if err := st.Import(cmd.Context(), app, recs); err != nil {
				return fmt.Errorf("importing into app %s: nothing was imported: %w", app, err)
			}
			var counts recordCounts
			for _, r := range recs {
				counts.add(r)
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "imported %s into app %s\n", counts, app)
			return nil
		},
	}
	cmd.Flags().StringVar(&db, "db", "", "bbolt file or PostgreSQL URL (default: the module's default file for the app)")
	cmd.Flags().StringVar(&app, "app", "", "the app_id to import into (required)")
	cmd.Flags().StringVar(&in, "in", "", "file to read (default: standard input)")
	return cmd
}

// openForTransfer resolves placeholders in db and app (as the module
// does) and opens the store directly. An empty db means the module's
// default file for the app. A missing bbolt file is created only when
// create is set (import into a new site); export needs an existing one.
func openForTransfer(db, app string, create bool) (store.Store, string, error) {
	repl := caddy.NewReplacer()
	app = strings.TrimSpace(repl.ReplaceKnown(app, ""))
	if app == "" {
		return nil, "", errors.New("--app is required")
	}
	db = strings.TrimSpace(repl.ReplaceKnown(db, ""))
	if db == "" {
		db = filepath.Join(caddy.AppDataDir(), "wechat_auth", safeFileName(app)+".db")
	}
	if postgres.IsDSN(db) {
		ctx, cancel := context.WithTimeout(context.Background(), postgresOpenTimeout)
		defer cancel()
		st, err := postgres.Open(ctx, db, postgres.Options{})
		if err != nil {
			return nil, "", err
		}
		return st, app, nil
	}
	if _, err := os.Stat(db); err != nil && !(create && errors.Is(err, fs.ErrNotExist)) {
		return nil, "", fmt.Errorf("db %s: %w", db, err)
	}
	st, err := bolt.Open(db, bolt.Options{Timeout: transferLockTimeout})
	if errors.Is(err, bolt.ErrLocked) {
		return nil, "", fmt.Errorf("db %s is in use, probably by a running Caddy: stop it first (bbolt files are opened by one process at a time)", db)
	}
	if err != nil {
		return nil, "", err
	}
	return st, app, nil
}

// readRecords reads JSON lines of store.Record; blank lines are skipped.
func readRecords(r io.Reader) ([]store.Record, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), maxRecordLine)
	var recs []store.Record
	for line := 1; sc.Scan(); line++ {
		b := sc.Bytes()
		if len(strings.TrimSpace(string(b))) == 0 {
			continue
		}
		dec := json.NewDecoder(strings.NewReader(string(b)))
		dec.DisallowUnknownFields()
		var rec store.Record
		if err := dec.Decode(&rec); err != nil {
			return nil, fmt.Errorf("reading records: line %d: %w", line, err)
		}
		if _, err := dec.Token(); err != io.EOF {
			return nil, fmt.Errorf("reading records: line %d: data after the record (one JSON object a line)", line)
		}
		recs = append(recs, rec)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading records: %w", err)
	}
	return recs, nil
}

// recordCounts counts records by kind, for the summary line.
type recordCounts struct{ secrets, users, openids, sessions, tokens, avatars int }

func (c *recordCounts) add(r store.Record) {
	switch {
	case r.Secret != nil:
		c.secrets++
	case r.User != nil:
		c.users++
	case r.OpenID != nil:
		c.openids++
	case r.Session != nil:
		c.sessions++
	case r.Token != nil:
		c.tokens++
	case r.Avatar != nil:
		c.avatars++
	}
}

func (c recordCounts) String() string {
	return fmt.Sprintf("%d secrets, %d users, %d linked openids, %d avatars, %d sessions, %d refresh tokens", c.secrets, c.users, c.openids, c.avatars, c.sessions, c.tokens)
}
