package wechatauth

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wxauth/caddy-wechat-auth/internal/handler"
	"github.com/wxauth/caddy-wechat-auth/store/bolt"
)

// generateSecrets creates the app's generated secrets in a new bbolt file
// sealed with appSecret, and returns their values by name.
func generateSecrets(t *testing.T, path, app, appSecret string) map[string][]byte {
	t.Helper()
	st, err := bolt.Open(path, bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	return openSecrets(t, path, app, appSecret, st)
}

// openSecrets loads the app's generated secrets from st with appSecret.
func openSecrets(t *testing.T, path, app, appSecret string, st handler.SecretStore) map[string][]byte {
	t.Helper()
	if st == nil {
		bs, err := bolt.Open(path, bolt.Options{NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		defer bs.Close()
		st = bs
	}
	s, err := handler.NewSealer(appSecret)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, name := range handler.GeneratedSecretNames {
		v, _, err := s.GeneratedSecret(context.Background(), st, app, name, handler.GeneratedSecretSize, nil)
		if err != nil {
			t.Fatalf("loading %s with the app secret: %v", name, err)
		}
		out[name] = v
	}
	return out
}

func TestRotateSecretCommand(t *testing.T) {
	const app = "wxrotatecli"
	dir := t.TempDir()
	path := filepath.Join(dir, "s.db")
	before := generateSecrets(t, path, app, "old-app-secret")
	t.Setenv("ROTATE_OLD", "old-app-secret")
	t.Setenv("ROTATE_NEW", "new-app-secret")
	newFile := filepath.Join(dir, "new")
	if err := os.WriteFile(newFile, []byte("new-app-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	base := []string{"--db", path, "--app", app}
	bad := []struct {
		args []string
		want string
	}{
		{[]string{"--new-secret-env", "ROTATE_NEW"}, "--old-secret-env or --old-secret-file is required"},
		{[]string{"--old-secret-env", "ROTATE_OLD"}, "--new-secret-env or --new-secret-file is required"},
		{[]string{"--old-secret-env", "ROTATE_OLD", "--discard", "--new-secret-env", "ROTATE_NEW"}, "not both"},
		{[]string{"--old-secret-env", "ROTATE_UNSET", "--new-secret-env", "ROTATE_NEW"}, "old app secret is empty"},
		{[]string{"--old-secret-env", "ROTATE_OLD", "--new-secret-env", "ROTATE_NEW", "--new-secret-file", newFile}, "not both"},
		{[]string{"--old-secret-env", "ROTATE_OLD", "--new-secret-file", filepath.Join(dir, "nofile")}, "reading the new app secret"},
		// The old secret given is not the one the keys are sealed with.
		{[]string{"--old-secret-env", "ROTATE_NEW", "--new-secret-env", "ROTATE_THIRD"}, "cannot be opened with the old app_secret given"},
	}
	t.Setenv("ROTATE_THIRD", "third-app-secret")
	for _, b := range bad {
		if _, _, err := runCmd(t, newRotateSecretCommand, "", append(base, b.args...)...); err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("%v: err = %v, want %q", b.args, err, b.want)
		}
	}
	if _, _, err := runCmd(t, newRotateSecretCommand, "", "--db", filepath.Join(dir, "missing.db"), "--app", app, "--old-secret-env", "ROTATE_OLD", "--new-secret-env", "ROTATE_NEW"); err == nil || !strings.Contains(err.Error(), "missing.db") {
		t.Errorf("missing db: err = %v", err)
	}
	// An app id the database has no secrets of (a typo, or the wrong
	// database) is an error, not a rotation that did nothing: the operator
	// would then give every instance the new app_secret, and they would
	// refuse to start.
	if _, _, err := runCmd(t, newRotateSecretCommand, "", "--db", path, "--app", app+"x", "--old-secret-env", "ROTATE_OLD", "--new-secret-env", "ROTATE_NEW"); err == nil || !strings.Contains(err.Error(), "no generated secrets of app "+app+"x") {
		t.Errorf("unknown app: err = %v", err)
	}
	// Nothing above wrote anything: the old app secret still opens them.
	if got := openSecrets(t, path, app, "old-app-secret", nil); !bytes.Equal(got[handler.SecretSigningKey], before[handler.SecretSigningKey]) {
		t.Fatal("a refused rotation changed the keys")
	}

	// The rotation: the same values, sealed with the new app secret.
	_, errOut, err := runCmd(t, newRotateSecretCommand, "", "--db", path, "--app", app, "--old-secret-env", "ROTATE_OLD", "--new-secret-file", newFile)
	if err != nil {
		t.Fatalf("rotate-secret: %v", err)
	}
	if !strings.Contains(errOut, "signing_key_ed25519: resealed") || !strings.Contains(errOut, "refresh_derivation_v1: resealed") {
		t.Errorf("output: %q", errOut)
	}
	if strings.Contains(errOut, "app-secret") {
		t.Errorf("output reveals a secret: %q", errOut)
	}
	after := openSecrets(t, path, app, "new-app-secret", nil)
	for name, v := range before {
		if !bytes.Equal(after[name], v) {
			t.Errorf("%s changed in the rotation", name)
		}
	}

	// Again: nothing to do.
	if _, errOut, err = runCmd(t, newRotateSecretCommand, "", "--db", path, "--app", app, "--old-secret-env", "ROTATE_OLD", "--new-secret-env", "ROTATE_NEW"); err != nil || strings.Count(errOut, "already current") != len(handler.GeneratedSecretNames) {
		t.Errorf("second run: %v, %q", err, errOut)
	}

	// --discard: new values under another app secret.
	if _, errOut, err = runCmd(t, newRotateSecretCommand, "", "--db", path, "--app", app, "--discard", "--new-secret-env", "ROTATE_THIRD"); err != nil || !strings.Contains(errOut, "replaced") {
		t.Fatalf("--discard: %v, %q", err, errOut)
	}
	third := openSecrets(t, path, app, "third-app-secret", nil)
	for name, v := range before {
		if bytes.Equal(third[name], v) {
			t.Errorf("%s kept by --discard", name)
		}
	}
}
