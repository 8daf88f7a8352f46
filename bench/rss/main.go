// Command rss measures what serving costs as the user count grows: for
// each user count it fills a bbolt store with that many users, then starts
// Caddy in a fresh process with wechat_auth on that store and the WeChat
// emulator, serves a bounded mix of guarded requests and returning-user
// logins over 127.0.0.1, and prints the process's memory (resident set and
// Go heap) and the request latencies, side by side.
//
// Usage, from the repository root:
//
//	go run ./bench/rss [-users 10000,1000000] [-duration 5s] [-c 8]
//
// The store is filled by a separate process, so its memory is not counted;
// the serving process starts Caddy, measures its idle footprint, then runs
// the load (guarded GETs with tokens of users logged in at start, and
// logins of random existing users, about one login per 20 requests) for
// -duration or -requests, whichever comes first, and measures again after
// a garbage collection. The resident set includes the bbolt file's pages
// that the load touched (bbolt maps the file; the kernel can drop them at
// any time), so it is reported split into anonymous and file-backed
// memory, next to the Go heap, which holds what the module itself keeps. All traffic stays
// on 127.0.0.1; temporary files are removed at exit.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/wxauth/caddy-wechat-auth"
	_ "github.com/wxauth/caddy-wechat-auth/emulator"
	"github.com/wxauth/caddy-wechat-auth/store"
	"github.com/wxauth/caddy-wechat-auth/store/bolt"
)

const appID = "wxrssbench00000001"

func main() {
	mode := flag.String("mode", "", "internal: seed or serve (the child processes)")
	usersFlag := flag.String("users", "10000,1000000", "comma-separated user counts")
	duration := flag.Duration("duration", 5*time.Second, "time limit of the load")
	requests := flag.Int("requests", 200_000, "request limit of the load")
	conc := flag.Int("c", 8, "concurrent client workers")
	dbPath := flag.String("db", "", "internal: the store file")
	flag.Parse()

	var err error
	switch *mode {
	case "seed":
		var n int
		n, err = strconv.Atoi(*usersFlag)
		if err == nil {
			err = seed(*dbPath, n)
		}
	case "serve":
		var n int
		n, err = strconv.Atoi(*usersFlag)
		if err == nil {
			err = serve(*dbPath, n, *duration, *requests, *conc)
		}
	case "":
		err = parent(*usersFlag, *duration, *requests, *conc)
	default:
		err = fmt.Errorf("unknown -mode %q", *mode)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "rss:", err)
		os.Exit(1)
	}
}

