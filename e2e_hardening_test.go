package wechatauth_test

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
)

// TestE2EOneCodeOneSession sends one wx.login code in several concurrent
// logins: every answer is the same, with one session behind it.
func TestE2EOneCodeOneSession(t *testing.T) {
	e := newE2E(t, "")
	code := e.mint("o_e2e_dup")
	body, _ := json.Marshal(map[string]string{"code": code})
	// WeChat takes 400 ms over the exchange, so every request below
	// arrives while the first one's login runs.
	e.fault(map[string]any{"path": "/sns/jscode2session", "delay": "400ms", "times": 1})
	const n = 8
	type reply struct {
		status int
		raw    string
		err    error
	}
	replies := make([]reply, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			res, err := e.client.Post(siteURL+"/wx/login", "application/json", bytes.NewReader(body))
			if err != nil {
				replies[i].err = err
				return
			}
			defer res.Body.Close()
			raw, err := io.ReadAll(res.Body)
			replies[i] = reply{res.StatusCode, string(raw), err}
		}()
	}
	close(start)
	wg.Wait()

	sids := map[string]bool{}
	for i, r := range replies {
		if r.err != nil || r.status != 200 {
			t.Fatalf("login %d: %d %s %v", i, r.status, r.raw, r.err)
		}
		if r.raw != replies[0].raw {
			t.Fatalf("login %d got another answer:\n%s\n%s", i, r.raw, replies[0].raw)
		}
		var a struct {
			Token string `json:"token"`
		}
		if err := json.Unmarshal([]byte(r.raw), &a); err != nil {
			t.Fatal(err)
		}
		var claims struct {
			SID string `json:"sid"`
		}
		if err := json.Unmarshal([]byte(tokenPayload(t, a.Token)), &claims); err != nil || claims.SID == "" {
			t.Fatalf("token claims: %v", err)
		}
		sids[claims.SID] = true
	}
	if len(sids) != 1 {
		t.Fatalf("%d concurrent logins with one code made %d sessions", n, len(sids))
	}
	noSecrets(t, answer{raw: replies[0].raw}, code)
	// The login is over: the code is spent, nothing is kept to replay.
	expect(t, e.postJSON(siteURL+"/wx/login", map[string]string{"code": code}, nil), 400, "invalid_code")
}

// TestE2ERefreshGraceStrict: with refresh_grace 0 a retried refresh is
// reuse, and revokes the session.
func TestE2ERefreshGraceStrict(t *testing.T) {
	e := newE2E(t, "refresh_grace 0")
	body := e.login("o_e2e_strict")
	rt := body["refresh_token"].(string)
	first := e.postJSON(siteURL+"/wx/refresh", map[string]string{"refresh_token": rt}, nil)
	expect(t, first, 200, "")
	expect(t, e.postJSON(siteURL+"/wx/refresh", map[string]string{"refresh_token": rt}, nil), 401, "invalid_grant")
	// The session is gone: the pair of the first refresh is refused too.
	expect(t, e.do("GET", siteURL+"/x", "", "", bearer(first.body["token"].(string))), 401, "invalid_token")
	expect(t, e.postJSON(siteURL+"/wx/refresh", map[string]any{"refresh_token": first.body["refresh_token"]}, nil), 401, "invalid_grant")

	// With the default window the same retry is answered with the same pair.
	e.load("")
	body = e.login("o_e2e_strict")
	rt = body["refresh_token"].(string)
	first = e.postJSON(siteURL+"/wx/refresh", map[string]string{"refresh_token": rt}, nil)
	expect(t, first, 200, "")
	again := e.postJSON(siteURL+"/wx/refresh", map[string]string{"refresh_token": rt}, nil)
	expect(t, again, 200, "")
	if again.body["refresh_token"] != first.body["refresh_token"] {
		t.Fatal("retry inside the default window got another pair")
	}
}

// TestE2ELoginRateLimitSurvivesReload: a reload of the same limit keeps
// the clients' buckets.
func TestE2ELoginRateLimitSurvivesReload(t *testing.T) {
	e := newE2E(t, "login_rate_limit 2 1m")
	e.login("o_e2e_limit_reload")
	e.login("o_e2e_limit_reload")
	e.load("login_rate_limit 2 1m\n\t\tleeway 10s") // another config, same limit
	expect(t, e.postJSON(siteURL+"/wx/login", map[string]string{"code": e.mint("o_e2e_limit_reload")}, nil), 429, "rate_limited")
}

// secretConfig is the end-to-end Caddyfile with a generated signing key
// (no key line) and appSecret at both WeChat and the handler.
func secretConfig(db, appSecret string) string {
	return strings.ReplaceAll(e2eConfigKeys(db, "", ""), e2eSecret, appSecret)
}

// jwksEd25519 returns the one Ed25519 public key of the JWK Set.
func jwksEd25519(t *testing.T, e *e2e) ed25519.PublicKey {
	t.Helper()
	a := e.do("GET", siteURL+"/.well-known/jwks.json", "", "", nil)
	expect(t, a, 200, "")
	keys, _ := a.body["keys"].([]any)
	if len(keys) != 1 {
		t.Fatalf("jwks: %s", a.raw)
	}
	x, err := base64.RawURLEncoding.DecodeString(keys[0].(map[string]any)["x"].(string))
	if err != nil || len(x) != ed25519.PublicKeySize {
		t.Fatalf("jwks x: %v", err)
	}
	return ed25519.PublicKey(x)
}

// dbHoldsSeedOf reports whether any 32 bytes of the file at path are the
// Ed25519 seed of pub.
func dbHoldsSeedOf(t *testing.T, path string, pub ed25519.PublicKey) bool {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+ed25519.SeedSize <= len(data); i++ {
		w := data[i : i+ed25519.SeedSize]
		if bytes.Count(w, w[:1]) == len(w) { // a run of one byte (free pages): not a key
			continue
		}
		if ed25519.NewKeyFromSeed(w).Public().(ed25519.PublicKey).Equal(pub) {
			return true
		}
	}
	return false
}
