package wechat

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"unicode/utf8"
)

// Suggestions of msg_sec_check: what WeChat advises doing with a text.
const (
	SuggestPass   = "pass"   // the text may be published
	SuggestReview = "review" // a human should look at it first
	SuggestRisky  = "risky"  // the text must not be published
)

// Scenes of msg_sec_check; a nickname is a profile (scene 1).
const SceneProfile = 1

// maxSecCheckBytes bounds the text sent to msg_sec_check (WeChat takes
// up to 2500 characters).
const maxSecCheckBytes = 2500 * utf8.UTFMax

// SecCheckResult is WeChat's verdict on a text.
type SecCheckResult struct {
	// Suggest is "pass", "review" or "risky".
	Suggest string
	// Label is WeChat's category of the content (100 normal, 20001
	// politics, 20002 pornography, ...).
	Label int
	// TraceID identifies the check at WeChat.
	TraceID string
}

// secCheckRequest is the body of msg_sec_check (version 2).
type secCheckRequest struct {
	Content string `json:"content"`
	Version int    `json:"version"`
	Scene   int    `json:"scene"`
	OpenID  string `json:"openid"`
}

// secCheckResponse is WeChat's answer to msg_sec_check.
type secCheckResponse struct {
	apiStatus
	TraceID string `json:"trace_id"`
	Result  *struct {
		Suggest string `json:"suggest"`
		Label   int    `json:"label"`
	} `json:"result"`
}

// MsgSecCheck asks WeChat's /wxa/msg_sec_check (version 2, scene 1:
// profile) whether content, written by the user openid (who must have
// used the mini-program within the last two hours), may be shown. It uses
// AccessToken and, when WeChat rejects the token (40001, 40014, 42001),
// forces one refresh and retries once. An answer without a known
// result.suggest is ErrBadResponse; other errors are as for Code2Session.
// The caller decides what a suggestion other than pass means.
func (c *Client) MsgSecCheck(ctx context.Context, openid, content string) (*SecCheckResult, error) {
	const api = "msg_sec_check"
	if openid == "" {
		return nil, fmt.Errorf("wechat %s: empty openid: %w", api, ErrAPI)
	}
	if len(content) > maxSecCheckBytes {
		return nil, fmt.Errorf("wechat %s: content longer than %d bytes: %w", api, maxSecCheckBytes, ErrAPI)
	}
	var out *secCheckResponse
	err := c.withAccessToken(ctx, func(tok string) error {
		var err error
		out, err = call[secCheckResponse](ctx, c, &request{
			api:     api,
			method:  http.MethodPost,
			path:    "/wxa/msg_sec_check",
			query:   url.Values{"access_token": {tok}},
			body:    secCheckRequest{Content: content, Version: 2, Scene: SceneProfile, OpenID: openid},
			secrets: []string{tok},
		})
		return err
	})
	if err != nil {
		return nil, err
	}
	r := out.Result
	if r == nil || (r.Suggest != SuggestPass && r.Suggest != SuggestReview && r.Suggest != SuggestRisky) {
		return nil, c.fail(api, &httpError{api: api, kind: ErrBadResponse, detail: "answer has no known result.suggest"})
	}
	return &SecCheckResult{Suggest: r.Suggest, Label: r.Label, TraceID: out.TraceID}, nil
}
