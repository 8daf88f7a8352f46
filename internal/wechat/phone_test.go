package wechat

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
)

const testPhoneCode = "e31968a7f94cc5ee25fafc2aef2773f0bb8c3937b22520eb8ee345274d00c144"

// phoneAnswer is WeChat's documented success shape.
func phoneAnswer(appid string, countryCode any) map[string]any {
	return map[string]any{
		"errcode": 0,
		"errmsg":  "ok",
		"phone_info": map[string]any{
			"phoneNumber":     "+1 2025550123",
			"purePhoneNumber": "2025550123",
			"countryCode":     countryCode,
			"watermark":       map[string]any{"timestamp": 1637744274, "appid": appid},
		},
	}
}

func TestPhoneNumber(t *testing.T) {
	tests := []struct {
		name    string
		answer  any
		want    error
		country string
	}{
		{name: "ok", answer: phoneAnswer(testAppID, "1"), country: "1"},
		{name: "numeric country code", answer: phoneAnswer(testAppID, 86), country: "86"},
		{name: "watermark of another app", answer: phoneAnswer("wxOTHERAPP", "1"), want: ErrWatermark},
		{name: "no watermark", answer: map[string]any{"errcode": 0, "phone_info": map[string]any{"phoneNumber": "1"}}, want: ErrWatermark},
		{name: "no phone_info", answer: map[string]any{"errcode": 0, "errmsg": "ok"}, want: ErrBadResponse},
		{name: "invalid code", answer: map[string]any{"errcode": 40029, "errmsg": "invalid code"}, want: ErrInvalidCode},
		{name: "rate limited", answer: map[string]any{"errcode": 45011, "errmsg": "api minute-quota reach limit"}, want: ErrRateLimited},
		{name: "other errcode", answer: map[string]any{"errcode": 40013, "errmsg": "invalid appid"}, want: ErrAPI},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := &tokenServer{t: t, expiresIn: 7200, stable: true}
			srv, hits := newTestServer(t, map[string]http.HandlerFunc{
				"/cgi-bin/stable_token": ts.handle,
				"/wxa/business/getuserphonenumber": func(w http.ResponseWriter, r *http.Request) {
					var body map[string]string
					if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body["code"] != testPhoneCode || len(body) != 1 {
						t.Errorf("body = %v, %v", body, err)
					}
					if r.Method != http.MethodPost || r.URL.Query().Get("access_token") != "tok-1" {
						t.Errorf("request %s %s", r.Method, r.URL.Path)
					}
					writeJSON(t, w, tt.answer)
				},
			})
			c := newTestClient(t, srv.URL, nil)
			pi, err := c.PhoneNumber(context.Background(), testPhoneCode)
			if tt.want != nil {
				if pi != nil || !errors.Is(err, tt.want) {
					t.Fatalf("PhoneNumber = %+v, %v; want nil, %v", pi, err, tt.want)
				}
				if strings.Contains(err.Error(), testPhoneCode) || strings.Contains(err.Error(), "tok-1") {
					t.Errorf("error %q quotes the code or token", err)
				}
			} else {
				if err != nil {
					t.Fatalf("PhoneNumber: %v", err)
				}
				want := PhoneInfo{PhoneNumber: "+1 2025550123", PurePhoneNumber: "2025550123", CountryCode: tt.country, WatermarkAppID: testAppID, WatermarkTimestamp: 1637744274}
				if *pi != want {
					t.Errorf("PhoneInfo = %+v, want %+v", *pi, want)
				}
			}
			if n := hits.count("/wxa/business/getuserphonenumber"); n != 1 {
				t.Errorf("phone requests = %d, want 1", n)
			}
		})
	}
}

func TestPhoneNumberEmptyCode(t *testing.T) {
	srv, hits := newTestServer(t, nil)
	c := newTestClient(t, srv.URL, nil)
	for _, code := range []string{"", strings.Repeat("x", maxCodeBytes+1)} {
		if _, err := c.PhoneNumber(context.Background(), code); !errors.Is(err, ErrInvalidCode) {
			t.Errorf("PhoneNumber(len %d) err = %v, want ErrInvalidCode", len(code), err)
		}
	}
	if n := hits.count("/cgi-bin/stable_token") + hits.count("/wxa/business/getuserphonenumber"); n != 0 {
		t.Errorf("requests = %d, want 0", n)
	}
}

