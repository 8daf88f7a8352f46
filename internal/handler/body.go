package handler

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// MaxBodySize is the largest request body an endpoint reads; a larger one
// is answered 413 payload_too_large.
const MaxBodySize = 64 << 10

// flexInt is an integer that also accepts a JSON string holding one, as
// form bodies and some mini-program code send numbers as strings.
type flexInt int

func (f *flexInt) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 1 && b[0] == '"' {
		b = b[1 : len(b)-1]
	}
	n, err := strconv.Atoi(string(b))
	if err != nil {
		return errors.New("not an integer")
	}
	*f = flexInt(n)
	return nil
}

// flexBool is a boolean that also accepts "true"/"false"/"1"/"0" strings.
type flexBool bool

func (f *flexBool) UnmarshalJSON(b []byte) error {
	s := string(bytes.Trim(bytes.TrimSpace(b), `"`))
	v, err := strconv.ParseBool(s)
	if err != nil {
		return errors.New("not a boolean")
	}
	*f = flexBool(v)
	return nil
}

// decodeBody reads r's body into dst, a pointer to a struct with json tags.
// It accepts application/json and application/x-www-form-urlencoded bodies
// of at most MaxBodySize bytes. With strict, unknown fields are an error.
// An empty body decodes to the zero value when allowEmpty is set.
func decodeBody(w http.ResponseWriter, r *http.Request, dst any, strict, allowEmpty bool) *Error {
	if r.ContentLength > MaxBodySize {
		return newError(http.StatusRequestEntityTooLarge, CodePayloadTooLarge, "request body is larger than 64 KiB")
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodySize))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return newError(http.StatusRequestEntityTooLarge, CodePayloadTooLarge, "request body is larger than 64 KiB")
		}
		return badRequest("could not read the request body")
	}
	if len(bytes.TrimSpace(body)) == 0 {
		if allowEmpty {
			return nil
		}
		return badRequest("request body is empty")
	}

	mediaType := ""
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil {
			return newError(http.StatusUnsupportedMediaType, CodeUnsupportedMediaType, "unreadable Content-Type; send application/json or application/x-www-form-urlencoded")
		}
		mediaType = mt
	}
	switch {
	case mediaType == "application/json" || strings.HasSuffix(mediaType, "+json"):
	case mediaType == "application/x-www-form-urlencoded":
		if body, err = formToJSON(body); err != nil {
			return badRequest("malformed form body")
		}
	case mediaType == "" && bytes.HasPrefix(bytes.TrimSpace(body), []byte("{")):
		// No Content-Type but a JSON object: accept it.
	default:
		return newError(http.StatusUnsupportedMediaType, CodeUnsupportedMediaType, "send application/json or application/x-www-form-urlencoded")
	}

	dec := json.NewDecoder(bytes.NewReader(body))
	if strict {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(dst); err != nil {
		return badRequest(jsonProblem(err))
	}
	if dec.More() {
		return badRequest("request body has data after the JSON object")
	}
	return nil
}

// decodePost is the prologue of a POST endpoint: the method, then the body
// decoded into dst (unknown fields ignored).
func decodePost(w http.ResponseWriter, r *http.Request, dst any, allowEmpty bool) *Error {
	if r.Method != http.MethodPost {
		return methodNotAllowed("POST")
	}
	return decodeBody(w, r, dst, false, allowEmpty)
}

// formToJSON turns a urlencoded body into a JSON object of strings, so one
// decoder (with flexInt/flexBool) serves both media types. A repeated field
// is an error.
func formToJSON(body []byte) ([]byte, error) {
	vals, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, err
	}
	m := make(map[string]string, len(vals))
	for k, v := range vals {
		if len(v) != 1 {
			return nil, fmt.Errorf("field %q given %d times", k, len(v))
		}
		m[k] = v[0]
	}
	return json.Marshal(m)
}

// jsonProblem describes a decoding error without echoing the input.
func jsonProblem(err error) string {
	var ute *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &ute) && ute.Field != "":
		return "field " + strconv.Quote(ute.Field) + " has the wrong type"
	case errors.As(err, &se):
		return "malformed JSON body"
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return "unknown field " + strings.TrimPrefix(err.Error(), "json: unknown field ")
	case strings.Contains(err.Error(), "not an integer"), strings.Contains(err.Error(), "not a boolean"):
		return "a field has the wrong type: " + err.Error()
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "truncated JSON body"
	default:
		return "malformed JSON body: expected an object"
	}
}
