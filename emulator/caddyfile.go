package emulator

import (
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("wechat_emulator", parseCaddyfile)
	httpcaddyfile.RegisterDirectiveOrder("wechat_emulator", httpcaddyfile.Before, "respond")
}

// parseCaddyfile sets up the handler from Caddyfile tokens.
func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	e := new(Emulator)
	if err := e.UnmarshalCaddyfile(h.Dispenser); err != nil {
		return nil, err
	}
	return e, nil
}

// UnmarshalCaddyfile sets up the emulator from Caddyfile tokens. Syntax:
//
//	wechat_emulator [<matcher>] {
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
// unionid may be repeated, once per openid. oauth_app may be repeated, once
// per appid: it names an Official Account or Open Platform website app the
// web OAuth pages and API serve, and the secret /sns/oauth2/access_token
// expects (a placeholder such as {env.OA_SECRET} is resolved at provision);
// without any oauth_app every appid and secret is accepted. Every subdirective is optional, and so is the block: a bare
// `wechat_emulator` accepts any appid and secret. app_id and app_secret may
// be placeholders such as {env.WECHAT_APPID}, resolved at provision.
// Durations use Caddy's syntax (5m, 2h, 1d).
func (e *Emulator) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // consume directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	seen := make(map[string]bool)
	for d.NextBlock(0) {
		sub := d.Val()
		if seen[sub] && sub != "unionid" && sub != "oauth_app" {
			return d.Errf("%s specified more than once", sub)
		}
		seen[sub] = true
		switch sub {
		case "app_id":
			if !d.AllArgs(&e.AppID) {
				return d.ArgErr()
			}
			if e.AppID == "" {
				return d.Err("app_id must not be empty")
			}
		case "app_secret":
			if !d.AllArgs(&e.AppSecret) {
				return d.ArgErr()
			}
			if e.AppSecret == "" {
				return d.Err("app_secret must not be empty")
			}
		case "code_ttl":
			dur, err := parseTTL(d)
			if err != nil {
				return err
			}
			e.CodeTTL = dur
		case "token_ttl":
			dur, err := parseTTL(d)
			if err != nil {
				return err
			}
			if time.Duration(dur) < time.Second {
				return d.Errf("token_ttl must be at least 1s, got %s", time.Duration(dur))
			}
			e.TokenTTL = dur
		case "unionid":
			var openid, unionid string
			if !d.AllArgs(&openid, &unionid) {
				return d.ArgErr()
			}
			if !validID(openid) || !validID(unionid) {
				return d.Errf("unionid: openid and unionid must be 1 to 128 characters of A-Z a-z 0-9 - _")
			}
			if _, dup := e.UnionIDs[openid]; dup {
				return d.Errf("unionid for openid %q given twice", openid)
			}
			if e.UnionIDs == nil {
				e.UnionIDs = make(map[string]string)
			}
			e.UnionIDs[openid] = unionid
		case "oauth_app":
			if err := e.unmarshalOAuthApp(d); err != nil {
				return err
			}
		case "platform", "alipay_app_public_key_file", "alipay_key_file":
			var v string
			if !d.AllArgs(&v) || v == "" {
				return d.ArgErr()
			}
			switch sub {
			case "platform":
				e.Platform = v
			case "alipay_app_public_key_file":
				e.AlipayAppPublicKeyFile = v
			default:
				e.AlipayKeyFile = v
			}
		default:
			return d.Errf("unrecognized wechat_emulator subdirective '%s'", sub)
		}
	}
	if err := e.validatePlatform(); err != nil {
		return d.Errf("%v", err)
	}
	return nil
}

// unmarshalOAuthApp reads the arguments of one oauth_app subdirective.
func (e *Emulator) unmarshalOAuthApp(d *caddyfile.Dispenser) error {
	var appid, secret string
	if !d.AllArgs(&appid, &secret) {
		return d.ArgErr()
	}
	if !validID(appid) {
		return d.Errf("oauth_app: appid must be 1 to 128 characters of A-Z a-z 0-9 - _")
	}
	if secret == "" {
		return d.Errf("oauth_app %s: secret must not be empty", appid)
	}
	if _, dup := e.OAuthApps[appid]; dup {
		return d.Errf("oauth_app %s given twice", appid)
	}
	if e.OAuthApps == nil {
		e.OAuthApps = make(map[string]string)
	}
	e.OAuthApps[appid] = secret
	return nil
}

// parseTTL reads the single positive duration argument of the current
// subdirective.
func parseTTL(d *caddyfile.Dispenser) (caddy.Duration, error) {
	sub := d.Val()
	var raw string
	if !d.AllArgs(&raw) {
		return 0, d.ArgErr()
	}
	dur, err := caddy.ParseDuration(raw)
	if err != nil {
		return 0, d.Errf("parsing %s: %v", sub, err)
	}
	if dur <= 0 {
		return 0, d.Errf("%s must be positive, got %s", sub, raw)
	}
	return caddy.Duration(dur), nil
}

// Interface guards
var (
	_ caddyfile.Unmarshaler = (*Emulator)(nil)
)
