package wechatauth

import (
	"bytes"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// fakeAdmin serves canned admin answers by "METHOD path" on loopback.
func fakeAdmin(t *testing.T, routes map[string]func(http.ResponseWriter, *http.Request)) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if fn, ok := routes[r.Method+" "+r.URL.RequestURI()]; ok {
			fn(w, r)
			return
		}
		w.WriteHeader(http.StatusTeapot)
		_, _ = w.Write([]byte(`{"error":"unexpected_request","message":"fake admin: unexpected ` + r.Method + ` ` + r.URL.RequestURI() + `"}`))
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func answer(status int, body string) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}
}

// runCLI runs one subcommand in-process against addr.
func runCLI(t *testing.T, newCmd func() *cobra.Command, addr string, args ...string) (stdout string, err error) {
	t.Helper()
	cmd := newCmd()
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs(append(args, "--address", addr))
	err = cmd.Execute()
	return out.String(), err
}

// closedAddr is a loopback address nobody listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func TestCLIFailuresAreOneLine(t *testing.T) {
	const app = "/wechat_auth/apps/wxcli"
	addr := fakeAdmin(t, map[string]func(http.ResponseWriter, *http.Request){
		"GET " + app + "/users/7":     answer(404, `{"error":"not_found","message":"no user 7 in app \"wxcli\""}`),
		"GET " + app + "/users/8":     answer(500, `{"error":"internal_error","message":"storage failure,`+"\n"+` nothing was changed"}`),
		"GET " + app + "/users/9":     answer(404, `{"error":"this is Caddy's own error shape"}`),
		"GET " + app + "/users/10":    answer(502, "<html>bad gateway</html>"),
		"GET /wechat_auth/apps":       answer(200, `[{"app_id":"a1"},{"app_id":"a2"}]`),
		"GET " + app + "/users/11":    answer(200, `not json`),
		"DELETE " + app + "/users/12": answer(200, `{}`),
	})
	tests := []struct {
		name string
		cmd  func() *cobra.Command
		args []string
		addr string
		want string
	}{
		{"our error shape", userCommand, []string{"7", "--app", "wxcli"}, addr, `no user 7 in app "wxcli"`},
		{"multi-line message", userCommand, []string{"8", "--app", "wxcli"}, addr, "storage failure, nothing was changed"},
		{"caddy's error shape", userCommand, []string{"9", "--app", "wxcli"}, addr, "caddy answered 404: this is Caddy's own error shape"},
		{"not JSON", userCommand, []string{"10", "--app", "wxcli"}, addr, "caddy answered 502: <html>bad gateway</html>"},
		{"bad success answer", userCommand, []string{"11", "--app", "wxcli"}, addr, "not the expected JSON"},
		{"several apps", userCommand, []string{"1"}, addr, "several apps (a1, a2): choose one with --app"},
		{"server down", appsCommand, nil, closedAddr(t), "cannot reach Caddy's admin endpoint"},
		{"bad user id", sessionsCommand, []string{"0", "--app", "wxcli"}, addr, `user id "0" is not a positive integer`},
		{"two lookups", userCommand, []string{"1", "--openid", "x", "--app", "wxcli"}, addr, "exactly one of"},
		{"revoke needs one", revokeCommand, []string{"--session", "s", "--user", "1", "--app", "wxcli"}, addr, "exactly one of --session or --user"},
		{"bad admin address", appsCommand, nil, "not an address:x:y", "admin address"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := runCLI(t, tc.cmd, tc.addr, tc.args...)
			if err == nil {
				t.Fatalf("succeeded, printed %q", out)
			}
			if msg := err.Error(); strings.Contains(msg, "\n") || !strings.Contains(msg, tc.want) {
				t.Fatalf("error %q: want one line containing %q", msg, tc.want)
			}
			if out != "" {
				t.Errorf("a failure printed to stdout: %q", out)
			}
		})
	}
}

