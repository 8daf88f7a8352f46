package wechatauth

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/wxauth/caddy-wechat-auth/internal/handler"
)

func init() {
	subcommands = append(subcommands, newRotateSecretCommand)
}

// secretSource is where the rotate-secret command reads one app secret:
// an environment variable or a file, never a flag (a flag's value shows in
// the process list and the shell's history).
type secretSource struct{ env, file string }

// read returns the secret, trimmed of surrounding white space as the
// module trims app_secret; what names it whether it is the old or the new.
func (s secretSource) read(what string) (string, error) {
	var v string
	switch {
	case s.env != "" && s.file != "":
		return "", fmt.Errorf("give the %s app secret with --%s-secret-env or --%s-secret-file, not both", what, what, what)
	case s.env != "":
		v = os.Getenv(s.env)
	case s.file != "":
		b, err := os.ReadFile(s.file)
		if err != nil {
			return "", fmt.Errorf("reading the %s app secret: %w", what, err)
		}
		v = string(b)
	default:
		return "", fmt.Errorf("--%s-secret-env or --%s-secret-file is required", what, what)
	}
	if v = strings.TrimSpace(v); v == "" {
		return "", fmt.Errorf("the %s app secret is empty", what)
	}
	return v, nil
}

func newRotateSecretCommand() *cobra.Command {
	var db, app string
	var oldSrc, newSrc secretSource
	var discard bool
	cmd := &cobra.Command{
		Use:   "rotate-secret --app <app_id> [--db <path|url>] (--old-secret-env <VAR> | --old-secret-file <file> | --discard) (--new-secret-env <VAR> | --new-secret-file <file>)",
		Short: "Reseal an app's generated keys under a new app_secret",
		Long: `
The generated signing key and the refresh-token secret are kept in the
database sealed with a key derived from app_secret. An instance whose
app_secret cannot open them refuses to start, so that one misconfigured
instance never replaces the keys the others sign with. To change
app_secret, run this once against the database, then give every instance
the new app_secret (reload or restart them one by one):

  WECHAT_APP_SECRET_OLD=… WECHAT_APP_SECRET=… caddy wechat-auth rotate-secret \
      --app <app_id> --db <path|url> \
      --old-secret-env WECHAT_APP_SECRET_OLD --new-secret-env WECHAT_APP_SECRET

The keys themselves are kept, only resealed: access and refresh tokens stay
valid, and instances still running with the old app_secret keep working
until they get the new one. Running it again does nothing. Session keys
sealed with the old app_secret are not resealed: /wx/decrypt asks sessions
opened before the change to log in again.

When the old app_secret is lost, --discard replaces the keys with new ones
sealed under the new app_secret: access tokens signed with the generated key
are refused (clients refresh or log in again), and every instance must be
restarted with the new app_secret.

Secrets are read from environment variables or files, never from flags. The
database is opened directly: a bbolt file only while no server uses it
(stop Caddy first), a PostgreSQL database while servers run.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			next, err := newSrc.read("new")
			if err != nil {
				return err
			}
			var from *handler.Sealer
			switch {
			case discard && (oldSrc.env != "" || oldSrc.file != ""):
				return errors.New("give the old app secret or --discard, not both")
			case !discard:
				old, err := oldSrc.read("old")
				if err != nil {
					return fmt.Errorf("%w (or --discard when the old app secret is lost)", err)
				}
				if from, err = handler.NewSealer(old); err != nil {
					return err
				}
			}
			to, err := handler.NewSealer(next)
			if err != nil {
				return err
			}
			st, app, err := openForTransfer(db, app, false)
			if err != nil {
				return err
			}
			defer st.Close()
			out := cmd.ErrOrStderr()
			found := false
			for _, name := range handler.GeneratedSecretNames {
				res, err := to.RotateSecret(cmd.Context(), st, app, name, handler.GeneratedSecretSize, from)
				if err != nil {
					return fmt.Errorf("rotating the secrets of app %s: %w", app, err)
				}
				found = found || res != handler.RotateAbsent
				fmt.Fprintf(out, "app %s: %s: %s\n", app, name, res)
			}
			if !found {
				// Most likely a mistyped --app or the wrong --db: saying
				// "tokens stay valid" would send the operator on to give
				// every instance a new app_secret they then refuse.
				return fmt.Errorf("no generated secrets of app %s in this database: nothing was rotated; check --app and --db (an app that never started has none, and needs no rotation)", app)
			}
			if discard {
				fmt.Fprintln(out, "the keys were replaced: restart every instance with the new app_secret; access tokens signed with the old generated key are refused")
			} else {
				fmt.Fprintln(out, "give every instance the new app_secret; tokens stay valid")
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&db, "db", "", "bbolt file or PostgreSQL URL (default: the module's default file for the app)")
	f.StringVar(&app, "app", "", "the app_id whose secrets to reseal (required)")
	f.StringVar(&oldSrc.env, "old-secret-env", "", "environment variable holding the app_secret the keys are sealed with now")
	f.StringVar(&oldSrc.file, "old-secret-file", "", "file holding the app_secret the keys are sealed with now")
	f.StringVar(&newSrc.env, "new-secret-env", "", "environment variable holding the new app_secret")
	f.StringVar(&newSrc.file, "new-secret-file", "", "file holding the new app_secret")
	f.BoolVar(&discard, "discard", false, "replace the keys with new ones (the old app_secret is lost)")
	return cmd
}
