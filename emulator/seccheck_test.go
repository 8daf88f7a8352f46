package emulator

import (
	"encoding/json"
	"net/http"
	"net/url"
	"testing"
)

// secCheckCall asks msg_sec_check about req with token.
func secCheckCall(t *testing.T, e *Emulator, token string, req any) (int, map[string]any) {
	t.Helper()
	target := pathMsgSecCheck
	if token != "" {
		target += "?access_token=" + url.QueryEscape(token)
	}
	body, _ := json.Marshal(req)
	return call(t, e, http.MethodPost, target, string(body))
}

func TestMsgSecCheck(t *testing.T) {
	e, _ := configured(t)
	tok, _ := stableToken(t, e, false)
	code, openid := mintCode(t, e, "")
	exchange(t, e, code)

	for _, tc := range []struct {
		content, suggest string
		label            float64
	}{
		{"小明", "pass", 100},
		{"a risky name", "risky", 20001},
		{"please review", "review", 21000},
	} {
		status, m := secCheckCall(t, e, tok, secCheckRequest{Content: tc.content, Version: 2, Scene: 1, OpenID: openid})
		wantErrcode(t, status, m, 0)
		res, _ := m["result"].(map[string]any)
		if res["suggest"] != tc.suggest || res["label"] != tc.label || m["trace_id"] == "" {
			t.Errorf("%q: answer %v, want suggest %s label %v", tc.content, m, tc.suggest, tc.label)
		}
	}

	for _, tc := range []struct {
		name  string
		token string
		req   secCheckRequest
		want  int
	}{
		{"version 1", tok, secCheckRequest{Content: "x", Version: 1, Scene: 1, OpenID: openid}, codeInvalidArgs},
		{"bad scene", tok, secCheckRequest{Content: "x", Version: 2, Scene: 9, OpenID: openid}, codeInvalidArgs},
		{"empty content", tok, secCheckRequest{Version: 2, Scene: 1, OpenID: openid}, codeInvalidArgs},
		{"no openid", tok, secCheckRequest{Content: "x", Version: 2, Scene: 1}, codeInvalidOpenID},
		{"openid never seen", tok, secCheckRequest{Content: "x", Version: 2, Scene: 1, OpenID: "o-stranger"}, codeUserNotVisited},
		{"no token", "", secCheckRequest{Content: "x", Version: 2, Scene: 1, OpenID: openid}, codeMissingAccessToken},
		{"bad token", "nope", secCheckRequest{Content: "x", Version: 2, Scene: 1, OpenID: openid}, codeInvalidCredential},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, m := secCheckCall(t, e, tc.token, tc.req)
			wantErrcode(t, status, m, tc.want)
		})
	}
	status, m := call(t, e, http.MethodGet, pathMsgSecCheck+"?access_token="+tok, "")
	wantErrcode(t, status, m, codeRequirePOST)

	// Faults apply to it like to every API path.
	queueFault(t, e, `{"path":"/wxa/msg_sec_check","errcode":-1}`)
	status, m = secCheckCall(t, e, tok, secCheckRequest{Content: "x", Version: 2, Scene: 1, OpenID: openid})
	wantErrcode(t, status, m, codeSystemError)
	status, m = secCheckCall(t, e, tok, secCheckRequest{Content: "x", Version: 2, Scene: 1, OpenID: openid})
	wantErrcode(t, status, m, 0)
}