// parent runs the seed and serve processes for each user count and prints
// the table.
func parent(usersFlag string, duration time.Duration, requests, conc int) error {
	var counts []int
	for _, f := range strings.Split(usersFlag, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > 10_000_000 {
			return fmt.Errorf("-users: want counts between 1 and 10000000, got %q", f)
		}
		counts = append(counts, n)
	}
	if conc < 1 || conc > 256 || requests < 1 || duration <= 0 || duration > 10*time.Minute {
		return errors.New("want 1 ≤ -c ≤ 256, -requests ≥ 1 and 0 < -duration ≤ 10m")
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "wechat-auth-rss-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	fmt.Printf("%-10s %9s %9s %12s %10s %10s %9s %9s %10s %10s %10s %7s\n",
		"users", "file MiB", "idle RSS", "serving RSS", "anon MiB", "file-backed", "heap MiB", "req/s", "guard p50", "guard p99", "login p99", "errors")
	for _, n := range counts {
		db := filepath.Join(dir, fmt.Sprintf("users-%d.db", n))
		fmt.Fprintf(os.Stderr, "rss: filling a store with %d users\n", n)
		if err := child(self, "seed", db, n, duration, requests, conc, os.Stderr); err != nil {
			return fmt.Errorf("seeding %d users: %w", n, err)
		}
		var out bytes.Buffer
		fmt.Fprintf(os.Stderr, "rss: serving with %d users\n", n)
		if err := child(self, "serve", db, n, duration, requests, conc, &out); err != nil {
			return fmt.Errorf("serving %d users: %w", n, err)
		}
		var r result
		if err := json.Unmarshal(out.Bytes(), &r); err != nil {
			return fmt.Errorf("reading the serve result: %w (%q)", err, out.String())
		}
		fi, err := os.Stat(db)
		if err != nil {
			return err
		}
		fmt.Printf("%-10d %9.1f %9.1f %12.1f %10.1f %10.1f %9.1f %9.0f %10s %10s %10s %7d\n",
			n, mib(fi.Size()), mib(r.IdleRSS), mib(r.ServingRSS), mib(r.ServingAnon), mib(r.ServingFile), mib(r.HeapInuse), r.Rate,
			r.GuardP50.Round(time.Microsecond), r.GuardP99.Round(time.Microsecond), r.LoginP99.Round(time.Microsecond), r.Errors)
		if r.Errors > 0 {
			return fmt.Errorf("%d requests failed with %d users", r.Errors, n)
		}
	}
	return nil
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

func child(self, mode, db string, n int, duration time.Duration, requests, conc int, stdout io.Writer) error {
	cmd := exec.Command(self, "-mode", mode, "-db", db, "-users", strconv.Itoa(n),
		"-duration", duration.String(), "-requests", strconv.Itoa(requests), "-c", strconv.Itoa(conc))
	cmd.Stdout, cmd.Stderr = stdout, os.Stderr
	return cmd.Run()
}

// seed creates users o-0 … o-(n-1) (ids 1 … n) through the store's
// Import, in batches. Writes skip fsync: the file is thrown away after
// the run.
func seed(path string, n int) error {
	st, err := bolt.Open(path, bolt.Options{NoSync: true})
	if err != nil {
		return err
	}
	defer st.Close()
	ctx := context.Background()
	now := time.Now().UTC()
	const batch = 10000
	for first := 0; first < n; first += batch {
		users := make([]store.User, min(batch, n-first))
		recs := make([]store.Record, len(users))
		for k := range users {
			i := first + k
			users[k] = store.User{ID: uint64(i + 1), AppID: appID, OpenID: "o-" + strconv.Itoa(i), CreatedAt: now, UpdatedAt: now}
			recs[k] = store.Record{User: &users[k]}
		}
		if err := st.Import(ctx, appID, recs); err != nil {
			return fmt.Errorf("seeding users %d to %d: %w", first, first+len(users)-1, err)
		}
	}
	return nil
}

// result is what a serve process reports, as JSON on stdout.
type result struct {
	IdleRSS, ServingRSS, HeapInuse int64
	// ServingAnon and ServingFile split ServingRSS: the process's own
	// memory, and the pages of mapped files (the bbolt file, the binary).
	ServingAnon, ServingFile     int64
	Rate                         float64
	GuardP50, GuardP99, LoginP99 time.Duration
	Errors                       int64
}

// serve starts Caddy on the store, loads it and reports.
func serve(db string, n int, duration time.Duration, requests, conc int) error {
	emuPort, sitePort := freePort(), freePort()
	if emuPort == 0 || sitePort == 0 {
		return errors.New("no free loopback port")
	}
	cfg := fmt.Sprintf(`{
	admin off
	persist_config off
	log default {
		level ERROR
	}
}
http://127.0.0.1:%[1]d {
	bind 127.0.0.1
	wechat_emulator
}
http://127.0.0.1:%[2]d {
	bind 127.0.0.1
	wechat_auth {
		app_id %[3]s
		app_secret rss-bench-secret
		api_base http://127.0.0.1:%[1]d
		db %[4]s
	}
	respond "ok"
}
`, emuPort, sitePort, appID, db)
	adapter := caddyfile.Adapter{ServerType: httpcaddyfile.ServerType{}}
	cfgJSON, warn, err := adapter.Adapt([]byte(cfg), nil)
	if err != nil {
		return fmt.Errorf("adapting: %w (%v)", err, warn)
	}
	if err := caddy.Load(cfgJSON, true); err != nil {
		return fmt.Errorf("starting caddy: %w", err)
	}
	defer caddy.Stop()

	emu := fmt.Sprintf("http://127.0.0.1:%d", emuPort)
	site := fmt.Sprintf("http://127.0.0.1:%d", sitePort)
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: conc * 2}}
	defer client.CloseIdleConnections()

	runtime.GC()
	var r result
	r.IdleRSS = status("VmRSS:")

	// One logged-in user per worker for the guarded requests.
	toks := make([]string, conc)
	for i := range toks {
		tok, err := login(client, emu, site, fmt.Sprintf("o-%d", rand.IntN(n)))
		if err != nil {
			return err
		}
		toks[i] = tok
	}

	var (
		mu             sync.Mutex
		guardLat, logs []time.Duration
		count, errs    atomic.Int64
		wg             sync.WaitGroup
	)
	deadline := time.Now().Add(duration)
	start := time.Now()
	for w := range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var gl, ll []time.Duration
			for i := 0; time.Now().Before(deadline) && count.Add(1) <= int64(requests); i++ {
				t0 := time.Now()
				if i%20 == 19 {
					if _, err := login(client, emu, site, fmt.Sprintf("o-%d", rand.IntN(n))); err != nil {
						errs.Add(1)
					}
					ll = append(ll, time.Since(t0))
					continue
				}
				if err := guarded(client, site, toks[w]); err != nil {
					errs.Add(1)
				}
				gl = append(gl, time.Since(t0))
			}
			mu.Lock()
			guardLat, logs = append(guardLat, gl...), append(logs, ll...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	r.Rate = float64(len(guardLat)+len(logs)) / elapsed.Seconds()
	r.Errors = errs.Load()
	r.GuardP50, r.GuardP99 = percentile(guardLat, 0.50), percentile(guardLat, 0.99)
	r.LoginP99 = percentile(logs, 0.99)
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	r.HeapInuse = int64(ms.HeapInuse)
	r.ServingRSS = status("VmRSS:")
	r.ServingAnon, r.ServingFile = status("RssAnon:"), status("RssFile:")
	return json.NewEncoder(os.Stdout).Encode(r)
}

