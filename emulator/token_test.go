package emulator

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
)

// stableToken fetches an access token with the test credentials.
func stableToken(t *testing.T, e *Emulator, force bool) (string, int) {
	t.Helper()
	body, _ := json.Marshal(stableTokenRequest{
		GrantType: "client_credential", AppID: testAppID, Secret: testSecret, ForceRefresh: force,
	})
	status, m := call(t, e, http.MethodPost, pathStableToken, string(body))
	wantErrcode(t, status, m, 0)
	tok, _ := m["access_token"].(string)
	exp, _ := m["expires_in"].(float64)
	if tok == "" {
		t.Fatalf("stable_token: no access_token in %v", m)
	}
	return tok, int(exp)
}

func TestStableToken(t *testing.T) {
	e, clock := configured(t)

	tok1, exp := stableToken(t, e, false)
	if exp != int(DefaultTokenTTL/time.Second) {
		t.Fatalf("expires_in = %d, want %d", exp, int(DefaultTokenTTL/time.Second))
	}
	clock.Advance(10 * time.Minute)
	tok2, exp := stableToken(t, e, false)
	if tok2 != tok1 {
		t.Fatal("stable_token issued a new token before the old one expired")
	}
	if want := int((DefaultTokenTTL - 10*time.Minute) / time.Second); exp != want {
		t.Fatalf("expires_in = %d, want the remaining %d", exp, want)
	}

	tok3, exp := stableToken(t, e, true)
	if tok3 == tok1 || exp != int(DefaultTokenTTL/time.Second) {
		t.Fatalf("force_refresh gave %q (same=%v), expires_in %d", tok3, tok3 == tok1, exp)
	}
	if _, err := e.state.checkToken(clock.Now(), tok1); !errors.Is(err, errTokenInvalid) {
		t.Fatalf("old token after force_refresh: %v, want errTokenInvalid", err)
	}
	if _, err := e.state.checkToken(clock.Now(), tok3); err != nil {
		t.Fatalf("new token: %v", err)
	}

	// Expiry: the latest token gets 42001, and the next call issues a new one.
	clock.Advance(DefaultTokenTTL)
	if _, err := e.state.checkToken(clock.Now(), tok3); !errors.Is(err, errTokenExpired) {
		t.Fatalf("expired token: %v, want errTokenExpired", err)
	}
	tok4, _ := stableToken(t, e, false)
	if tok4 == tok3 {
		t.Fatal("stable_token returned an expired token")
	}
}

func TestStableTokenBadRequests(t *testing.T) {
	e, _ := configured(t)
	big := `{"grant_type":"client_credential","appid":"` + strings.Repeat("x", maxBodyBytes) + `"}`
	tests := []struct {
		name, body string
		want       int
	}{
		{"not json", "grant_type=client_credential", codeDataFormatError},
		{"empty", "", codeDataFormatError},
		{"trailing data", `{"grant_type":"client_credential"} {}`, codeDataFormatError},
		{"wrong type", `{"grant_type":"client_credential","appid":"` + testAppID + `","secret":"` + testSecret + `","force_refresh":"yes"}`, codeDataFormatError},
		{"too large", big, codeDataFormatError},
		{"wrong grant", `{"grant_type":"authorization_code","appid":"` + testAppID + `","secret":"` + testSecret + `"}`, codeInvalidGrantType},
		{"unknown fields ignored", `{"grant_type":"client_credential","appid":"` + testAppID + `","secret":"` + testSecret + `","extra":1}`, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, m := call(t, e, http.MethodPost, pathStableToken, tt.body)
			wantErrcode(t, status, m, tt.want)
		})
	}
}
