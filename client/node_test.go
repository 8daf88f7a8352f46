package client

import (
	"context"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/wxauth/caddy-wechat-auth/internal/testenv"
)

// TestNodeSuite runs the client's JavaScript tests (node --test) so that
// `go test ./...` covers them: the fake-wx suite, and the run against a
// real Caddy, which builds ./cmd/caddy itself.
func TestNodeSuite(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		testenv.Missing(t, "Node.js is not installed", "install Node.js 20 or later to run the client's tests (node --test client/)")
		return
	}
	files, err := filepath.Glob("*.test.js")
	if err != nil || len(files) < 2 {
		t.Fatalf("found the test files %v (%v), want wechat-auth.test.js and caddy.test.js", files, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, append([]string{"--test"}, files...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node --test %v: %v\n%s", files, err, out)
	}
	// A run in which every test skipped would prove nothing.
	if m := regexp.MustCompile(`(?m)^# pass (\d+)$`).FindSubmatch(out); m == nil || string(m[1]) == "0" {
		t.Fatalf("node --test passed no test:\n%s", out)
	}
	for _, line := range regexp.MustCompile(`(?m)^# (tests|pass|skipped|duration_ms) .*$`).FindAll(out, -1) {
		t.Log(string(line))
	}
}
