package wechatauth_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wxauth/caddy-wechat-auth/internal/handler"
	"github.com/wxauth/caddy-wechat-auth/store/bolt"
)

// TestE2EAppSecretChange starts with one app secret, then with another:
// the start is refused with an error naming the app (the stored keys are
// not replaced); after the keys are resealed under the new app secret
// (what `caddy wechat-auth rotate-secret` does) it starts, tokens issued
// before stay valid, and the database never holds the key in clear.
func TestE2EAppSecretChange(t *testing.T) {
	e := newE2E(t, "")
	e.stop()
	e.db = filepath.Join(t.TempDir(), "secret-change.db")
	e.loadRaw(secretConfig(e.db, "app-secret-A"))
	old := e.login("o_e2e_rotate_secret")
	oldTok := old["token"].(string)
	expect(t, e.do("GET", siteURL+"/x", "", "", bearer(oldTok)), 200, "")
	pubA := jwksEd25519(t, e)
	e.stop()
	if dbHoldsSeedOf(t, e.db, pubA) {
		t.Fatal("the database file holds the generated signing key in clear")
	}

	// Another app secret: refused, and nothing in the database changes.
	// (It differs from the config loaded after the rotation in one respond
	// text: Caddy answers "config is unchanged" to a config identical to
	// the last one it was sent, even a refused one.)
	refused := strings.Replace(secretConfig(e.db, "app-secret-B"), `"not an emulator path"`, `"not an emulator path."`, 1)
	res, err := e.client.Post("http://localhost:2999/load", "text/caddyfile", strings.NewReader(refused))
	if err != nil {
		t.Fatal(err)
	}
	msg, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusBadRequest {
		t.Fatalf("loading a config with another app secret: %d %s", res.StatusCode, msg)
	}
	for _, want := range []string{e2eAppID, "app_secret", "rotate-secret"} {
		if !bytes.Contains(msg, []byte(want)) {
			t.Errorf("the error does not mention %s: %s", want, msg)
		}
	}
	if bytes.Contains(msg, []byte("app-secret-A")) || bytes.Contains(msg, []byte("app-secret-B")) {
		t.Errorf("the error reveals an app secret: %s", msg)
	}
	e.loadRaw(secretConfig(e.db, "app-secret-A"))
	expect(t, e.do("GET", siteURL+"/x", "", "", bearer(oldTok)), 200, "")
	e.stop()

	// The rotation, on the stopped server's file.
	st, err := bolt.Open(e.db, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	from, _ := handler.NewSealer("app-secret-A")
	to, _ := handler.NewSealer("app-secret-B")
	for _, name := range handler.GeneratedSecretNames {
		want := handler.RotateResealed
		if name == handler.SecretWebState {
			want = handler.RotateAbsent // the site has no web block
		}
		if r, err := to.RotateSecret(context.Background(), st, e2eAppID, name, handler.GeneratedSecretSize, from); err != nil || r != want {
			t.Fatalf("rotating %s: %q %v", name, r, err)
		}
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	e.loadRaw(secretConfig(e.db, "app-secret-B"))
	expect(t, e.do("GET", siteURL+"/x", "", "", bearer(oldTok)), 200, "")
	if pubB := jwksEd25519(t, e); !bytes.Equal(pubA, pubB) {
		t.Fatal("the signing key changed in the rotation")
	}
	a := e.postJSON(siteURL+"/wx/refresh", map[string]any{"refresh_token": old["refresh_token"]}, nil)
	expect(t, a, 200, "")
	expect(t, e.do("GET", siteURL+"/x", "", "", bearer(a.body["token"].(string))), 200, "")
	expect(t, e.do("GET", siteURL+"/x", "", "", bearer(e.login("o_e2e_rotate_secret_2")["token"].(string))), 200, "")
	e.stop()
	if dbHoldsSeedOf(t, e.db, pubA) {
		t.Fatal("the database file holds the resealed signing key in clear")
	}
}
