package handler

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/wxauth/caddy-wechat-auth/internal/platform"
	"github.com/wxauth/caddy-wechat-auth/internal/wechat"
	"github.com/wxauth/caddy-wechat-auth/store"
)

type phoneRequest struct {
	Code string `json:"code"`
}

type phoneView struct {
	PhoneNumber     string `json:"phone_number"`
	PurePhoneNumber string `json:"pure_phone_number"`
	CountryCode     string `json:"country_code"`
}

// phone binds the phone number behind a getPhoneNumber code to the user.
func (h *Handler) phone(w http.ResponseWriter, r *http.Request) *Error {
	var req phoneRequest
	c, e := h.authenticatedPost(w, r, &req)
	if e != nil {
		return e
	}
	switch {
	case req.Code == "":
		return badRequest("missing code (from the getPhoneNumber button)")
	case len(req.Code) > maxCodeLen:
		return badRequest("code is too long")
	}
	ctx := r.Context()
	info, err := h.cfg.WeChat.PhoneNumber(ctx, req.Code)
	if err != nil {
		return wechatError(err)
	}
	if info.WatermarkAppID != h.cfg.AppID {
		return wechatError(fmt.Errorf("%w: phone number for another app", wechat.ErrWatermark))
	}
	phone := info.PhoneNumber
	if _, err := h.cfg.Store.UpdateUser(ctx, h.cfg.AppID, c.UserID, store.ProfilePatch{Phone: &phone}, h.now()); err != nil {
		return storeError(err, guardError(errRevoked))
	}
	writeJSON(w, http.StatusOK, struct {
		Status string    `json:"status"`
		Phone  phoneView `json:"phone"`
	}{"success", phoneView{info.PhoneNumber, info.PurePhoneNumber, info.CountryCode}})
	return nil
}

type decryptRequest struct {
	EncryptedData string `json:"encrypted_data"`
	IV            string `json:"iv"`
	RawData       string `json:"raw_data"`
	Signature     string `json:"signature"`
}

// decrypt opens encrypted open data with the session's stored session_key.
func (h *Handler) decrypt(w http.ResponseWriter, r *http.Request) *Error {
	var req decryptRequest
	c, e := h.authenticatedPost(w, r, &req)
	if e != nil {
		return e
	}
	switch {
	case req.EncryptedData == "" || req.IV == "":
		return badRequest("encrypted_data and iv are required")
	case (req.RawData == "") != (req.Signature == ""):
		return badRequest("raw_data and signature go together")
	}
	s, err := h.cfg.Store.Session(r.Context(), h.cfg.AppID, c.SessionID)
	if err != nil {
		return storeError(err, guardError(errRevoked))
	}
	key, err := h.cfg.Sealer.Open(h.cfg.AppID, s.ID, s.SealedSessionKey)
	if err != nil {
		return &Error{Status: http.StatusUnauthorized, Code: CodeInvalidToken, Err: err,
			Challenge: `Bearer error="invalid_token"`,
			Message:   "the session's WeChat session key is unavailable; log in again"}
	}
	if req.Signature != "" && !platform.VerifyRawSignature(req.RawData, key, req.Signature) {
		return badRequest("signature does not match raw_data")
	}
	data, err := platform.DecryptOpenData(h.cfg.Platform, key, req.EncryptedData, req.IV, h.cfg.AppID)
	switch {
	case errors.Is(err, platform.ErrWatermark):
		return badRequest("the data was made for another app")
	case err != nil:
		return badRequest("encrypted_data could not be decrypted with this session's key; it may come from an older wx.login")
	}
	writeJSON(w, http.StatusOK, struct {
		Status string          `json:"status"`
		Data   json.RawMessage `json:"data"`
	}{"success", data})
	return nil
}
