package wechatauth

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/wxauth/caddy-wechat-auth/internal/pgtest"
	"github.com/wxauth/caddy-wechat-auth/store"
	"github.com/wxauth/caddy-wechat-auth/store/bolt"
	"github.com/wxauth/caddy-wechat-auth/store/postgres"
	"github.com/wxauth/caddy-wechat-auth/store/storetest"
)

// runCmd runs a transfer command with args and stdin, returning its
// standard output and error output.
func runCmd(t *testing.T, newCmd func() *cobra.Command, stdin string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := newCmd()
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetIn(strings.NewReader(stdin))
	cmd.SetArgs(args)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	err = cmd.ExecuteContext(context.Background())
	return out.String(), errOut.String(), err
}

// seedAvatar is user 1's avatar in seedBolt: 1.5 MB, so its export line
// is longer than 1 MiB.
func seedAvatar() store.Avatar {
	data := bytes.Repeat([]byte("\x89PNG avatar bytes "), 1500000/19)
	sum := sha256.Sum256(data)
	return store.Avatar{Hash: hex.EncodeToString(sum[:]), ContentType: "image/png", Data: data}
}

// seedBolt writes two users (user 1 with unionid "u-o1" and, linked to
// it by that unionid, a second openid "o1-linked"), a session for each
// (one rotated), user 1's avatar and a secret of app into a new bbolt file and closes it.
func seedBolt(t *testing.T, path, app string) {
	t.Helper()
	st, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	if _, err := st.Secret(ctx, app, "signing_key", func() ([]byte, error) { return []byte("key"), nil }); err != nil {
		t.Fatal(err)
	}
	for i, openid := range []string{"o1", "o2"} {
		sid := "sid-" + openid
		tok := store.RefreshToken{Hash: [32]byte{byte(i + 1)}, SessionID: sid, IssuedAt: now, ExpiresAt: now.Add(time.Hour), AccessID: "a" + sid, AccessIssuedAt: now}
		sess := store.Session{ID: sid, AppID: app, SealedSessionKey: []byte("sealed"), CreatedAt: now}
		if _, _, _, err := st.Login(ctx, app, store.NewUser{OpenID: openid, UnionID: "u-" + openid}, sess, tok, now); err != nil {
			t.Fatal(err)
		}
	}
	if u, created, err := storetest.CreateUser(ctx, st, app, store.NewUser{OpenID: "o1-linked", UnionID: "u-o1", LinkByUnionID: true}, now); err != nil || created || u.ID != 1 {
		t.Fatalf("linking o1-linked to user 1: user %d, created %v, %v", u.ID, created, err)
	}
	if _, err := st.SetAvatar(ctx, app, 1, seedAvatar(), "/wx/avatar/"+seedAvatar().Hash+".png", now); err != nil {
		t.Fatal(err)
	}
	next := store.RefreshToken{Hash: [32]byte{9}, IssuedAt: now.Add(time.Minute), ExpiresAt: now.Add(2 * time.Hour), AccessID: "a2", AccessIssuedAt: now.Add(time.Minute)}
	if _, err := st.Rotate(ctx, app, [32]byte{1}, next, now.Add(time.Minute), 10*time.Second); err != nil {
		t.Fatal(err)
	}
}

// checkLinked fails the test unless the openid "o1-linked" of st's app
// leads to user 1: by lookup, and by a login that knows only the openid
// (so it cannot link by unionid again).
func checkLinked(t *testing.T, st store.Store, app string) {
	t.Helper()
	ctx := context.Background()
	if u, err := st.UserByOpenID(ctx, app, "o1-linked"); err != nil || u.ID != 1 {
		t.Errorf("UserByOpenID(o1-linked) = user %d, %v; want user 1", u.ID, err)
	}
	now := time.Date(2030, 1, 2, 4, 0, 0, 0, time.UTC)
	if u, created, err := storetest.LoginUser(ctx, st, app, store.NewUser{OpenID: "o1-linked"}, now); err != nil || created || u.ID != 1 {
		t.Errorf("Login(o1-linked) = user %d, created %v, %v; want existing user 1", u.ID, created, err)
	}
}

// sortedLines returns the non-empty lines of s, sorted.
func sortedLines(s string) []string {
	var ls []string
	for _, l := range strings.Split(s, "\n") {
		if l != "" {
			ls = append(ls, l)
		}
	}
	slices.Sort(ls)
	return ls
}

