package wechatauth_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddytest"
)

var update = flag.Bool("update", false, "rewrite the golden adapt files with the current output")

const goldenSep = "\n----------\n"

// TestCaddyfileAdapt adapts every testdata/adapt/*.caddyfiletest Caddyfile
// and compares the JSON with the golden half of the file.
func TestCaddyfileAdapt(t *testing.T) {
	files, err := filepath.Glob("testdata/adapt/*.caddyfiletest")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden files: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			caddyfile, golden, ok := strings.Cut(string(data), goldenSep)
			if !ok {
				t.Fatalf("%s: no %q separator", f, strings.TrimSpace(goldenSep))
			}
			if *update {
				out, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(caddyfile), nil)
				if err != nil {
					t.Fatal(err)
				}
				var buf bytes.Buffer
				if err := json.Indent(&buf, out, "", "\t"); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(f, []byte(caddyfile+goldenSep+buf.String()+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if !caddytest.CompareAdapt(t, f, caddyfile, "caddyfile", strings.TrimRight(golden, "\n")) {
				t.Fatalf("%s: adapted JSON differs from the golden file (see the diff above; -update rewrites it)", f)
			}
		})
	}
}