// rejectingPhone answers errcode for tokens in bad and success otherwise.
func rejectingPhone(t *testing.T, errcode int, bad func(tok string) bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if bad(r.URL.Query().Get("access_token")) {
			writeJSON(t, w, map[string]any{"errcode": errcode, "errmsg": "invalid credential, access_token is invalid or not latest"})
			return
		}
		writeJSON(t, w, phoneAnswer(testAppID, "86"))
	}
}

func TestPhoneNumberRefreshesRejectedToken(t *testing.T) {
	for _, code := range []int{40001, 40014, 42001} {
		t.Run(fmt.Sprint(code), func(t *testing.T) {
			ts := &tokenServer{t: t, expiresIn: 7200, stable: true}
			srv, hits := newTestServer(t, map[string]http.HandlerFunc{
				"/cgi-bin/stable_token":            ts.handle,
				"/wxa/business/getuserphonenumber": rejectingPhone(t, code, func(tok string) bool { return tok == "tok-1" }),
			})
			c := newTestClient(t, srv.URL, nil)
			pi, err := c.PhoneNumber(context.Background(), testPhoneCode)
			if err != nil || pi.PurePhoneNumber != "2025550123" {
				t.Fatalf("PhoneNumber = %+v, %v", pi, err)
			}
			// The rejected token is asked for again in normal mode (another
			// instance may have replaced it), which hands back the same
			// token: then one forced refresh.
			if got := fmt.Sprint(ts.requests()); got != "[false false true]" {
				t.Errorf("stable_token force_refresh per request = %s, want [false false true]", got)
			}
			if n := hits.count("/wxa/business/getuserphonenumber"); n != 2 {
				t.Errorf("phone requests = %d, want 2", n)
			}
			// The refreshed token is cached for the next call.
			if _, err := c.PhoneNumber(context.Background(), testPhoneCode); err != nil {
				t.Fatalf("second PhoneNumber: %v", err)
			}
			if n := len(ts.requests()); n != 3 {
				t.Errorf("stable_token requests = %d, want 3", n)
			}
		})
	}
}

func TestPhoneNumberRejectedTwiceGivesUp(t *testing.T) {
	ts := &tokenServer{t: t, expiresIn: 7200, stable: true}
	srv, hits := newTestServer(t, map[string]http.HandlerFunc{
		"/cgi-bin/stable_token":            ts.handle,
		"/wxa/business/getuserphonenumber": rejectingPhone(t, 40001, func(string) bool { return true }),
	})
	c := newTestClient(t, srv.URL, nil)
	_, err := c.PhoneNumber(context.Background(), testPhoneCode)
	var ae *APIError
	if !errors.As(err, &ae) || ae.Code != 40001 || !errors.Is(err, ErrAPI) {
		t.Fatalf("err = %v, want errcode 40001", err)
	}
	if n := hits.count("/wxa/business/getuserphonenumber"); n != 2 {
		t.Errorf("phone requests = %d, want 2", n)
	}
	if got := fmt.Sprint(ts.requests()); got != "[false false true]" {
		t.Errorf("stable_token force_refresh per request = %s, want [false false true]", got)
	}
}

func TestPhoneNumberConcurrentRejectionsForceOnce(t *testing.T) {
	const n = 20
	ts := &tokenServer{t: t, expiresIn: 7200, stable: true}
	srv, hits := newTestServer(t, map[string]http.HandlerFunc{
		"/cgi-bin/stable_token":            ts.handle,
		"/wxa/business/getuserphonenumber": rejectingPhone(t, 42001, func(tok string) bool { return tok == "tok-1" }),
	})
	c := newTestClient(t, srv.URL, nil)
	if _, err := c.AccessToken(context.Background()); err != nil {
		t.Fatalf("AccessToken: %v", err)
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = c.PhoneNumber(context.Background(), testPhoneCode)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("caller %d: %v", i, err)
		}
	}
	if got := fmt.Sprint(ts.requests()); got != "[false false true]" {
		t.Errorf("stable_token force_refresh per request = %s, want one normal look-up again, then exactly one forced refresh", got)
	}
	if got := hits.count("/wxa/business/getuserphonenumber"); got < n || got > 2*n {
		t.Errorf("phone requests = %d, want between %d and %d", got, n, 2*n)
	}
}
