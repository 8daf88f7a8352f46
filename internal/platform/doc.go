// Package platform exchanges a mini-program login code for the user's
// identity on each platform the module supports: WeChat, QQ, Douyin
// (ByteDance), Alipay and Baidu. Each platform is one small Exchanger in its
// own file; everything after the exchange (users, sessions, tokens, the
// guard) is the same for all of them.
//
// Every exchanger maps the platform's failures onto one set of sentinel
// errors (shared with internal/wechat), retries once when the platform says
// it is busy and never after a timeout (the code may already be spent), and
// never returns a Session from a failed, malformed or (Alipay) unsigned
// answer. Open data is decrypted per platform by DecryptOpenData.
package platform
