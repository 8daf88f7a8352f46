// Package testenv decides what a test does when something it needs from
// outside the repository (a PostgreSQL server, Chromium, Node) is missing:
// on a developer's machine the test skips with one line that says how to
// run it; where RequireEnv is set (CI sets it) the test fails instead, so a
// missing service can never pass silently.
package testenv

import (
	"os"
	"testing"
)

// RequireEnv is the environment variable that turns a skip for a missing
// outside dependency into a failure.
const RequireEnv = "WECHAT_AUTH_REQUIRE_EXTERNAL"

// Required reports whether missing outside dependencies fail tests.
func Required() bool { return os.Getenv(RequireEnv) != "" }

// Missing ends the test because what is not available: it skips with
// "what: how" (how says how to make it available), or fails with the same
// line when RequireEnv is set.
func Missing(t testing.TB, what, how string) {
	t.Helper()
	if Required() {
		t.Fatalf("%s (required: %s is set): %s", what, RequireEnv, how)
		return
	}
	t.Skipf("skipped: %s: %s", what, how)
}
