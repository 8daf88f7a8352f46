package handler

import (
	"net/http"
	"net/url"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/wxauth/caddy-wechat-auth/store"
)

// userView is the user as the API shows it.
type userView struct {
	ID        uint64 `json:"id"`
	Nickname  string `json:"nickname"`
	AvatarURL string `json:"avatar_url"`
	Gender    int    `json:"gender"`
	Phone     string `json:"phone"`
	CreatedAt string `json:"created_at"`
}

func viewUser(u store.User) userView {
	return userView{
		ID:        u.ID,
		Nickname:  u.Nickname,
		AvatarURL: u.AvatarURL,
		Gender:    u.Gender,
		Phone:     u.Phone,
		CreatedAt: u.CreatedAt.UTC().Format(time.RFC3339),
	}
}

// profileFields are the editable profile fields, as a body gives them.
type profileFields struct {
	Nickname  *string  `json:"nickname"`
	AvatarURL *string  `json:"avatar_url"`
	Gender    *flexInt `json:"gender"`
}

// validate checks the profile fields (nickname: 1–64 characters without
// control characters; avatar_url: an absolute http(s) URL of at most 2048
// bytes; gender: 0, 1 or 2) and returns them as a patch.
func (p profileFields) validate() (store.ProfilePatch, *Error) {
	var patch store.ProfilePatch
	if p.Nickname != nil {
		if e := validNickname(*p.Nickname); e != nil {
			return patch, e
		}
		patch.Nickname = p.Nickname
	}
	if p.AvatarURL != nil {
		if e := validAvatarURL(*p.AvatarURL); e != nil {
			return patch, e
		}
		patch.AvatarURL = p.AvatarURL
	}
	if p.Gender != nil {
		g := int(*p.Gender)
		if g < 0 || g > 2 {
			return patch, badRequest("gender must be 0 (unknown), 1 (male) or 2 (female)")
		}
		patch.Gender = &g
	}
	return patch, nil
}

func validNickname(s string) *Error {
	if !utf8.ValidString(s) {
		return badRequest("nickname must be valid UTF-8")
	}
	n := utf8.RuneCountInString(s)
	if n < 1 || n > 64 {
		return badRequest("nickname must be 1 to 64 characters")
	}
	for _, r := range s {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			return badRequest("nickname must not contain control characters")
		}
	}
	return nil
}

func validAvatarURL(s string) *Error {
	if len(s) > 2048 {
		return badRequest("avatar_url must be at most 2048 bytes")
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		return badRequest("avatar_url must be an absolute http(s) URL")
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return badRequest("avatar_url must not contain control characters")
		}
	}
	return nil
}

// profile serves GET (read) and PATCH/PUT (partial update) of the
// authenticated user's profile.
func (h *Handler) profile(w http.ResponseWriter, r *http.Request) *Error {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodPatch, http.MethodPut:
	default:
		return methodNotAllowed("GET, HEAD, PATCH, PUT")
	}
	c, e := h.authenticated(r)
	if e != nil {
		return e
	}
	ctx := r.Context()
	var u store.User
	var err error
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		u, err = h.cfg.Store.User(ctx, h.cfg.AppID, c.UserID)
	} else {
		var body profileFields
		if e := decodeBody(w, r, &body, true, false); e != nil {
			return e
		}
		if e := h.keepStoredAvatar(ctx, c.UserID, &body); e != nil {
			return e
		}
		patch, e := body.validate()
		if e != nil {
			return e
		}
		if patch.Nickname != nil {
			if e := h.checkNickname(ctx, c.OpenID, *patch.Nickname); e != nil {
				return e
			}
		}
		u, err = h.cfg.Store.UpdateUser(ctx, h.cfg.AppID, c.UserID, patch, h.now())
	}
	if err != nil {
		return storeError(err, guardError(errRevoked))
	}
	writeJSON(w, http.StatusOK, struct {
		Status string   `json:"status"`
		User   userView `json:"user"`
	}{"success", viewUser(u)})
	return nil
}