func login(c *http.Client, emu, site, openid string) (string, error) {
	var code struct{ Code string }
	if err := post(c, emu+"/emulator/code", map[string]string{"openid": openid}, &code); err != nil {
		return "", fmt.Errorf("minting a code: %w", err)
	}
	var ans struct{ Token string }
	if err := post(c, site+"/wx/login", map[string]string{"code": code.Code}, &ans); err != nil {
		return "", fmt.Errorf("logging in: %w", err)
	}
	if ans.Token == "" {
		return "", errors.New("logging in: no token")
	}
	return ans.Token, nil
}

func post(c *http.Client, url string, in, out any) error {
	b, _ := json.Marshal(in)
	res, err := c.Post(url, "application/json", bytes.NewReader(b))
	if err != nil {
		return err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		return err
	}
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: status %d", url, res.StatusCode)
	}
	return json.Unmarshal(body, out)
}

func guarded(c *http.Client, site, tok string) error {
	req, _ := http.NewRequest(http.MethodGet, site+"/thing", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	res, err := c.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("guarded request: status %d", res.StatusCode)
	}
	return nil
}

func percentile(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	return d[min(len(d)-1, int(q*float64(len(d))))]
}

// status reads one "<name> <n> kB" line of /proc/self/status, in bytes
// (0 if unknown): VmRSS is the resident set, RssAnon and RssFile its
// anonymous and file-backed parts.
func status(name string) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// freePort returns a free loopback TCP port, 0 if none.
func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
