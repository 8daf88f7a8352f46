package emulator

import (
	"net/http"
	"strings"
	"time"
	"unicode/utf8"
)

// pathMsgSecCheck is WeChat's text content check.
const pathMsgSecCheck = "/wxa/msg_sec_check"

// codeUserNotVisited is msg_sec_check's errcode for an openid that has
// not used the mini-program recently.
const codeUserNotVisited = 61010

// Emulated verdicts: a text containing riskyWord is risky, one containing
// reviewWord needs review, anything else passes.
const (
	riskyWord  = "risky"
	reviewWord = "review"
)

// secCheckRequest is the body of POST /wxa/msg_sec_check (version 2).
type secCheckRequest struct {
	Content string `json:"content"`
	Version int    `json:"version"`
	Scene   int    `json:"scene"`
	OpenID  string `json:"openid"`
}

type secCheckVerdict struct {
	Suggest string `json:"suggest"`
	Label   int    `json:"label"`
}

type secCheckDetail struct {
	Strategy string `json:"strategy"`
	Errcode  int    `json:"errcode"`
	Suggest  string `json:"suggest"`
	Label    int    `json:"label"`
	Prob     int    `json:"prob,omitempty"`
}

// secCheckResponse is a successful msg_sec_check answer.
type secCheckResponse struct {
	Errcode int              `json:"errcode"`
	Errmsg  string           `json:"errmsg"`
	Result  secCheckVerdict  `json:"result"`
	Detail  []secCheckDetail `json:"detail"`
	TraceID string           `json:"trace_id"`
}

// msgSecCheck emulates POST /wxa/msg_sec_check (version 2): it checks the
// access token, the version, scene and openid (one that logged in through
// the emulator), then judges the content: "risky" (label 20001,
// politics) when it contains "risky", "review" (label 21000, other) when
// it contains "review", else "pass" (label 100).
func (e *Emulator) msgSecCheck(w http.ResponseWriter, r *http.Request, now time.Time) {
	if r.Method != http.MethodPost {
		e.writeAPIError(w, codeRequirePOST, "require POST method")
		return
	}
	if _, ok := e.checkAccessToken(w, r, now); !ok {
		return
	}
	var req secCheckRequest
	if err := readJSON(w, r, &req, false); err != nil {
		e.writeAPIError(w, codeDataFormatError, "data format error")
		return
	}
	switch {
	case req.Version != 2 || req.Scene < 1 || req.Scene > 4 || req.Content == "" ||
		!utf8.ValidString(req.Content) || utf8.RuneCountInString(req.Content) > 2500:
		e.writeAPIError(w, codeInvalidArgs, "invalid args")
		return
	case req.OpenID == "":
		e.writeAPIError(w, codeInvalidOpenID, "invalid openid")
		return
	}
	if _, _, err := e.state.latestSession(req.OpenID); err != nil {
		e.writeAPIError(w, codeUserNotVisited, "user is not visit recently")
		return
	}
	v := secCheckVerdict{Suggest: "pass", Label: 100}
	switch {
	case strings.Contains(req.Content, riskyWord):
		v = secCheckVerdict{Suggest: "risky", Label: 20001}
	case strings.Contains(req.Content, reviewWord):
		v = secCheckVerdict{Suggest: "review", Label: 21000}
	}
	writeJSON(w, apiContentType, http.StatusOK, secCheckResponse{
		Errcode: 0,
		Errmsg:  "ok",
		Result:  v,
		Detail:  []secCheckDetail{{Strategy: "content_model", Suggest: v.Suggest, Label: v.Label, Prob: 90}},
		TraceID: e.rid(),
	})
}
