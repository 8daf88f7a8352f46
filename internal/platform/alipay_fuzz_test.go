package platform

import (
	"bytes"
	"encoding/json"
	"testing"
)

// FuzzAlipaySplitResponse feeds arbitrary gateway answers to the split
// that picks out the bytes Alipay's signature covers. It must never
// panic; an answer it accepts must be one JSON object with exactly one of
// the two nodes, whose text it returns byte for byte as it stands in the
// answer (what a JSON parser of the whole answer finds under that name),
// with the sign that parser finds.
func FuzzAlipaySplitResponse(f *testing.F) {
	for _, s := range []string{
		`{"alipay_system_oauth_token_response":{"user_id":"2088","access_token":"t"},"sign":"c2ln"}`,
		`{"sign":"c2ln","alipay_system_oauth_token_response":{ "open_id" : "o" }}`,
		`{"error_response":{"code":"40002","sub_code":"isv.code-invalid"},"sign":"c2ln"}`,
		`{"error_response":{"code":"20000"}}`,
		`{"alipay_system_oauth_token_respons\u0065":{"user_id":"x"},"sign":"c2ln"}`,
		`{"alipay_system_oauth_token_response":{"a":"}\"{"},"alipay_system_oauth_token_response":{"user_id":"y"}}`,
		`{"x":"{\"alipay_system_oauth_token_response\":{}}","error_response":{"code":"1"}}`,
		` { "alipay_system_oauth_token_response" : {"user_id":"x"} , "sign" : "c2ln" } `,
		`{"alipay_system_oauth_token_response":"{}","sign":"c2ln"}`,
		`{"alipay_system_oauth_token_response":{}}{}`,
		`[]`, ``, `{`, `{"sign":1}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		name, obj, sign, err := AlipaySplitResponse(body, alipayResponseNode)
		if err != nil {
			return
		}
		if name != alipayResponseNode && name != alipayErrorNode {
			t.Fatalf("node %q", name)
		}
		if len(obj) == 0 || obj[0] != '{' || !json.Valid(obj) {
			t.Fatalf("node text %q is not a JSON object", obj)
		}
		if !bytes.Contains(body, obj) {
			t.Fatalf("node text %q is not a part of the answer", obj)
		}
		var top map[string]json.RawMessage
		if err := json.Unmarshal(body, &top); err != nil {
			t.Fatalf("accepted an answer a JSON parser refuses: %v", err)
		}
		if !bytes.Equal(top[name], obj) {
			t.Fatalf("node text %q, a JSON parser finds %q", obj, top[name])
		}
		_, hasResp := top[alipayResponseNode]
		_, hasErr := top[alipayErrorNode]
		if hasResp == hasErr {
			t.Fatalf("accepted an answer with response %v and error_response %v", hasResp, hasErr)
		}
		var want string
		if raw, ok := top["sign"]; ok {
			if err := json.Unmarshal(raw, &want); err != nil {
				t.Fatalf("accepted a sign that is not a string: %s", raw)
			}
		}
		if sign != want {
			t.Fatalf("sign %q, a JSON parser finds %q", sign, want)
		}
	})
}
