package wechat

import (
	"context"
	"fmt"
	"net/http"
	"time"
)

// tokenSafetyMargin is how long before expires_in a cached access token
// stops being served; for lifetimes under twice this, half the lifetime.
const tokenSafetyMargin = 5 * time.Minute

// stableTokenRequest is the body of /cgi-bin/stable_token.
type stableTokenRequest struct {
	GrantType    string `json:"grant_type"`
	AppID        string `json:"appid"`
	Secret       string `json:"secret"`
	ForceRefresh bool   `json:"force_refresh"`
}

// stableTokenResponse is WeChat's answer to stable_token.
type stableTokenResponse struct {
	apiStatus
	AccessToken string `json:"access_token"`
	ExpiresIn   int64  `json:"expires_in"`
}

// tokenFetch is one stable_token request shared by every caller that
// needs a token while it is in flight.
type tokenFetch struct {
	force bool
	done  chan struct{} // closed when tok/err are set
	tok   string
	err   error
}

// AccessToken returns the app's access token from /cgi-bin/stable_token.
// The token is cached in memory until its expires_in minus a safety margin
// (5 minutes, or half the lifetime when that is shorter). Concurrent
// callers without a valid cached token share one fetch, which is not
// cancelled when one of them gives up; failures are not cached.
func (c *Client) AccessToken(ctx context.Context) (string, error) {
	return c.accessToken(ctx, "")
}

// refreshAccessToken returns a token other than rejected, which WeChat has
// just refused (errcode 40001/40014/42001). Compare-and-refresh: only when
// the cache still holds rejected is a fetch started; callers that arrive
// while it runs join it, and callers that arrive after it get its result
// from the cache. The fetch is first a normal one: when another process of
// the same app (another Caddy instance) forced a new token, ours became
// invalid, and the normal mode hands out that new token without
// invalidating it in turn. Only when the normal mode gives back the very
// token WeChat refused is a force_refresh fetch made.
func (c *Client) refreshAccessToken(ctx context.Context, rejected string) (string, error) {
	return c.accessToken(ctx, rejected)
}

// accessToken implements AccessToken and refreshAccessToken; rejected is
// "" for a plain lookup.
func (c *Client) accessToken(ctx context.Context, rejected string) (string, error) {
	force := false
	for {
		c.tokMu.Lock()
		if rejected != "" && c.tok == rejected {
			c.tok, c.tokExp = "", time.Time{}
			c.tokRejected = rejected
		}
		if c.tok != "" && c.now().Before(c.tokExp) {
			tok := c.tok
			c.tokMu.Unlock()
			return tok, nil
		}
		f := c.tokFetch
		if f == nil {
			// A token a normal fetch handed back after WeChat rejected
			// it needs no second normal fetch: force straight away.
			force = force || (rejected != "" && rejected == c.tokStale)
			f = &tokenFetch{force: force, done: make(chan struct{})}
			c.tokFetch = f
			go c.fetchToken(context.WithoutCancel(ctx), f)
		}
		c.tokMu.Unlock()

		if c.testHookTokenWait != nil {
			c.testHookTokenWait()
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("wechat stable_token: %w", ctx.Err())
		case <-f.done:
		}
		if f.err != nil {
			return "", f.err
		}
		if rejected != "" && !f.force && f.tok == rejected {
			// A normal fetch handed back the token WeChat just rejected:
			// go round again and force a new one.
			force = true
			continue
		}
		return f.tok, nil
	}
}

// fetchToken runs f and publishes its result in the cache.
func (c *Client) fetchToken(ctx context.Context, f *tokenFetch) {
	tok, exp, err := c.stableToken(ctx, f.force)
	c.tokMu.Lock()
	if err == nil {
		c.tok, c.tokExp = tok, exp
		if !f.force && tok == c.tokRejected {
			c.tokStale = tok
		}
	}
	c.tokFetch = nil
	f.tok, f.err = tok, err
	c.tokMu.Unlock()
	close(f.done)
}

// stableToken asks WeChat for the access token and computes until when it
// may be served from the cache.
func (c *Client) stableToken(ctx context.Context, force bool) (string, time.Time, error) {
	out, err := call[stableTokenResponse](ctx, c, &request{
		api:    "stable_token",
		method: http.MethodPost,
		path:   "/cgi-bin/stable_token",
		body: stableTokenRequest{
			GrantType:    "client_credential",
			AppID:        c.appID,
			Secret:       c.secret,
			ForceRefresh: force,
		},
	})
	if err != nil {
		return "", time.Time{}, err
	}
	if out.AccessToken == "" {
		return "", time.Time{}, c.fail("stable_token", &httpError{api: "stable_token", kind: ErrBadResponse, detail: "answer has no access_token"})
	}
	if out.ExpiresIn <= 0 || out.ExpiresIn > int64(366*24*time.Hour/time.Second) {
		return "", time.Time{}, c.fail("stable_token", &httpError{api: "stable_token", kind: ErrBadResponse,
			detail: fmt.Sprintf("expires_in %d out of range", out.ExpiresIn)})
	}
	life := time.Duration(out.ExpiresIn) * time.Second
	margin := min(tokenSafetyMargin, life/2)
	return out.AccessToken, c.now().Add(life - margin), nil
}

// withAccessToken runs call with the cached access token and, when WeChat
// rejects that token, once more with a freshly forced one.
func (c *Client) withAccessToken(ctx context.Context, call func(tok string) error) error {
	tok, err := c.AccessToken(ctx)
	if err != nil {
		return err
	}
	err = call(tok)
	if ae, ok := asAPIError(err); !ok || !ae.tokenRejected() {
		return err
	}
	tok, err = c.refreshAccessToken(ctx, tok)
	if err != nil {
		return err
	}
	return call(tok)
}
