package bench

import (
	"net/http"
	"testing"
)

// TestGuardAllocations keeps the hot path honest: on a valid, cached token
// the guard allocates at most twice per request (the identity header
// values and the placeholder provider) beyond the replacer Caddy makes for
// every request anyway. Counts, not times, so it is not a timed test.
func TestGuardAllocations(t *testing.T) {
	for _, c := range algCases(t) {
		t.Run(c.name, func(t *testing.T) {
			m := provision(t, c.module)
			r, rc := guardRequest(issue(t, c.signer))
			w := &discardWriter{h: http.Header{}}
			if err := m.ServeHTTP(w, r, nextOK); err != nil {
				t.Fatal(err)
			}
			base := testing.AllocsPerRun(200, func() { rc.repl = requestReplacer() })
			total := testing.AllocsPerRun(200, func() {
				rc.repl = requestReplacer()
				if err := m.ServeHTTP(w, r, nextOK); err != nil {
					t.Fatal(err)
				}
			})
			if guard := total - base; guard > 2 {
				t.Fatalf("guard allocates %.0f times per request, want at most 2", guard)
			}
		})
	}
}
