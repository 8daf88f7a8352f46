package wechat

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
)

// maxCodeBytes bounds a login or phone code; WeChat's are 32 characters.
const maxCodeBytes = 512

// sessionKeyBytes is the length of a decoded session_key.
const sessionKeyBytes = 16

// Session is the result of a successful code exchange.
type Session struct {
	// OpenID identifies the user within this mini-program.
	OpenID string
	// UnionID identifies the user across the apps of one WeChat Open
	// Platform account; empty when WeChat does not give it.
	UnionID string
	// SessionKey is the decoded session_key (16 bytes). It must never
	// leave the server.
	SessionKey []byte
}

// jscode2sessionResponse is WeChat's answer to jscode2session.
type jscode2sessionResponse struct {
	apiStatus
	OpenID     string `json:"openid"`
	SessionKey string `json:"session_key"`
	UnionID    string `json:"unionid"`
}

// Code2Session exchanges the one-time code from wx.login for the user's
// identity and session key at /sns/jscode2session.
//
// Concurrent calls with the same code share one upstream request. That
// request runs detached from the callers' cancellation (bounded by the
// Timeout), so a caller that gives up does not fail the others; each caller
// returns its own ctx.Err() when its ctx ends first. The request is retried
// once after errcode -1 and never after a timeout or connection error.
//
// Errors match ErrInvalidCode (also for an empty code, refused without a
// request), ErrUserBlocked, ErrRateLimited, ErrUnavailable, ErrBadResponse
// (including a missing openid or a session_key that is not 16 bytes of
// base64) or ErrAPI.
func (c *Client) Code2Session(ctx context.Context, code string) (*Session, error) {
	if code == "" {
		return nil, fmt.Errorf("wechat jscode2session: empty code: %w", ErrInvalidCode)
	}
	if len(code) > maxCodeBytes {
		return nil, fmt.Errorf("wechat jscode2session: code longer than %d bytes: %w", maxCodeBytes, ErrInvalidCode)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("wechat jscode2session: %w", err)
	}
	// Key by a hash so the code itself is not kept in the group's map.
	sum := sha256.Sum256([]byte(code))
	key := string(sum[:])
	detached := context.WithoutCancel(ctx)
	ch := c.codes.DoChan(key, func() (any, error) {
		return c.code2Session(detached, code)
	})
	if c.testHookCodeWait != nil {
		c.testHookCodeWait()
	}
	select {
	case <-ctx.Done():
		return nil, fmt.Errorf("wechat jscode2session: %w", ctx.Err())
	case res := <-ch:
		if res.Err != nil {
			return nil, res.Err
		}
		s := res.Val.(*Session)
		// Callers sharing the result must not share its key's backing array.
		return &Session{OpenID: s.OpenID, UnionID: s.UnionID, SessionKey: append([]byte(nil), s.SessionKey...)}, nil
	}
}

// code2Session performs the exchange for Code2Session.
func (c *Client) code2Session(ctx context.Context, code string) (*Session, error) {
	out, err := call[jscode2sessionResponse](ctx, c, &request{
		api:    "jscode2session",
		method: http.MethodGet,
		path:   "/sns/jscode2session",
		query: url.Values{
			"appid":      {c.appID},
			"secret":     {c.secret},
			"js_code":    {code},
			"grant_type": {"authorization_code"},
		},
		secrets: []string{code},
	})
	if err != nil {
		return nil, err
	}
	if out.OpenID == "" {
		return nil, c.fail("jscode2session", &httpError{api: "jscode2session", kind: ErrBadResponse, detail: "answer has no openid"})
	}
	key, err := decodeSessionKey(out.SessionKey)
	if err != nil {
		return nil, c.fail("jscode2session", &httpError{api: "jscode2session", kind: ErrBadResponse, detail: err.Error()})
	}
	return &Session{OpenID: out.OpenID, UnionID: out.UnionID, SessionKey: key}, nil
}

// decodeSessionKey decodes a session_key as WeChat gives it: standard
// base64 of 16 bytes. Its error never quotes the key.
func decodeSessionKey(s string) ([]byte, error) {
	if s == "" {
		return nil, errors.New("answer has no session_key")
	}
	key, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, errors.New("session_key is not valid base64")
	}
	if len(key) != sessionKeyBytes {
		return nil, fmt.Errorf("session_key is %d bytes, want %d", len(key), sessionKeyBytes)
	}
	return key, nil
}
