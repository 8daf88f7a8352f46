package testenv

import (
	"testing"
)

// fakeTB records how a test ended.
type fakeTB struct {
	testing.TB
	skipped, failed bool
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Skipf(format string, args ...any) {
	f.skipped = true
}
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.failed = true
}

func TestMissing(t *testing.T) {
	t.Setenv(RequireEnv, "")
	var f fakeTB
	Missing(&f, "PostgreSQL", "start it")
	if !f.skipped || f.failed {
		t.Fatalf("without %s: skipped=%v failed=%v, want a skip", RequireEnv, f.skipped, f.failed)
	}
	t.Setenv(RequireEnv, "1")
	f = fakeTB{}
	Missing(&f, "PostgreSQL", "start it")
	if f.skipped || !f.failed {
		t.Fatalf("with %s: skipped=%v failed=%v, want a failure", RequireEnv, f.skipped, f.failed)
	}
}
