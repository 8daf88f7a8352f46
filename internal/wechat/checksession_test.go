package wechat

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

func TestSessionSignatureWeChatExample(t *testing.T) {
	// From WeChat's "user login-state signature" documentation.
	key, _ := base64.StdEncoding.DecodeString("o0q0otL8aEzpcZL/FT9WsQ==")
	tests := []struct {
		payload string
		want    string
	}{
		{`{"foo":"bar"}`, "654571f79995b2ce1e149e53c0a33dc39c0a74090db514261454e8dbe432aa0b"},
	}
	for _, tt := range tests {
		if got := SessionSignature(key, []byte(tt.payload)); got != tt.want {
			t.Errorf("SessionSignature(%s) = %s, want %s", tt.payload, got, tt.want)
		}
	}
}

// checkSessionServer verifies the signature the way WeChat does, against
// the session key it issued (as a base64 string).
func checkSessionServer(t *testing.T, issuedKeyB64 string, rejectTok string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if r.Method != http.MethodGet || q.Get("sig_method") != "hmac_sha256" || q.Get("openid") != "oUser1" {
			t.Errorf("checksession request: %s %v", r.Method, q)
		}
		if q.Get("access_token") == rejectTok {
			writeJSON(t, w, map[string]any{"errcode": 40001, "errmsg": "invalid credential"})
			return
		}
		mac := hmac.New(sha256.New, []byte(issuedKeyB64))
		want := mac.Sum(nil)
		got, err := hex.DecodeString(q.Get("signature"))
		if err != nil || !hmac.Equal(got, want) {
			writeJSON(t, w, map[string]any{"errcode": 87009, "errmsg": "invalid signature"})
			return
		}
		writeJSON(t, w, map[string]any{"errcode": 0, "errmsg": "ok"})
	}
}

func TestCheckSession(t *testing.T) {
	issued, _ := base64.StdEncoding.DecodeString(testSessionKeyB64)
	other, _ := base64.StdEncoding.DecodeString("o0q0otL8aEzpcZL/FT9WsQ==")
	tests := []struct {
		name      string
		openID    string
		key       []byte
		rejectTok string
		want      error
		tokens    string // force_refresh per stable_token request
		requests  int    // checksession requests
	}{
		{name: "current key", openID: "oUser1", key: issued, tokens: "[false]", requests: 1},
		{name: "stale key", openID: "oUser1", key: other, want: ErrSessionKeyInvalid, tokens: "[false]", requests: 1},
		{name: "token rejected once", openID: "oUser1", key: issued, rejectTok: "tok-1", tokens: "[false false true]", requests: 2},
		{name: "short key", openID: "oUser1", key: issued[:15], want: ErrSessionKeyInvalid, tokens: "[]"},
		{name: "nil key", openID: "oUser1", want: ErrSessionKeyInvalid, tokens: "[]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := &tokenServer{t: t, expiresIn: 7200, stable: true}
			srv, hits := newTestServer(t, map[string]http.HandlerFunc{
				"/cgi-bin/stable_token": ts.handle,
				"/wxa/checksession":     checkSessionServer(t, testSessionKeyB64, tt.rejectTok),
			})
			c := newTestClient(t, srv.URL, nil)
			err := c.CheckSession(context.Background(), tt.openID, tt.key)
			if tt.want == nil && err != nil || tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("CheckSession err = %v, want %v", err, tt.want)
			}
			if err != nil && strings.Contains(err.Error(), base64.StdEncoding.EncodeToString(tt.key)) && len(tt.key) > 0 {
				t.Errorf("error %q quotes the session key", err)
			}
			if got := fmt.Sprint(ts.requests()); got != tt.tokens {
				t.Errorf("stable_token requests = %s, want %s", got, tt.tokens)
			}
			if got := hits.count("/wxa/checksession"); got != tt.requests {
				t.Errorf("checksession requests = %d, want %d", got, tt.requests)
			}
		})
	}
}

func TestCheckSessionEmptyOpenID(t *testing.T) {
	srv, hits := newTestServer(t, nil)
	c := newTestClient(t, srv.URL, nil)
	if err := c.CheckSession(context.Background(), "", make([]byte, 16)); err == nil {
		t.Fatal("CheckSession with empty openid succeeded")
	}
	if n := hits.count("/cgi-bin/stable_token"); n != 0 {
		t.Errorf("requests = %d, want 0", n)
	}
}
