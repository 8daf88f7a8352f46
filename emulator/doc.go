// Package emulator provides the wechat_emulator Caddy module
// (http.handlers.wechat_emulator): an offline, in-memory stand-in for the
// parts of WeChat's server API that a mini-program backend calls.
//
// It is for local development and tests only. It keeps everything in memory,
// forgets it all on reload, accepts any appid when none is configured, and its
// helper endpoints let anyone mint login codes for any openid. Never expose it
// to the internet and never route real users to it.
//
// # WeChat endpoints
//
// The emulator answers these paths with WeChat's response shapes and
// errcodes. Like WeChat, API errors are HTTP 200 with a JSON body
// {"errcode":N,"errmsg":"…, rid: …"}; every other path is passed to the next
// handler, so the module can share a site with other routes.
//
//	GET  /sns/jscode2session?appid&secret&js_code&grant_type=authorization_code
//	     → {"openid","session_key"[,"unionid"]}
//	POST /cgi-bin/stable_token {"grant_type":"client_credential","appid","secret","force_refresh"}
//	     → {"access_token","expires_in"}
//	POST /wxa/business/getuserphonenumber?access_token=… {"code"}
//	     → {"errcode":0,"errmsg":"ok","phone_info":{…}}
//	GET  /wxa/checksession?access_token&signature&openid&sig_method=hmac_sha256
//	     → {"errcode":0,"errmsg":"ok"}
//	POST /wxa/msg_sec_check?access_token=… {"content","version":2,"scene","openid"}
//	     → {"errcode":0,"errmsg":"ok","result":{"suggest","label"},"detail":[…],"trace_id"}
//
// msg_sec_check calls a text containing "risky" risky and one containing
// "review" a case for review; everything else passes. Its openid must have
// logged in through the emulator (else 61010, as for a user WeChat has not
// seen recently).
//
// Login codes are single-use and live code_ttl (default 5m): an unknown or
// expired code gets 40029, a reused one 40163. Each successful exchange
// issues a fresh 16-byte session_key for the openid; the latest one is what
// checksession and open-data encryption use. stable_token returns the same
// access token until it expires (expires_in counts down from token_ttl,
// default 2h) unless force_refresh is set, which issues a new token and
// invalidates the old one. A token the emulator never issued, or one replaced
// by force_refresh, gets 40001; a token that has simply expired gets 42001,
// as on WeChat. With app_id / app_secret configured, a different appid gets
// 40013 and a different secret 40125; without them any value is accepted.
// Other errcodes used: 41002 appid missing, 41004 appsecret missing, 40002
// invalid grant_type, 41008 missing code, 41001 access_token missing, 40003
// invalid openid, 40097 invalid args, 87009 invalid signature, 47001 data
// format error (bad or oversized JSON body), 43001/43002 wrong HTTP method.
//
// # Web OAuth
//
// The emulator also stands in for WeChat's web OAuth: Official Account
// authorization inside WeChat (snsapi_base, snsapi_userinfo) and Open
// Platform website QR login (snsapi_login). The pages a browser is sent to:
//
//	GET  /connect/oauth2/authorize?appid&redirect_uri&response_type=code&scope&state
//	GET  /connect/qrconnect?appid&redirect_uri&response_type=code&scope=snsapi_login&state
//	     an HTML page naming the app and the scope, with openid, unionid
//	     (and, for scopes that give the profile, nickname) fields and
//	     Allow / Deny buttons. Allow: 302 to redirect_uri?code=…&state=…;
//	     Deny: 302 to redirect_uri?state=…. The fields are prefilled with
//	     the app's latest grant, or a fresh openid. A bad query (missing
//	     appid, redirect_uri not an absolute http(s) URL, response_type not
//	     code, a scope the page does not grant, state over 128 bytes) gets
//	     an HTML error page (400) with WeChat's page error code where it has
//	     one (10003, 10005, 10010, 10011, 10012).
//
// The server API:
//
//	GET /sns/oauth2/access_token?appid&secret&code&grant_type=authorization_code
//	    → {"access_token","expires_in":7200,"refresh_token","openid","scope"[,"unionid"][,"is_snapshotuser":1]}
//	GET /sns/oauth2/refresh_token?appid&grant_type=refresh_token&refresh_token
//	    → {"access_token","expires_in","refresh_token","openid","scope"}
//	GET /sns/userinfo?access_token&openid[&lang]
//	    → {"openid","nickname","sex","province","city","country","headimgurl","privilege"[,"unionid"]}
//
// Codes are single-use, live code_ttl and belong to one app: unknown,
// expired or another app's code 40029, a reused one 40163. The unionid is
// given only for snsapi_userinfo and snsapi_login; userinfo with a
// snsapi_base token gets 48001, with another openid 40003, without one
// 41009; an unknown access token 40001, an expired one (2h) 42001; an
// unknown refresh token 40030, an expired one (30 days) 42002. With
// oauth_app subdirectives only those appids are served (40013) and their
// secrets checked (40125); without, any appid and secret are accepted.
// Faults queued with /emulator/fault reach the three API paths.
//
// # Other mini-program platforms
//
// With platform set (qq, douyin, alipay or baidu) the emulator also serves
// that platform's code exchange, at its real path and in its real shapes;
// POST /emulator/code then mints that platform's codes:
//
//	qq      GET  /sns/jscode2session, as WeChat's
//	douyin  POST /api/apps/v2/jscode2session {"appid","secret","code","anonymous_code"?}
//	        → {"err_no":0,"err_tips":"success","data":{"session_key","openid","anonymous_openid","unionid"}};
//	        err_no 40015 bad appid, 40017 bad secret, 40018 bad or used code, 40014 bad params
//	alipay  POST /gateway.do (form, alipay.system.oauth.token, RSA2-signed)
//	        → {"alipay_system_oauth_token_response":{"user_id","open_id","access_token",…},"sign"}
//	        or {"error_response":{"code","msg","sub_code","sub_msg"},"sign"}
//	        (isv.code-invalid for a bad or used code), every answer signed with
//	        the emulator's key over the response object's JSON text
//	baidu   POST /oauth/jscode2sessionkey (form code, client_id, sk)
//	        → {"openid","session_key"} (a 24-byte key) or an OAuth 2.0
//	        {"error","error_description"} (invalid_grant for a bad or used code)
//
// Alipay: the request signature is verified with alipay_app_public_key_file
// (without it, only its presence is checked); the emulator signs with
// alipay_key_file, or a key generated at start whose public half is served at
// GET /emulator/alipay/public_key (PEM). Baidu: /emulator/encrypt produces
// Baidu's open data (AES-192-CBC; 16 random bytes, a 4-byte length, the data
// and the app_key). A fault's errcode keeps its WeChat meaning where the
// platform has a counterpart (-1 busy, 40029 bad code, 45011 rate limit) and
// is otherwise the platform's own code.
//
// # Emulator-only helper endpoints
//
// These do not exist at WeChat. They stand in for what the WeChat client
// would do on the phone, so a developer or a test can drive a full login.
// Their errors are HTTP 4xx with {"error":"…"}.
//
//	POST /emulator/code {"openid"?, "unionid"?} → {"code","openid"}
//	     mints the code wx.login() would give. Without an openid a new
//	     28-character one is generated; a unionid is remembered for the openid
//	     and returned by jscode2session.
//	POST /emulator/phone_code {"phone_number","country_code"?,"watermark_appid"?}
//	     → {"code"}, the code the getPhoneNumber button would give. The
//	     watermark appid defaults to app_id, or else to the appid of the
//	     access token that redeems it; setting it forges a mismatch.
//	POST /emulator/encrypt {"openid","data":{…},"appid"?}
//	     → {"encrypted_data","iv","raw_data","signature"}, open data as the
//	     WeChat client would hand it to the mini-program: data plus a
//	     watermark, AES-128-CBC/PKCS#7 under the openid's latest session_key,
//	     signature = hex(sha1(raw_data + session_key)).
//	POST /emulator/oauth/code {"appid","openid"?,"unionid"?,"scope"?,"snapshot"?,"nickname"?,"headimgurl"?}
//	     → {"code","openid"}, the code the Allow button would give. scope
//	     defaults to snsapi_base (snsapi_userinfo for a snapshot-page user,
//	     which exists only with that scope); without an openid a new one is
//	     generated.
//	POST /emulator/fault {"path"?,"errcode"?,"times"?,"delay"?,"garbage"?,"status"?}
//	     queues a fault for the next matching API calls (any API path when
//	     path is empty): a delay (which stops when the client gives up), then
//	     an errcode, a non-JSON body, or an HTTP status. DELETE clears them.
//
// # Playground
//
//	GET /emulator/playground
//	     a page that plays a mini-program in the browser: it runs the
//	     project's client/wechat-auth.js (served from package client, so it
//	     is the very file a mini-program copies) with a wx stand-in whose
//	     login mints codes here. It logs in as a chosen openid, calls a
//	     protected site (which must allow the emulator's origin with CORS),
//	     shows each request and answer, the access token's claims and the
//	     identity headers the upstream received, refreshes, replays a spent
//	     refresh token, logs out (everywhere), queues faults, and opens a
//	     page of the site as a mini-program's web-view would (through a
//	     one-time ticket, for a site with a web block). A platform switch
//	     (or ?platform=<name>) gives the client the host object of QQ,
//	     Douyin, Alipay or Baidu instead (qq, tt, my, swan stand-ins
//	     minting codes here; the emulator and the site must serve that
//	     platform). Its assets
//	     are embedded and served under /emulator/playground/; nothing is
//	     fetched from elsewhere.
//
// # State
//
// All state (codes, sessions, access tokens, faults) belongs to one module
// instance and is guarded by a mutex; nothing is global. Expired codes are
// swept at most once per code_ttl, so memory grows only with the number of
// distinct openids and appids seen.
//
// # Caddyfile
//
//	wechat_emulator {
//	    app_id     <appid>
//	    app_secret <secret>
//	    code_ttl   <duration>
//	    token_ttl  <duration>
//	    unionid    <openid> <unionid>
//	    oauth_app  <appid> <secret>
//	    platform   wechat|qq|douyin|alipay|baidu
//	    alipay_app_public_key_file <pem>
//	    alipay_key_file            <pem>
//	}
//
// The directive is ordered before respond. Point the wechat_auth module's
// api_base at the site that serves the emulator.
package emulator
