package wechatauth_test

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"

	"github.com/wxauth/caddy-wechat-auth/store/bolt"
)

// The operations end-to-end tests: the admin API on the test Caddy's admin
// endpoint, the `caddy wechat-auth` CLI built from ./cmd/caddy and run as
// a user runs it, and Caddy's /metrics.

const adminURL = "http://localhost:2999"

// buildCLI builds the Caddy binary of this module into a temp dir.
func buildCLI(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "caddy")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/caddy").CombinedOutput()
	if err != nil {
		t.Fatalf("building ./cmd/caddy: %v\n%s", err, out)
	}
	return bin
}

type cliResult struct {
	stdout, stderr string
	code           int
}

// cli runs `caddy wechat-auth args...` against the test Caddy's admin
// endpoint.
func cli(t *testing.T, bin string, args ...string) cliResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	args = append([]string{"wechat-auth"}, args...)
	if !slices.Contains(args, "--address") {
		args = append(args, "--address", "localhost:2999")
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = t.TempDir()
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := cliResult{stdout: stdout.String(), stderr: stderr.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		res.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running the CLI: %v", err)
	}
	return res
}

// cliJSON runs the CLI with --json, wants success, and decodes stdout
// (which must be JSON only) into dst.
func cliJSON(t *testing.T, bin string, dst any, args ...string) {
	t.Helper()
	r := cli(t, bin, append(args, "--json")...)
	if r.code != 0 {
		t.Fatalf("wechat-auth %v: exit %d: %s", args, r.code, r.stderr)
	}
	if err := json.Unmarshal([]byte(r.stdout), dst); err != nil {
		t.Fatalf("wechat-auth %v --json printed something else than JSON: %v\n%s", args, err, r.stdout)
	}
}

// cliFails runs the CLI and wants a non-zero exit with one line on
// stderr that contains want, and nothing on stdout.
func cliFails(t *testing.T, bin, want string, args ...string) {
	t.Helper()
	r := cli(t, bin, args...)
	lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
	if r.code == 0 || len(lines) != 1 || !strings.Contains(r.stderr, want) || r.stdout != "" {
		t.Fatalf("wechat-auth %v: exit %d, stdout %q, stderr %q; want a failure saying %q in one line", args, r.code, r.stdout, r.stderr, want)
	}
	if strings.Contains(r.stderr, "goroutine") || strings.Contains(r.stderr, "Usage:") {
		t.Fatalf("wechat-auth %v printed a stack trace or usage: %s", args, r.stderr)
	}
}

// adminDo calls the admin API directly and decodes its JSON answer.
func (e *e2e) admin(method, path, body string) answer {
	e.t.Helper()
	return e.do(method, adminURL+path, "application/json", body, nil)
}

