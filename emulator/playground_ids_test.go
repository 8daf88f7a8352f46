package emulator

import (
	"regexp"
	"testing"
)

// TestPlaygroundElementIDs checks that every element app.js looks up by id
// exists on the page, so that no button or field is silently dead.
func TestPlaygroundElementIDs(t *testing.T) {
	script, err := playgroundFiles.ReadFile("playground/app.js")
	if err != nil {
		t.Fatal(err)
	}
	page, err := playgroundFiles.ReadFile("playground/index.html")
	if err != nil {
		t.Fatal(err)
	}
	ids := make(map[string]bool)
	for _, m := range regexp.MustCompile(`\bid="([^"]+)"`).FindAllSubmatch(page, -1) {
		ids[string(m[1])] = true
	}
	refs := regexp.MustCompile(`(?:\$|action)\('([a-z-]+)'`).FindAllSubmatch(script, -1)
	if len(refs) < 10 {
		t.Fatalf("found %d element lookups in app.js, want at least 10", len(refs))
	}
	for _, m := range refs {
		if !ids[string(m[1])] {
			t.Errorf("app.js uses element #%s, which index.html lacks", m[1])
		}
	}
}