func TestExportImportCommands(t *testing.T) {
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "src.db"), filepath.Join(dir, "dst.db")
	seedBolt(t, src, "wxapp")
	out := filepath.Join(dir, "export.jsonl")

	_, summary, err := runCmd(t, newExportCommand, "", "--db", src, "--app", "wxapp", "--out", out)
	if err != nil {
		t.Fatalf("export: %v", err)
	}
	if !strings.Contains(summary, "1 secrets, 2 users, 1 linked openids, 1 avatars, 2 sessions, 3 refresh tokens") {
		t.Errorf("export summary %q", summary)
	}
	fi, err := os.Stat(out)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("export file mode %v, want 0600 (it holds the signing key)", fi.Mode().Perm())
	}
	exported, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(exported), "refresh_token\":\"") {
		t.Error("export holds a refresh token value")
	}

	// Export needs an existing file; import creates a new bbolt file (a
	// new site), and exporting it again gives the same lines.
	if _, _, err := runCmd(t, newExportCommand, "", "--db", dst, "--app", "wxapp"); err == nil {
		t.Fatal("export of a missing file succeeded")
	}
	if _, err := os.Stat(dst); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a failed export created %s: %v", dst, err)
	}
	if _, _, err := runCmd(t, newImportCommand, string(exported), "--db", dst, "--app", "wxapp"); err != nil {
		t.Fatalf("import from stdin: %v", err)
	}
	again, _, err := runCmd(t, newExportCommand, "", "--db", dst, "--app", "wxapp")
	if err != nil {
		t.Fatal(err)
	}
	if again != string(exported) {
		t.Errorf("export of the imported file differs:\n%s\nwant\n%s", again, exported)
	}
	// A second import collides and writes nothing.
	_, _, err = runCmd(t, newImportCommand, string(exported), "--db", dst, "--app", "wxapp")
	if err == nil || !strings.Contains(err.Error(), "nothing was imported") || !strings.Contains(err.Error(), "conflict") {
		t.Errorf("second import: %v, want a conflict that imported nothing", err)
	}
	// The linked openid moved with its user.
	if st, err := bolt.Open(dst, bolt.Options{}); err != nil {
		t.Fatal(err)
	} else {
		checkLinked(t, st, "wxapp")
		st.Close()
	}

	// Into PostgreSQL, when there is one.
	t.Run("postgres", func(t *testing.T) {
		dsn, _ := pgtest.SchemaDSN(t)
		if _, _, err := runCmd(t, newImportCommand, "", "--db", dsn, "--app", "wxapp", "--in", out); err != nil {
			t.Fatalf("import into PostgreSQL: %v", err)
		}
		fromPG, _, err := runCmd(t, newExportCommand, "", "--db", dsn, "--app", "wxapp")
		if err != nil {
			t.Fatal(err)
		}
		if got, want := sortedLines(fromPG), sortedLines(string(exported)); !slices.Equal(got, want) {
			t.Errorf("records from PostgreSQL differ:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		st, err := postgres.Open(ctx, dsn, postgres.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		checkLinked(t, st, "wxapp")
	})
}

func TestTransferCommandErrors(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "app.db")
	seedBolt(t, db, "wxapp")
	tests := []struct {
		name  string
		cmd   func() *cobra.Command
		stdin string
		args  []string
		want  string
	}{
		{"export without app", newExportCommand, "", []string{"--db", db}, "--app is required"},
		{"export of a missing file", newExportCommand, "", []string{"--db", filepath.Join(dir, "none.db"), "--app", "wxapp"}, "none.db"},
		{"export over an existing file", newExportCommand, "", []string{"--db", db, "--app", "wxapp", "--out", db}, "creating"},
		{"import of bad JSON", newImportCommand, "{\"user\":{\"id\":5,\"openid\":\"x\"}}\nnot json\n", []string{"--db", db, "--app", "wxapp"}, "line 2"},
		{"import of an unknown field", newImportCommand, "{\"usr\":{}}\n", []string{"--db", db, "--app", "wxapp"}, "line 1"},
		{"import of an invalid record", newImportCommand, "{}\n", []string{"--db", db, "--app", "wxapp"}, "nothing was imported"},
		{"unreachable PostgreSQL", newExportCommand, "", []string{"--db", "postgres://u:pw@127.0.0.1:1/db?connect_timeout=1", "--app", "wxapp"}, "127.0.0.1:1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := runCmd(t, tc.cmd, tc.stdin, tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one mentioning %q", err, tc.want)
			}
			if err != nil && strings.Contains(err.Error(), ":pw@") {
				t.Errorf("error %v reveals the password", err)
			}
		})
	}
	// A file held by a server (here: this process) is refused clearly.
	st, err := bolt.Open(db, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	_, _, err = runCmd(t, newExportCommand, "", "--db", db, "--app", "wxapp")
	if err == nil || !strings.Contains(err.Error(), "stop it first") {
		t.Errorf("export of a locked file: %v", err)
	}
}

// TestReadRecordsOneObjectALine: a line holding more than one record is
// refused, never half read.
func TestReadRecordsOneObjectALine(t *testing.T) {
	for _, in := range []string{
		`{"user":{"id":1,"openid":"a"}} {"user":{"id":2,"openid":"b"}}`,
		`{"user":{"id":1,"openid":"a"}}}`,
	} {
		if recs, err := readRecords(strings.NewReader(in + "\n")); err == nil {
			t.Errorf("%s: read %d records, want an error", in, len(recs))
		}
	}
	recs, err := readRecords(strings.NewReader("{\"user\":{\"id\":1,\"openid\":\"a\"}}\n\n{\"user\":{\"id\":2,\"openid\":\"b\"}}  \n"))
	if err != nil || len(recs) != 2 {
		t.Fatalf("two lines: %d records, %v", len(recs), err)
	}
}
