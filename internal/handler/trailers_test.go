package handler

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestStripTrailers sends identity fields as trailers of a chunked body
// through a real server: after StripTrailers, a later handler's copy of
// the request (as a reverse proxy holds it) reads the body to its end and
// finds only the unrelated trailer.
func TestStripTrailers(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		StripTrailers(r, FoldHeaderPrefix("X-WeChat-"))
		later := r.WithContext(context.Background())
		if _, err := io.Copy(io.Discard, later.Body); err != nil {
			t.Error(err)
		}
		_ = json.NewEncoder(w).Encode(later.Trailer)
	}))
	defer srv.Close()
	{
		req, err := http.NewRequest(http.MethodPost, srv.URL, io.MultiReader(strings.NewReader("body")))
		if err != nil {
			t.Fatal(err)
		}
		req.ContentLength = -1
		req.Trailer = http.Header{
			"X-Wechat-User-Id":  {"999"},
			"X_Wechat_Platform": {"alipay"},
			"X-Other":           {"kept"},
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var got http.Header
		err = json.NewDecoder(res.Body).Decode(&got)
		res.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		for k := range got {
			if hasFoldedPrefix(k, "x-wechat-") {
				t.Errorf("identity trailer %s survived: %v", k, got)
			}
		}
		if got.Get("X-Other") != "kept" {
			t.Errorf("the unrelated trailer is gone: %v", got)
		}
	}
}
