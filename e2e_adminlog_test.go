package wechatauth_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestE2EAdminLookupNotLogged looks a user up by openid through the
// running Caddy's admin endpoint, which logs every request's URI at INFO,
// and checks that the openid is in no log line. A refused lookup in the
// old query form shows that the log would have shown it.
func TestE2EAdminLookupNotLogged(t *testing.T) {
	e := newE2E(t, "")
	logFile := filepath.Join(t.TempDir(), "caddy.log")
	config := strings.Replace(e2eConfig(e.db, ""), "\tskip_install_trust\n",
		"\tskip_install_trust\n\tlog {\n\t\toutput file "+logFile+"\n\t\tlevel INFO\n\t}\n", 1)
	e.loadRaw(config)

	const openid, canary = "o_admin_lookup_pii", "o_admin_query_canary"
	uid := e.login(openid)["user_id"].(float64)
	path := "/wechat_auth/apps/" + e2eAppID + "/users"

	a := e.admin("POST", path+"/lookup", `{"openid":"`+openid+`"}`)
	if a.status != 200 || a.body["id"].(float64) != uid || a.body["openid"] != openid {
		t.Fatalf("lookup by openid: %d %s", a.status, a.raw)
	}
	a = e.admin("GET", path+"?openid="+canary, "")
	expect(t, a, 400, "")
	if msg, _ := a.body["message"].(string); !strings.Contains(msg, "POST …/users/lookup") || strings.Contains(a.raw, canary) {
		t.Fatalf("query-string lookup: want a refusal pointing to POST …/users/lookup, without the value: %s", a.raw)
	}

	e.stop() // flushes and closes the log file
	raw, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	log := string(raw)
	if !strings.Contains(log, canary) {
		t.Fatalf("the admin endpoint's request log does not show URIs, so this test shows nothing:\n%s", log)
	}
	if !strings.Contains(log, path+"/lookup") {
		t.Fatalf("no admin log line for the lookup:\n%s", log)
	}
	for _, line := range strings.Split(log, "\n") {
		if strings.Contains(line, openid) {
			t.Errorf("the openid is in Caddy's log: %s", line)
		}
	}
}
