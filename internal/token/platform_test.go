package token

import "testing"

// TestIssuePlatformClaim: a non-WeChat token carries its platform, which
// Verify returns; a WeChat token (empty platform) has no platform claim.
func TestIssuePlatformClaim(t *testing.T) {
	m := genKeys(t)
	s := newService(t, newClock(t0), []*Key{m.key(t, AlgHS256, "")}, nil)
	for _, p := range []string{"", "qq", "douyin", "alipay", "baidu"} {
		sub := testSubject
		sub.Platform = p
		tok, _, err := s.Issue(sub, "j", t0)
		if err != nil {
			t.Fatal(err)
		}
		got, present := decodeSegment(t, tok, 1)["platform"]
		if (p == "") == present || (present && got != p) {
			t.Errorf("platform %q: claim %v (present %v)", p, got, present)
		}
		c, err := s.Verify(tok)
		if err != nil || c.Platform != p {
			t.Errorf("Verify(%q): %v, platform %q", p, err, c.Platform)
		}
	}
}
