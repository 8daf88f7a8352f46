package wechat

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

func secCheckAnswer(suggest string, label int) map[string]any {
	return map[string]any{
		"errcode":  0,
		"errmsg":   "ok",
		"trace_id": "60ae120f-371d5872-7941a05b",
		"result":   map[string]any{"suggest": suggest, "label": label},
		"detail":   []any{map[string]any{"strategy": "content_model", "errcode": 0, "suggest": suggest, "label": label, "prob": 90}},
	}
}

func TestMsgSecCheck(t *testing.T) {
	tests := []struct {
		name    string
		answer  any
		status  int
		want    error
		suggest string
	}{
		{name: "pass", answer: secCheckAnswer("pass", 100), suggest: "pass"},
		{name: "risky", answer: secCheckAnswer("risky", 20001), suggest: "risky"},
		{name: "review", answer: secCheckAnswer("review", 21000), suggest: "review"},
		{name: "no result", answer: map[string]any{"errcode": 0, "errmsg": "ok"}, want: ErrBadResponse},
		{name: "unknown suggestion", answer: secCheckAnswer("maybe", 100), want: ErrBadResponse},
		{name: "system busy", answer: map[string]any{"errcode": -1, "errmsg": "system error"}, want: ErrUnavailable},
		{name: "server error", status: http.StatusBadGateway, answer: map[string]any{}, want: ErrUnavailable},
		{name: "openid of no recent visitor", answer: map[string]any{"errcode": 61010, "errmsg": "user is not visit recently"}, want: ErrAPI},
		{name: "rate limited", answer: map[string]any{"errcode": 45011, "errmsg": "api minute-quota reach limit"}, want: ErrRateLimited},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := &tokenServer{t: t, expiresIn: 7200, stable: true}
			srv, hits := newTestServer(t, map[string]http.HandlerFunc{
				"/cgi-bin/stable_token": ts.handle,
				"/wxa/msg_sec_check": func(w http.ResponseWriter, r *http.Request) {
					var body map[string]any
					if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
						t.Errorf("body: %v", err)
					}
					if fmt.Sprint(body) != "map[content:Ann 安 openid:o-user scene:1 version:2]" {
						t.Errorf("body = %v", body)
					}
					if r.Method != http.MethodPost || r.URL.Query().Get("access_token") != "tok-1" {
						t.Errorf("request %s %s", r.Method, r.URL.Path)
					}
					if tt.status != 0 {
						w.WriteHeader(tt.status)
					}
					writeJSON(t, w, tt.answer)
				},
			})
			c := newTestClient(t, srv.URL, nil)
			res, err := c.MsgSecCheck(context.Background(), "o-user", "Ann 安")
			if tt.want != nil {
				if res != nil || !errors.Is(err, tt.want) {
					t.Fatalf("MsgSecCheck = %+v, %v; want nil, %v", res, err, tt.want)
				}
				if strings.Contains(err.Error(), "tok-1") {
					t.Errorf("error %q quotes the access token", err)
				}
			} else if err != nil || res.Suggest != tt.suggest || res.TraceID == "" {
				t.Fatalf("MsgSecCheck = %+v, %v; want suggest %q", res, err, tt.suggest)
			}
			if n := hits.count("/wxa/msg_sec_check"); n < 1 {
				t.Errorf("msg_sec_check requests = %d", n)
			}
		})
	}
}

func TestMsgSecCheckRefreshesRejectedToken(t *testing.T) {
	ts := &tokenServer{t: t, expiresIn: 7200, stable: true}
	srv, hits := newTestServer(t, map[string]http.HandlerFunc{
		"/cgi-bin/stable_token": ts.handle,
		"/wxa/msg_sec_check": func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Query().Get("access_token") == "tok-1" {
				writeJSON(t, w, map[string]any{"errcode": 40001, "errmsg": "invalid credential"})
				return
			}
			writeJSON(t, w, secCheckAnswer("pass", 100))
		},
	})
	c := newTestClient(t, srv.URL, nil)
	res, err := c.MsgSecCheck(context.Background(), "o-user", "Ann")
	if err != nil || res.Suggest != SuggestPass {
		t.Fatalf("MsgSecCheck = %+v, %v", res, err)
	}
	if n := hits.count("/wxa/msg_sec_check"); n != 2 {
		t.Errorf("msg_sec_check requests = %d, want 2 (one refresh, one replay)", n)
	}
	if got := fmt.Sprint(ts.requests()); got != "[false false true]" {
		t.Errorf("stable_token force_refresh per request = %s, want [false false true]", got)
	}
}

func TestMsgSecCheckRefusedLocally(t *testing.T) {
	srv, hits := newTestServer(t, nil)
	c := newTestClient(t, srv.URL, nil)
	if _, err := c.MsgSecCheck(context.Background(), "", "Ann"); err == nil {
		t.Error("empty openid accepted")
	}
	if _, err := c.MsgSecCheck(context.Background(), "o", strings.Repeat("x", maxSecCheckBytes+1)); err == nil {
		t.Error("over-long content accepted")
	}
	if n := hits.count("/cgi-bin/stable_token") + hits.count("/wxa/msg_sec_check"); n != 0 {
		t.Errorf("requests = %d, want 0", n)
	}
}
