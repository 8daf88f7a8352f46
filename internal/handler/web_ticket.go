package handler

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"go.uber.org/zap"

	"github.com/wxauth/caddy-wechat-auth/internal/websession"
	"github.com/wxauth/caddy-wechat-auth/store"
)

type ticketRequest struct {
	Next string `json:"next"`
}

// webTicket answers POST <path>/ticket: a mini-program session (its
// access token in a header, never a cookie) asks for a one-time ticket
// that its web-view redeems at <path>/enter.
func (h *Handler) webTicket(w http.ResponseWriter, r *http.Request) *Error {
	if r.Method != http.MethodPost {
		return methodNotAllowed("POST")
	}
	raw, fromCookie := h.findTokenSource(r)
	switch {
	case raw == "":
		return guardError(errNoToken)
	case fromCookie:
		// A cookie session needs no ticket, and a ticket asked with a
		// cookie would be a cross-site request's way to mint one.
		e := guardError(errNoToken)
		e.Message = "send the mini-program's access token in a header"
		return e
	}
	c, err := h.verifyAccess(raw)
	if err != nil {
		return guardError(err)
	}
	var req ticketRequest
	if e := decodeBody(w, r, &req, false, true); e != nil {
		return e
	}
	next := "/"
	if req.Next != "" {
		next = websession.SanitizeNext(req.Next)
	}
	ticket, hash, err := websession.NewTicket()
	if err != nil {
		return internalError(err)
	}
	now := h.now()
	err = h.web.cfg.Tickets.CreateTicket(r.Context(), h.cfg.AppID, store.Ticket{
		Hash: hash, SessionID: c.SessionID, UserID: c.UserID, Next: next,
		CreatedAt: now, ExpiresAt: now.Add(websession.TicketTTL),
	}, now)
	switch {
	case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrRevoked), errors.Is(err, store.ErrExpired):
		return guardError(errRevoked)
	case err != nil:
		return internalError(fmt.Errorf("storing ticket: %w", err))
	}
	q := url.Values{"ticket": {ticket}, "next": {next}}
	writeJSON(w, http.StatusOK, struct {
		Status    string `json:"status"`
		Ticket    string `json:"ticket"`
		ExpiresIn int64  `json:"expires_in"`
		URL       string `json:"url"`
	}{"success", ticket, seconds(websession.TicketTTL), h.web.cfg.Path + "/enter?" + q.Encode()})
	return nil
}

// webEnter answers GET <path>/enter?ticket=…&next=…: a valid ticket
// becomes a new cookie session of the ticket's user, then a redirect to
// next. Anything else is a 401 page and no cookie.
func (h *Handler) webEnter(w http.ResponseWriter, r *http.Request) *Error {
	if r.Method != http.MethodGet {
		return methodNotAllowed("GET")
	}
	q := r.URL.Query()
	ticket := q.Get("ticket")
	refused := func(cause error) *Error {
		e := &Error{Status: http.StatusUnauthorized, Code: CodeInvalidGrant, Err: cause,
			Message: "this link has expired or was already used; open this page again from the mini-program"}
		return h.webFail(w, r, e, "This link has expired", e.Message)
	}
	if ticket == "" || len(ticket) > websession.MaxTicketLen {
		return refused(errors.New("missing or oversized ticket"))
	}
	now := h.now()
	sess, rt, refresh, err := h.newSessionRecords(now)
	if err != nil {
		return h.webFail(w, r, internalError(err), "", "")
	}
	tk, stored, err := h.web.cfg.Tickets.RedeemTicket(r.Context(), h.cfg.AppID, websession.HashTicket(ticket), sess, rt, now)
	switch {
	case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrExpired), errors.Is(err, store.ErrRevoked), errors.Is(err, store.ErrBanned):
		return refused(err)
	case err != nil:
		return h.webFail(w, r, internalError(fmt.Errorf("redeeming ticket: %w", err)), "", "")
	}
	if h.cfg.Revocations.Revoked(tk.SessionID) {
		// Revoked on another instance a moment ago, before the store saw
		// it here: end the new session too rather than outlive it.
		if s, err := h.cfg.Store.RevokeSession(r.Context(), h.cfg.AppID, stored.ID, store.ReasonLogout, now); err == nil {
			h.markRevoked(s)
		}
		return refused(errRevoked)
	}
	pair, e := h.pair(stored, refresh, rt, now)
	if e != nil {
		return h.webFail(w, r, e, "", "")
	}
	next := tk.Next
	if v := q.Get("next"); v != "" {
		next = websession.SanitizeNext(v)
	}
	if next == "" {
		next = "/"
	}
	h.metrics.Login(LoginOKReturning)
	if ce := h.log.Check(zap.InfoLevel, "wechat_auth web session from ticket"); ce != nil {
		ce.Write(zap.Uint64("user_id", stored.UserID))
	}
	h.setSessionCookies(w, r, pair)
	redirect(w, next, http.StatusFound)
	return nil
}

// webFail logs e and answers it as a page (navigation) or JSON; the
// endpoint then returns nil, its answer written.
func (h *Handler) webFail(w http.ResponseWriter, r *http.Request, e *Error, title, text string) *Error {
	h.logError(r, e)
	writeWebError(w, r, e, title, text)
	return nil
}