// metrics scrapes Caddy's /metrics on the admin endpoint: series → value.
func (e *e2e) metrics() map[string]float64 {
	e.t.Helper()
	res, err := e.client.Get(adminURL + "/metrics")
	if err != nil {
		e.t.Fatalf("scraping /metrics: %v", err)
	}
	defer res.Body.Close()
	if res.StatusCode != 200 {
		e.t.Fatalf("scraping /metrics: %d", res.StatusCode)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "caddy_wechat_auth_") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			e.t.Fatalf("metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

// series names a series as the exposition writes it (labels sorted).
func series(name string, labels ...string) string {
	var b strings.Builder
	b.WriteString("caddy_wechat_auth_" + name + "{")
	for i := 0; i+1 < len(labels); i += 2 {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%s=%q", labels[i], labels[i+1])
	}
	b.WriteString("}")
	return b.String()
}

// wantDeltas checks that each series grew by exactly its delta.
func wantDeltas(t *testing.T, before, after map[string]float64, deltas map[string]float64) {
	t.Helper()
	for s, d := range deltas {
		if got := after[s] - before[s]; got != d {
			t.Errorf("%s grew by %v, want %v (now %v)", s, got, d, after[s])
		}
	}
}

func TestE2EOpsAdminAndCLI(t *testing.T) {
	bin := buildCLI(t)
	e := newE2E(t, "")
	before := e.metrics()

	// Two sessions of one user, one session of another, a phone number.
	s1 := e.login("o_ops_1")
	s2 := e.login("o_ops_1")
	other := e.login("o_ops_2")
	uid1 := uint64(s1["user_id"].(float64))
	uid2 := uint64(other["user_id"].(float64))
	a := e.postJSON(wechatURL+"/emulator/phone_code", map[string]string{"phone_number": "13700137000", "country_code": "86"}, nil)
	a = e.postJSON(siteURL+"/wx/phone", map[string]string{"code": a.body["code"].(string)}, bearer(s1["token"].(string)))
	expect(t, a, 200, "")
	phone := a.body["phone"].(map[string]any)["phone_number"].(string)
	id1 := strconv.FormatUint(uid1, 10)

	// apps: the one app, with its counts.
	var apps []struct {
		AppID          string `json:"app_id"`
		Store          string `json:"store"`
		Users          int64  `json:"users"`
		ActiveSessions int64  `json:"active_sessions"`
	}
	cliJSON(t, bin, &apps, "apps")
	if len(apps) != 1 || apps[0].AppID != e2eAppID || apps[0].Store != "bolt" || apps[0].Users != 2 || apps[0].ActiveSessions != 3 {
		t.Fatalf("apps: %+v", apps)
	}
	if r := cli(t, bin, "apps"); r.code != 0 || !strings.Contains(r.stdout, "APP_ID") || !strings.Contains(r.stdout, e2eAppID) {
		t.Fatalf("apps table: %+v", r)
	}

	// user by id, openid and phone, over the CLI and the admin API.
	type user struct {
		ID     uint64 `json:"id"`
		OpenID string `json:"openid"`
		Phone  string `json:"phone"`
		Banned bool   `json:"banned"`
	}
	for _, args := range [][]string{{"user", id1}, {"user", "--openid", "o_ops_1"}, {"user", "--phone", phone}} {
		var u user
		cliJSON(t, bin, &u, args...)
		if u.ID != uid1 || u.OpenID != "o_ops_1" || u.Phone != phone {
			t.Fatalf("%v: %+v", args, u)
		}
	}
	if r := cli(t, bin, "user", "--openid", "o_ops_1"); r.code != 0 || !strings.Contains(r.stdout, "o_ops_1") || !strings.Contains(r.stdout, phone) {
		t.Fatalf("user table: %+v", r)
	}
	lookup, _ := json.Marshal(map[string]string{"phone": phone})
	a = e.admin("POST", "/wechat_auth/apps/"+e2eAppID+"/users/lookup", string(lookup))
	if a.status != 200 || a.body["id"].(float64) != float64(uid1) {
		t.Fatalf("admin API user by phone: %d %s", a.status, a.raw)
	}
	noSecrets(t, a, s1["token"].(string), s1["refresh_token"].(string))

	// sessions: both of user 1, newest first, no secrets.
	var sessions []struct {
		SID       string  `json:"sid"`
		RevokedAt *string `json:"revoked_at"`
		Reason    string  `json:"revoked_reason"`
	}
	cliJSON(t, bin, &sessions, "sessions", id1)
	if len(sessions) != 2 {
		t.Fatalf("sessions: %+v", sessions)
	}
	sid1 := sidOf(t, s1["token"].(string))
	if sessions[1].SID != sid1 || sessions[0].SID != sidOf(t, s2["token"].(string)) {
		t.Fatalf("sessions not newest first: %+v", sessions)
	}
	a = e.admin("GET", "/wechat_auth/apps/"+e2eAppID+"/users/"+id1+"/sessions", "")
	expect(t, a, 200, "")
	noSecrets(t, a, s1["token"].(string), s1["refresh_token"].(string), s2["refresh_token"].(string))

	// revoke one session: its token is refused at once, the other
	// session of the same user goes on.
	expect(t, e.do("GET", siteURL+"/x", "", "", bearer(s1["token"].(string))), 200, "")
	if r := cli(t, bin, "revoke", "--session", sid1); r.code != 0 || !strings.Contains(r.stdout, sid1) {
		t.Fatalf("revoke --session: %+v", r)
	}
	expect(t, e.do("GET", siteURL+"/x", "", "", bearer(s1["token"].(string))), 401, "invalid_token")
	expect(t, e.do("GET", siteURL+"/x", "", "", bearer(s2["token"].(string))), 200, "")
	expect(t, e.postJSON(siteURL+"/wx/refresh", map[string]any{"refresh_token": s1["refresh_token"]}, nil), 401, "invalid_grant")

	// ban: the token is refused at once, login answers 403 user_banned,
	// refresh invalid_grant; unban: login works again, same user.
	expect(t, e.do("GET", siteURL+"/x", "", "", bearer(other["token"].(string))), 200, "")
	var banned struct {
		User            user `json:"user"`
		RevokedSessions int  `json:"revoked_sessions"`
	}
	cliJSON(t, bin, &banned, "ban", strconv.FormatUint(uid2, 10), "--reason", "spam")
	if !banned.User.Banned || banned.RevokedSessions != 1 {
		t.Fatalf("ban: %+v", banned)
	}
	expect(t, e.do("GET", siteURL+"/x", "", "", bearer(other["token"].(string))), 401, "invalid_token")
	expect(t, e.postJSON(siteURL+"/wx/login", map[string]string{"code": e.mint("o_ops_2")}, nil), 403, "user_banned")
	expect(t, e.postJSON(siteURL+"/wx/refresh", map[string]any{"refresh_token": other["refresh_token"]}, nil), 401, "invalid_grant")
	if r := cli(t, bin, "unban", strconv.FormatUint(uid2, 10)); r.code != 0 || !strings.Contains(r.stdout, "unbanned user") {
		t.Fatalf("unban: %+v", r)
	}
	again := e.login("o_ops_2")
	if again["user_id"].(float64) != float64(uid2) || again["new_user"] != false {
		t.Fatalf("login after unban: %v", again)
	}

	// revoke --user ends every session left.
	if r := cli(t, bin, "revoke", "--user", id1); r.code != 0 || !strings.Contains(r.stdout, "revoked 1 session") {
		t.Fatalf("revoke --user: %+v", r)
	}
	expect(t, e.do("GET", siteURL+"/x", "", "", bearer(s2["token"].(string))), 401, "invalid_token")

	// Failures: one line, non-zero exit.
	cliFails(t, bin, "no user 999", "user", "999")
	cliFails(t, bin, "no user with that openid", "user", "--openid", "nobody")
	cliFails(t, bin, `no wechat_auth handler serves app "wxnope"`, "user", "1", "--app", "wxnope")
	cliFails(t, bin, "not a positive integer", "sessions", "abc")
	cliFails(t, bin, "exactly one of", "revoke")
	cliFails(t, bin, "no session", "revoke", "--session", "no-such-sid")
	r := cli(t, bin, "apps", "--address", "127.0.0.1:1")
	if r.code == 0 || !strings.Contains(r.stderr, "cannot reach Caddy's admin endpoint") {
		t.Fatalf("apps against no server: %+v", r)
	}

	// The metrics of the flow.
	after := e.metrics()
	app := e2eAppID
	wantDeltas(t, before, after, map[string]float64{
		series("logins_total", "app_id", app, "result", "ok_new"):                2,
		series("logins_total", "app_id", app, "result", "ok_returning"):          2,
		series("logins_total", "app_id", app, "result", "user_banned"):           1,
		series("guard_requests_total", "app_id", app, "result", "ok"):            3,
		series("guard_requests_total", "app_id", app, "result", "revoked"):       3,
		series("refreshes_total", "app_id", app, "result", "invalid"):            2,
		series("revocations_total", "app_id", app, "reason", "admin"):            2,
		series("revocations_total", "app_id", app, "reason", "ban"):              1,
		series("wechat_requests_total", "api", "jscode2session", "result", "ok"): 5,
		series("wechat_request_duration_seconds_count", "api", "jscode2session"): 5,
	})
	if got := after[series("users", "app_id", app)]; got != 2 {
		t.Errorf("users gauge = %v, want 2", got)
	}
}

// sidOf reads the sid claim of an access token (no verification: the
// test only needs to name the session).
func sidOf(t *testing.T, tok string) string {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", tok)
	}
	b, err := jwtSegment(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		SID string `json:"sid"`
	}
	if err := json.Unmarshal(b, &c); err != nil || c.SID == "" {
		t.Fatalf("no sid in token: %v", err)
	}
	return c.SID
}

func TestE2EMetricsReloadAndTwoApps(t *testing.T) {
	tester := caddytest.NewTester(t)
	db := filepath.Join(t.TempDir(), "two.db")
	block := func(app, prefix string) string { return appBlock(app, prefix, db, "ok {http.auth.user.id}") }
	const appA, appB = "wxmetricsaaaaaaaa1", "wxmetricsbbbbbbbb2"
	config := `{
	admin localhost:2999
	http_port 9080
	https_port 9443
	skip_install_trust
}
http://127.0.0.1:9081 {
	wechat_emulator
}
http://127.0.0.1:9080 {` + block(appA, "/a") + block(appB, "/b") + `
}
`
	tester.InitServer(config, "caddyfile")
	e := &e2e{t: t, tester: tester, client: &http.Client{Timeout: 10 * time.Second}}
	t.Cleanup(func() { tester.InitServer(emptyConfig, "caddyfile") })

	before := e.metrics()
	loginAt := func(prefix, openid string) map[string]any {
		a := e.postJSON(siteURL+prefix+"/wx/login", map[string]string{"code": e.mint(openid)}, nil)
		expect(t, a, 200, "")
		return a.body
	}
	a1 := loginAt("/a", "o_m_1")
	loginAt("/a", "o_m_2")
	b1 := loginAt("/b", "o_m_1")
	expect(t, e.do("GET", siteURL+"/a/x", "", "", bearer(a1["token"].(string))), 200, "")
	expect(t, e.do("GET", siteURL+"/b/x", "", "", bearer(b1["token"].(string))), 200, "")
	expect(t, e.do("GET", siteURL+"/b/x", "", "", nil), 401, "invalid_token")
	expect(t, e.do("GET", siteURL+"/b/x", "", "", bearer("not.a.token")), 401, "invalid_token")
	expect(t, e.postJSON(siteURL+"/a/wx/refresh", map[string]any{"refresh_token": a1["refresh_token"]}, nil), 200, "")

	deltas := map[string]float64{
		series("logins_total", "app_id", appA, "result", "ok_new"):          2,
		series("logins_total", "app_id", appB, "result", "ok_new"):          1,
		series("guard_requests_total", "app_id", appA, "result", "ok"):      1,
		series("guard_requests_total", "app_id", appB, "result", "ok"):      1,
		series("guard_requests_total", "app_id", appB, "result", "missing"): 1,
		series("guard_requests_total", "app_id", appB, "result", "invalid"): 1,
		series("refreshes_total", "app_id", appA, "result", "ok"):           1,
	}
	mid := e.metrics()
	wantDeltas(t, before, mid, deltas)
	if mid[series("users", "app_id", appA)] != 2 || mid[series("users", "app_id", appB)] != 1 {
		t.Errorf("users gauges: A %v, B %v", mid[series("users", "app_id", appA)], mid[series("users", "app_id", appB)])
	}

	// Five reloads (a changed config each time, so Caddy really reloads):
	// no panic, every count kept, the gauges right.
	for i := range 5 {
		tester.InitServer(strings.Replace(config, "respond \"ok", fmt.Sprintf("respond \"ok%d", i), -1), "caddyfile")
		e.client.CloseIdleConnections()
	}
	after := e.metrics()
	for s, v := range mid {
		if strings.Contains(s, "_duration_") {
			continue
		}
		if after[s] != v {
			t.Errorf("after five reloads %s = %v, was %v", s, after[s], v)
		}
	}
	// Counting goes on in the reloaded config.
	expect(t, e.do("GET", siteURL+"/a/x", "", "", bearer(a1["token"].(string))), 200, "")
	wantDeltas(t, after, e.metrics(), map[string]float64{
		series("guard_requests_total", "app_id", appA, "result", "ok"): 1,
	})
}

// jwtSegment decodes one base64url segment of a JWT.
func jwtSegment(s string) ([]byte, error) {
	return base64.RawURLEncoding.DecodeString(s)
}

// TestE2EBackupUnderLoadAndRestore takes a backup with the CLI while four
// clients log new users in, then checks that no login failed, that the
// snapshot opens with bbolt and holds every user that had a token before
// the backup started, and that a new Caddy on the restored file gives
// every user back with the same id.
func TestE2EBackupUnderLoadAndRestore(t *testing.T) {
	bin := buildCLI(t)
	e := newE2E(t, "")

	type loggedIn struct {
		openid string
		id     float64
		at     time.Time // when the token was in hand
	}
	var (
		mu      sync.Mutex
		users   []loggedIn
		loading = make(chan struct{}) // closed once the load has logged 40 users in
	)
	record := func(openid string, body map[string]any) {
		mu.Lock()
		users = append(users, loggedIn{openid, body["user_id"].(float64), time.Now()})
		if len(users) == 80 {
			close(loading)
		}
		mu.Unlock()
	}
	for i := range 40 {
		openid := fmt.Sprintf("o_backup_pre_%d", i)
		record(openid, e.login(openid))
	}

	// The load: four clients, each logging in new users until the backup
	// is done (at most 500 each, at most 2 minutes).
	var (
		stop   atomic.Bool
		failed atomic.Int64
		wg     sync.WaitGroup
		errMu  sync.Mutex
		errs   []string
	)
	deadline := time.Now().Add(2 * time.Minute)
	client := &http.Client{Timeout: 10 * time.Second}
	post := func(url, body string) (int, map[string]any, error) {
		res, err := client.Post(url, "application/json", strings.NewReader(body))
		if err != nil {
			return 0, nil, err
		}
		defer res.Body.Close()
		var m map[string]any
		err = json.NewDecoder(res.Body).Decode(&m)
		return res.StatusCode, m, err
	}
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 500 && !stop.Load() && time.Now().Before(deadline); i++ {
				openid := fmt.Sprintf("o_backup_load_%d_%d", w, i)
				st, m, err := post(emuCodeURL, `{"openid":"`+openid+`"}`)
				if err == nil && st == 200 {
					st, m, err = post(siteURL+"/wx/login", `{"code":"`+m["code"].(string)+`"}`)
				}
				if err != nil || st != 200 {
					failed.Add(1)
					errMu.Lock()
					errs = append(errs, fmt.Sprintf("%s: %d %v", openid, st, err))
					errMu.Unlock()
					return
				}
				record(openid, m)
			}
		}()
	}
	// Let the load get going, then back up.
	select {
	case <-loading:
	case <-time.After(time.Minute):
		t.Fatalf("the load did not get going: %v", errs)
	}
	backupStart := time.Now()
	out := filepath.Join(t.TempDir(), "snapshot.db")
	r := cli(t, bin, "backup", "--out", out)
	took := time.Since(backupStart)
	stop.Store(true)
	wg.Wait()
	if r.code != 0 || !strings.Contains(r.stdout, "wrote ") {
		t.Fatalf("backup: %+v", r)
	}
	if n := failed.Load(); n != 0 {
		t.Fatalf("%d logins failed during the backup: %v", n, errs)
	}
	fi, err := os.Stat(out)
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	all := append([]loggedIn(nil), users...)
	mu.Unlock()
	var before []loggedIn
	for _, u := range all {
		if u.at.Before(backupStart) {
			before = append(before, u)
		}
	}
	t.Logf("backup under load: %d bytes in %v; %d users had tokens before it started, %d logins in all", fi.Size(), took.Round(time.Millisecond), len(before), len(all))

	// The snapshot opens with bbolt and holds every one of them.
	check := func(path string) {
		t.Helper()
		st, err := bolt.Open(path, bolt.Options{Timeout: time.Second})
		if err != nil {
			t.Fatalf("opening the snapshot: %v", err)
		}
		defer st.Close()
		for _, u := range before {
			got, err := st.UserByOpenID(context.Background(), e2eAppID, u.openid)
			if err != nil || float64(got.ID) != u.id {
				t.Fatalf("snapshot: user %s: %+v, %v; want id %v", u.openid, got, err, u.id)
			}
		}
	}
	restored := filepath.Join(t.TempDir(), "restored.db")
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(restored, data, 0o600); err != nil {
		t.Fatal(err)
	}
	check(restored)

	// Restore: a new Caddy on the restored file has every user back with
	// the same id.
	e.loadRaw(e2eConfig(restored, ""))
	for _, u := range before {
		a := e.postJSON(siteURL+"/wx/login", map[string]string{"code": e.mint(u.openid)}, nil)
		expect(t, a, 200, "")
		if a.body["user_id"].(float64) != u.id || a.body["new_user"] != false {
			t.Fatalf("restored user %s: %s; want id %v, not new", u.openid, a.raw, u.id)
		}
	}
	a := e.admin("POST", "/wechat_auth/apps/"+e2eAppID+"/users/lookup", `{"openid":"`+before[0].openid+`"}`)
	if a.status != 200 || a.body["id"].(float64) != before[0].id {
		t.Fatalf("admin API on the restored store: %d %s", a.status, a.raw)
	}
}
