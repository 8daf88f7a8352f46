package bolt

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/wxauth/caddy-wechat-auth/store"
	"github.com/wxauth/caddy-wechat-auth/store/storetest"
)

// Environment of the crash child: the database path and a round tag that
// keeps openids unique across rounds.
const (
	crashDBEnv    = "WECHAT_AUTH_CRASH_DB"
	crashRoundEnv = "WECHAT_AUTH_CRASH_ROUND"
)

// Bounds of the crash test.
const (
	crashRounds      = 3
	crashAcks        = 150              // acknowledged writes before the kill
	crashDeadline    = 30 * time.Second // parent: kill regardless after this
	crashChildLife   = 60 * time.Second // child: stop by itself after this
	crashChildMaxOps = 100000           // child: and after this many logins
	crashWorkers     = 4
)

// TestCrashChild is not a test: TestCrashRecovery runs the test binary
// again with only this function and the environment set. It logs users in
// and creates sessions from several goroutines, printing one "ack" line per
// write acknowledged by the store, until it is killed.
func TestCrashChild(t *testing.T) {
	path, round := os.Getenv(crashDBEnv), os.Getenv(crashRoundEnv)
	if path == "" {
		t.Skip("helper process of TestCrashRecovery")
	}
	s, err := Open(path, Options{Timeout: 10 * time.Second})
	if err != nil {
		t.Fatalf("child: Open: %v", err)
	}
	defer s.Close()
	ctx := context.Background()
	stop := time.Now().Add(crashChildLife)
	var (
		seq    atomic.Int64
		outMu  sync.Mutex
		wg     sync.WaitGroup
		failed atomic.Value
	)
	for range crashWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := seq.Add(1)
				if i > crashChildMaxOps || time.Now().After(stop) {
					return
				}
				openID := fmt.Sprintf("r%s-o%d", round, i)
				now := base.Add(time.Duration(i) * time.Second)
				sid := "sid-" + openID
				tok := store.RefreshToken{Hash: sha256.Sum256([]byte(sid)), SessionID: sid, IssuedAt: now, ExpiresAt: now.Add(time.Hour)}
				sess := store.Session{ID: sid, AppID: "app", CreatedAt: now}
				u, _, _, err := s.Login(ctx, "app", store.NewUser{OpenID: openID}, sess, tok, now)
				if err != nil {
					failed.Store(err)
					return
				}
				outMu.Lock()
				_, err = fmt.Fprintf(os.Stdout, "ack %s %d\n", openID, u.ID)
				outMu.Unlock()
				if err != nil {
					return
				}
			}
		}()
	}
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		t.Fatalf("child: %v", err)
	}
}

// ack is one write the child reported as acknowledged.
type ack struct {
	openID string
	id     uint64
}

// TestCrashRecovery kills a writing child process with SIGKILL, several
// times, and checks after each kill that the file opens, is consistent,
// and holds every user and session the child had acknowledged.
func TestCrashRecovery(t *testing.T) {
	path := filepath.Join(t.TempDir(), "crash.db")
	var all []ack
	for round := range crashRounds {
		acks := runAndKill(t, path, round)
		if len(acks) < crashAcks {
			t.Fatalf("round %d: only %d acknowledged writes", round, len(acks))
		}
		all = append(all, acks...)

		s, err := Open(path, Options{Timeout: 5 * time.Second})
		if err != nil {
			t.Fatalf("round %d: the file does not open after SIGKILL: %v", round, err)
		}
		if err := s.db.View(func(tx *bbolt.Tx) error {
			var first error
			for err := range tx.Check() { // drain: Check's goroutine sends all
				if first == nil {
					first = err
				}
			}
			return first
		}); err != nil {
			t.Errorf("round %d: consistency check: %v", round, err)
		}
		ctx := context.Background()
		var maxID uint64
		for _, a := range all {
			u, err := s.UserByOpenID(ctx, "app", a.openID)
			if err != nil || u.ID != a.id {
				t.Errorf("round %d: acknowledged user %s: id %d, %v; want id %d", round, a.openID, u.ID, err, a.id)
			}
			sess, err := s.Session(ctx, "app", "sid-"+a.openID)
			if err != nil || sess.UserID != a.id {
				t.Errorf("round %d: acknowledged session of %s: %+v, %v", round, a.openID, sess, err)
			}
			if _, err := s.RefreshToken(ctx, "app", sha256.Sum256([]byte("sid-"+a.openID))); err != nil {
				t.Errorf("round %d: acknowledged refresh token of %s: %v", round, a.openID, err)
			}
			maxID = max(maxID, a.id)
		}
		// No acknowledged id is handed out again.
		u, created, err := storetest.LoginUser(ctx, s, "app", store.NewUser{OpenID: fmt.Sprintf("after-%d", round)}, base)
		if err != nil || !created || u.ID <= maxID {
			t.Errorf("round %d: user created after recovery: id %d, created %v, %v; want id > %d", round, u.ID, created, err, maxID)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if t.Failed() {
			return
		}
	}
}

// runAndKill runs the crash child on path until it has acknowledged
// crashAcks writes (or crashDeadline passes), kills it with SIGKILL and
// returns every write it acknowledged.
func runAndKill(t *testing.T, path string, round int) []ack {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashDBEnv+"="+path, crashRoundEnv+"="+strconv.Itoa(round))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting crash child: %v", err)
	}
	var once sync.Once
	kill := func() { once.Do(func() { _ = cmd.Process.Kill() }) }
	timer := time.AfterFunc(crashDeadline, kill)
	defer timer.Stop()
	t.Cleanup(kill)

	var acks []ack
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 3 || f[0] != "ack" {
			continue
		}
		id, err := strconv.ParseUint(f[2], 10, 64)
		if err != nil {
			t.Fatalf("bad ack line %q", sc.Text())
		}
		acks = append(acks, ack{openID: f[1], id: id})
		if len(acks) == crashAcks {
			kill()
		}
		// Lines already in the pipe after the kill were acknowledged
		// too: keep reading to EOF.
	}
	err = cmd.Wait()
	if len(acks) < crashAcks {
		t.Fatalf("crash child stopped after %d acks (%v); stderr:\n%s", len(acks), err, stderr.String())
	}
	if err == nil {
		t.Fatalf("crash child exited cleanly instead of being killed")
	}
	return acks
}
