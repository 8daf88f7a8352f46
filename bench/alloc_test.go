package bench

import (
	"net/http"
	"testing"
)

// TestGuardAllocations keeps the hot path honest: on a valid, cached token
// the guard allocates at most twice per request (the identity header
// values and the placeholder provider) beyond the replacer Caddy makes for
// every request anyway, with metrics on (counted, and no allocation more
// than with them off). Counts, not times, so it is not a timed test.
func TestGuardAllocations(t *testing.T) {
	for _, c := range algCases(t) {
		t.Run(c.name, func(t *testing.T) {
			off := guardAllocs(t, c, false)
			on := guardAllocs(t, c, true)
			if on > off {
				t.Fatalf("metrics add %.0f allocations per request", on-off)
			}
			if on > 2 {
				t.Fatalf("guard allocates %.0f times per request, want at most 2", on)
			}
		})
	}
}

// guardAllocs is the guard's allocations per request, metrics on or off.
func guardAllocs(t *testing.T, c algCase, metrics bool) float64 {
	t.Helper()
	m, reg := provisionMetrics(t, c.module, metrics)
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
	if metrics && guardOK(t, reg) < 201 {
		t.Fatalf("metrics on, but only %v guard requests counted", guardOK(t, reg))
	}
	return total - base
}
