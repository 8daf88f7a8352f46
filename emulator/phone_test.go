package emulator

import (
	"encoding/json"
	"net/http"
	"net/url"
	"testing"
)

// mintPhoneCode mints a phone code through the helper endpoint.
func mintPhoneCode(t *testing.T, e *Emulator, body string) string {
	t.Helper()
	status, m := call(t, e, http.MethodPost, pathPhoneCode, body)
	if status != http.StatusOK {
		t.Fatalf("minting phone code: %d %v", status, m)
	}
	code, _ := m["code"].(string)
	if code == "" {
		t.Fatalf("minting phone code: %v", m)
	}
	return code
}

// phoneCall redeems code with token.
func phoneCall(t *testing.T, e *Emulator, token, code string) (int, map[string]any) {
	t.Helper()
	target := pathPhoneNumber
	if token != "" {
		target += "?access_token=" + url.QueryEscape(token)
	}
	body, _ := json.Marshal(phoneNumberRequest{Code: code})
	return call(t, e, http.MethodPost, target, string(body))
}

func TestPhoneFlow(t *testing.T) {
	e, clock := configured(t)
	tok, _ := stableToken(t, e, false)

	code := mintPhoneCode(t, e, `{"phone_number":"13800138000"}`)
	status, m := phoneCall(t, e, tok, code)
	wantErrcode(t, status, m, 0)
	if m["errmsg"] != "ok" {
		t.Errorf("errmsg = %v, want ok", m["errmsg"])
	}
	info, _ := m["phone_info"].(map[string]any)
	wm, _ := info["watermark"].(map[string]any)
	if info["phoneNumber"] != "13800138000" || info["purePhoneNumber"] != "13800138000" || info["countryCode"] != "86" {
		t.Fatalf("phone_info = %v", info)
	}
	if wm["appid"] != testAppID || wm["timestamp"] != float64(clock.Now().Unix()) {
		t.Fatalf("watermark = %v", wm)
	}

	status, m = phoneCall(t, e, tok, code)
	wantErrcode(t, status, m, codeCodeUsed)

	tests := []struct {
		name, token, code string
		want              int
	}{
		{"unknown code", tok, "deadbeef", codeInvalidCode},
		{"missing code", tok, "", codeMissingCode},
		{"missing token", "", mintPhoneCode(t, e, `{"phone_number":"13800138001"}`), codeMissingAccessToken},
		{"bad token", "not-a-token", mintPhoneCode(t, e, `{"phone_number":"13800138002"}`), codeInvalidCredential},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, m := phoneCall(t, e, tt.token, tt.code)
			wantErrcode(t, status, m, tt.want)
		})
	}

	t.Run("bad json", func(t *testing.T) {
		status, m := call(t, e, http.MethodPost, pathPhoneNumber+"?access_token="+tok, "{")
		wantErrcode(t, status, m, codeDataFormatError)
	})

	t.Run("foreign number and forged watermark", func(t *testing.T) {
		code := mintPhoneCode(t, e, `{"phone_number":"6505550100","country_code":"1","watermark_appid":"wxforged"}`)
		status, m := phoneCall(t, e, tok, code)
		wantErrcode(t, status, m, 0)
		info := m["phone_info"].(map[string]any)
		if info["phoneNumber"] != "+16505550100" || info["purePhoneNumber"] != "6505550100" || info["countryCode"] != "1" {
			t.Fatalf("phone_info = %v", info)
		}
		if wm := info["watermark"].(map[string]any); wm["appid"] != "wxforged" {
			t.Fatalf("watermark appid = %v, want the forged one", wm["appid"])
		}
	})

	t.Run("code expires", func(t *testing.T) {
		code := mintPhoneCode(t, e, `{"phone_number":"13800138003"}`)
		clock.Advance(DefaultCodeTTL)
		tok, _ := stableToken(t, e, false)
		status, m := phoneCall(t, e, tok, code)
		wantErrcode(t, status, m, codeInvalidCode)
	})

	t.Run("expired token", func(t *testing.T) {
		code := mintPhoneCode(t, e, `{"phone_number":"13800138004"}`)
		tok, _ := stableToken(t, e, true)
		clock.Advance(DefaultTokenTTL)
		status, m := phoneCall(t, e, tok, code)
		wantErrcode(t, status, m, codeTokenExpired)
	})
}

func TestPhoneWatermarkFollowsTokenWhenUnconfigured(t *testing.T) {
	e, _ := newEmulator(t, &Emulator{})
	body := `{"grant_type":"client_credential","appid":"wxdynamic","secret":"s"}`
	_, m := call(t, e, http.MethodPost, pathStableToken, body)
	tok := m["access_token"].(string)
	code := mintPhoneCode(t, e, `{"phone_number":"13800138000"}`)
	status, m := phoneCall(t, e, tok, code)
	wantErrcode(t, status, m, 0)
	if wm := m["phone_info"].(map[string]any)["watermark"].(map[string]any); wm["appid"] != "wxdynamic" {
		t.Fatalf("watermark appid = %v, want the token's appid", wm["appid"])
	}
}

func TestPhoneCodeHelperValidation(t *testing.T) {
	e, _ := configured(t)
	tests := []struct {
		name, body string
		want       int
	}{
		{"ok", `{"phone_number":"13800138000"}`, http.StatusOK},
		{"missing number", `{}`, http.StatusBadRequest},
		{"letters", `{"phone_number":"1380013800a"}`, http.StatusBadRequest},
		{"plus sign", `{"phone_number":"+8613800138000"}`, http.StatusBadRequest},
		{"bad country", `{"phone_number":"13800138000","country_code":"+86"}`, http.StatusBadRequest},
		{"bad watermark appid", `{"phone_number":"13800138000","watermark_appid":"wx bad"}`, http.StatusBadRequest},
		{"unknown field", `{"phone_number":"13800138000","phone":"1"}`, http.StatusBadRequest},
		{"empty body", ``, http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, m := call(t, e, http.MethodPost, pathPhoneCode, tt.body)
			if status != tt.want {
				t.Fatalf("status = %d (%v), want %d", status, m, tt.want)
			}
			if tt.want != http.StatusOK && m["error"] == "" {
				t.Fatalf("helper error without an error member: %v", m)
			}
		})
	}
}
