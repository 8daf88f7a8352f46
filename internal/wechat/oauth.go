package wechat

import (
	"context"
	"crypto/sha256"
	"fmt"
	"net/http"
	"net/url"
)

// OAuth scopes of WeChat's web authorization.
const (
	// ScopeBase: Official Account OAuth inside WeChat, silent; openid only.
	ScopeBase = "snsapi_base"
	// ScopeUserInfo: Official Account OAuth inside WeChat, asking the
	// user; userinfo gives nickname, avatar and unionid.
	ScopeUserInfo = "snsapi_userinfo"
	// ScopeLogin: Open Platform website QR login outside WeChat.
	ScopeLogin = "snsapi_login"
)

// OAuthToken is the result of a web OAuth code exchange. AccessToken is
// the user's web access token: it may only be used to call UserInfo and
// must never leave the server.
type OAuthToken struct {
	AccessToken string
	OpenID      string
	// UnionID is empty unless WeChat gives it (snsapi_login, and
	// snsapi_userinfo for apps bound to an Open Platform account).
	UnionID string
	Scope   string
	// SnapshotUser: WeChat opened the page in "snapshot" mode (a page
	// shared to Moments, viewed without authorizing); the openid is not
	// the user's.
	SnapshotUser bool
}

// UserInfo is what /sns/userinfo gives.
type UserInfo struct {
	OpenID     string
	UnionID    string
	Nickname   string
	HeadImgURL string
	Gender     int // WeChat's "sex": 0 unknown, 1 male, 2 female
}

type oauthTokenResponse struct {
	apiStatus
	AccessToken    string `json:"access_token"`
	ExpiresIn      int    `json:"expires_in"`
	RefreshToken   string `json:"refresh_token"`
	OpenID         string `json:"openid"`
	Scope          string `json:"scope"`
	UnionID        string `json:"unionid"`
	IsSnapshotUser int    `json:"is_snapshotuser"`
}

type userInfoResponse struct {
	apiStatus
	OpenID     string `json:"openid"`
	UnionID    string `json:"unionid"`
	Nickname   string `json:"nickname"`
	HeadImgURL string `json:"headimgurl"`
	Sex        int    `json:"sex"`
}

// OAuthExchange exchanges a web OAuth code (from the authorize or
// qrconnect redirect) at /sns/oauth2/access_token, with this client's
// AppID and AppSecret (those of the Official Account or website app).
//
// As with Code2Session, concurrent calls with one code share one upstream
// request, detached from the callers' cancellation; the request is
// retried once after errcode -1 and never after a timeout. Errors match
// ErrInvalidCode (40029, 40163, 41008, or an empty code refused without a
// request), ErrRateLimited, ErrUnavailable, ErrBadResponse (no openid or
// no access_token) or ErrAPI.
func (c *Client) OAuthExchange(ctx context.Context, code string) (*OAuthToken, error) {
	const api = "oauth2_access_token"
	if code == "" {
		return nil, fmt.Errorf("wechat %s: empty code: %w", api, ErrInvalidCode)
	}
	if len(code) > maxCodeBytes {
		return nil, fmt.Errorf("wechat %s: code longer than %d bytes: %w", api, maxCodeBytes, ErrInvalidCode)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("wechat %s: %w", api, err)
	}
	sum := sha256.Sum256([]byte("oauth\x00" + code))
	detached := context.WithoutCancel(ctx)
	ch := c.codes.DoChan(string(sum[:]), func() (any, error) {
		return c.oauthExchange(detached, code)
	})
	if c.testHookCodeWait != nil {
		c.testHookCodeWait()
	}
	select {
	case <-ctx.Done():
		return nil, fmt.Errorf("wechat %s: %w", api, ctx.Err())
	case res := <-ch:
		if res.Err != nil {
			return nil, res.Err
		}
		t := *res.Val.(*OAuthToken)
		return &t, nil
	}
}

func (c *Client) oauthExchange(ctx context.Context, code string) (*OAuthToken, error) {
	const api = "oauth2_access_token"
	out, err := call[oauthTokenResponse](ctx, c, &request{
		api:    api,
		method: http.MethodGet,
		path:   "/sns/oauth2/access_token",
		query: url.Values{
			"appid":      {c.appID},
			"secret":     {c.secret},
			"code":       {code},
			"grant_type": {"authorization_code"},
		},
		secrets: []string{code},
	})
	if err != nil {
		return nil, err
	}
	switch {
	case out.OpenID == "":
		return nil, c.fail(api, &httpError{api: api, kind: ErrBadResponse, detail: "answer has no openid"})
	case out.AccessToken == "":
		return nil, c.fail(api, &httpError{api: api, kind: ErrBadResponse, detail: "answer has no access_token"})
	}
	return &OAuthToken{
		AccessToken:  out.AccessToken,
		OpenID:       out.OpenID,
		UnionID:      out.UnionID,
		Scope:        out.Scope,
		SnapshotUser: out.IsSnapshotUser == 1,
	}, nil
}

// UserInfo asks /sns/userinfo for the profile of the user an OAuthToken
// belongs to (scopes snsapi_userinfo and snsapi_login). Errors as
// OAuthExchange; an answer for another openid is ErrBadResponse.
func (c *Client) UserInfo(ctx context.Context, accessToken, openID string) (*UserInfo, error) {
	const api = "userinfo"
	if accessToken == "" || openID == "" {
		return nil, fmt.Errorf("wechat %s: missing access token or openid: %w", api, ErrBadResponse)
	}
	out, err := call[userInfoResponse](ctx, c, &request{
		api:    api,
		method: http.MethodGet,
		path:   "/sns/userinfo",
		query: url.Values{
			"access_token": {accessToken},
			"openid":       {openID},
			"lang":         {"zh_CN"},
		},
		secrets: []string{accessToken},
	})
	if err != nil {
		return nil, err
	}
	if out.OpenID != openID {
		return nil, c.fail(api, &httpError{api: api, kind: ErrBadResponse, detail: "answer is for another openid"})
	}
	g := out.Sex
	if g < 0 || g > 2 {
		g = 0
	}
	return &UserInfo{OpenID: out.OpenID, UnionID: out.UnionID, Nickname: out.Nickname, HeadImgURL: out.HeadImgURL, Gender: g}, nil
}
