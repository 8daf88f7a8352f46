package handler

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/wxauth/caddy-wechat-auth/internal/wechat"
	"github.com/wxauth/caddy-wechat-auth/store"
)

// ContentChecker checks a text a user wrote before it is stored;
// *wechat.Client implements it with WeChat's msg_sec_check.
type ContentChecker interface {
	MsgSecCheck(ctx context.Context, openid, content string) (*wechat.SecCheckResult, error)
}

// checkNickname asks Config.ContentCheck about nickname, written by the
// user openid. Anything but a "pass" is 400 content_rejected; a WeChat
// failure is answered as such (503 when WeChat is unreachable), so a
// nickname is never stored unchecked.
func (h *Handler) checkNickname(ctx context.Context, openid, nickname string) *Error {
	if h.cfg.ContentCheck == nil {
		return nil
	}
	res, err := h.cfg.ContentCheck.MsgSecCheck(ctx, openid, nickname)
	if err != nil {
		return wechatError(fmt.Errorf("checking the nickname: %w", err))
	}
	if res.Suggest != wechat.SuggestPass {
		e := newError(http.StatusBadRequest, CodeContentRejected, "WeChat's content check did not pass this nickname; choose another")
		e.Err = fmt.Errorf("msg_sec_check suggests %q (label %d, trace %s)", res.Suggest, res.Label, res.TraceID)
		return e
	}
	return nil
}

// checkLoginNickname checks the nickname of a login body when the login
// would create the user: a returning user's profile is never changed by a
// login, so its nickname is not checked (nor stored).
func (h *Handler) checkLoginNickname(ctx context.Context, openid string, profile store.ProfilePatch) *Error {
	if h.cfg.ContentCheck == nil || profile.Nickname == nil {
		return nil
	}
	_, err := h.cfg.Store.UserByOpenID(ctx, h.cfg.AppID, openid)
	switch {
	case err == nil:
		return nil
	case !errors.Is(err, store.ErrNotFound):
		return internalError(fmt.Errorf("looking up the user: %w", err))
	}
	return h.checkNickname(ctx, openid, *profile.Nickname)
}