func TestCLIOutput(t *testing.T) {
	const app = "/wechat_auth/apps/wxcli"
	user := `{"id":42,"openid":"o-42","unionid":"","nickname":"Ann","avatar_url":"","gender":2,"phone":"+86 138","created_at":"2026-01-02T03:04:05Z","updated_at":"2026-01-02T03:04:05Z","banned":true,"ban_reason":"spam"}`
	addr := fakeAdmin(t, map[string]func(http.ResponseWriter, *http.Request){
		"GET /wechat_auth/apps": answer(200, `[{"app_id":"wxcli","store":"bolt","users":3,"active_sessions":5}]`),
		"POST " + app + "/users/lookup": func(w http.ResponseWriter, r *http.Request) {
			var b bytes.Buffer
			_, _ = b.ReadFrom(r.Body)
			known := map[string]bool{`{"phone":"+86 138"}`: true, `{"openid":"o-42"}`: true, `{"unionid":"u-42"}`: true}
			if !known[b.String()] || r.Header.Get("Content-Type") != "application/json" || r.URL.RawQuery != "" {
				answer(400, `{"error":"invalid_request","message":"body `+b.String()+` of type `+r.Header.Get("Content-Type")+`"}`)(w, r)
				return
			}
			answer(200, user)(w, r)
		},
		"GET " + app + "/users/42/sessions": answer(200, `[{"sid":"s-new","created_at":"2026-01-02T03:04:05Z","refreshed_at":null,"expires_at":"2099-01-01T00:00:00Z","revoked_at":null,"revoked_reason":""},{"sid":"s-old","created_at":"2026-01-01T00:00:00Z","refreshed_at":"2026-01-01T01:00:00Z","expires_at":"2099-01-01T00:00:00Z","revoked_at":"2026-01-01T02:00:00Z","revoked_reason":"admin"}]`),
		"PUT " + app + "/users/42/ban": func(w http.ResponseWriter, r *http.Request) {
			var b bytes.Buffer
			_, _ = b.ReadFrom(r.Body)
			if b.String() != `{"reason":"spam"}` {
				answer(400, `{"error":"invalid_request","message":"body `+b.String()+`"}`)(w, r)
				return
			}
			answer(200, `{"user":`+user+`,"revoked_sessions":2}`)(w, r)
		},
		"GET " + app + "/backup": func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/octet-stream")
			w.Header().Set("Content-Disposition", `attachment; filename="../../evil/wechat_auth-wxcli.db"`)
			_, _ = w.Write([]byte("SNAPSHOT"))
		},
	})
	tests := []struct {
		name string
		cmd  func() *cobra.Command
		args []string
		want []string
	}{
		{"apps table", appsCommand, nil, []string{"APP_ID", "ACTIVE_SESSIONS", "wxcli", "bolt"}},
		{"apps json", appsCommand, []string{"--json"}, []string{`"app_id": "wxcli"`, `"active_sessions": 5`}},
		{"user by phone, only app", userCommand, []string{"--phone", "+86 138"}, []string{"openid", "o-42", "yes (spam)"}},
		{"user by openid", userCommand, []string{"--openid", "o-42", "--app", "wxcli"}, []string{"o-42", "yes (spam)"}},
		{"user by unionid, json", userCommand, []string{"--unionid", "u-42", "--app", "wxcli", "--json"}, []string{`"id": 42`}},
		{"sessions table", sessionsCommand, []string{"42", "--app", "wxcli"}, []string{"s-new", "active", "s-old", "revoked (admin)", "2026-01-01T01:00:00Z"}},
		{"ban", banCommand, []string{"42", "--reason", "spam", "--app", "wxcli"}, []string{"banned user 42; revoked 2 session(s)"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := runCLI(t, tc.cmd, addr, tc.args...)
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}

	// backup: the server's file name, reduced to a base name, in the
	// current directory; --out wins.
	dir := t.TempDir()
	t.Chdir(dir)
	out, err := runCLI(t, backupCommand, addr, "--app", "wxcli")
	if err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "wechat_auth-wxcli.db")); err != nil || string(b) != "SNAPSHOT" || !strings.Contains(out, "wrote 8 bytes") {
		t.Fatalf("backup: %q, %v, printed %q", b, err, out)
	}
	fi, _ := os.Stat(filepath.Join(dir, "wechat_auth-wxcli.db"))
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("backup file mode %v, want 0600", fi.Mode().Perm())
	}
	out, err = runCLI(t, backupCommand, addr, "--app", "wxcli", "--out", filepath.Join(dir, "b.db"), "--json")
	if err != nil || !strings.Contains(out, `"bytes": 8`) {
		t.Fatalf("backup --json: %q, %v", out, err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Errorf("backup left %d files in the directory, want 2 (no temporaries)", len(entries))
	}
}
