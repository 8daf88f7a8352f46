package handler

import (
	"net/http"

	"github.com/wxauth/caddy-wechat-auth/internal/token"
)

// rotateCookies rotates the cookie session inline, for a request whose
// access cookie is missing or no longer valid: the refresh cookie is
// presented exactly as to the refresh endpoint (single use, the retry
// window, reuse detection), so page loads that carry one refresh cookie
// at once all get the same new pair rather than tripping reuse detection.
// The new cookies are set on w and the new token's claims returned. When
// the refresh token is refused for good, both cookies are cleared and
// cause (the access token's failure) is returned; a failure of the store
// leaves the cookies for a later try.
func (h *Handler) rotateCookies(w http.ResponseWriter, r *http.Request, refresh string, cause error) (*token.Claims, error) {
	pair, e := h.rotateRefresh(r.Context(), refresh)
	if e != nil {
		if e.Code == CodeInvalidGrant {
			h.clearSessionCookies(w, r)
		} else {
			h.logError(r, e)
		}
		return nil, cause
	}
	c, err := h.verifyAccess(pair.Token)
	if err != nil {
		return nil, err
	}
	h.setSessionCookies(w, r, pair)
	return c, nil
}
