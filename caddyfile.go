package wechatauth

import (
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/wxauth/caddy-wechat-auth/internal/handler"
)

func init() {
	httpcaddyfile.RegisterDirective("wechat_auth", parseCaddyfile)
	httpcaddyfile.RegisterDirectiveOrder("wechat_auth", httpcaddyfile.Before, "basic_auth")
	httpcaddyfile.RegisterHandlerDirective("wechat_auth_strip", parseStripCaddyfile)
	httpcaddyfile.RegisterDirectiveOrder("wechat_auth_strip", httpcaddyfile.Before, "map")
}

// parseStripCaddyfile sets up the wechat_auth_strip directive, for a site
// whose wechat_auth blocks sit inside handle or route blocks (the strip
// step each of them adds covers only its block). Syntax:
//
//	wechat_auth_strip [<prefix>]
//
// The prefix defaults to X-WeChat-; give the directive once for every
// header_prefix the site's wechat_auth blocks use. It is ordered before
// map, so it runs before anything else of the site reads request headers.
func parseStripCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	h.Next() // consume the directive name
	s := new(Strip)
	if h.NextArg() {
		s.HeaderPrefix = h.Val()
	}
	if h.NextArg() || h.NextBlock(0) {
		return nil, h.ArgErr()
	}
	if err := s.Validate(); err != nil {
		return nil, h.Errf("wechat_auth_strip: %v", err)
	}
	return s, nil
}

// parseCaddyfile sets up the wechat_auth directive: two routes, a
// wechat_auth_strip step with no matcher, so that forged identity headers
// are removed from every request of the site and not only from those the
// matcher sends to the guard, then the handler under the directive's
// matcher. Among the directive's routes Caddy sorts those with a matcher
// first, so a strip step may run after another wechat_auth handler; it
// keeps the headers that handler set (see Strip).
func parseCaddyfile(h httpcaddyfile.Helper) ([]httpcaddyfile.ConfigValue, error) {
	if !h.Next() {
		return nil, h.ArgErr()
	}
	matcherSet, err := h.ExtractMatcherSet()
	if err != nil {
		return nil, err
	}
	m := new(WeChatAuth)
	if err := m.UnmarshalCaddyfile(h.Dispenser); err != nil {
		return nil, err
	}
	routes := h.NewRoute(nil, &Strip{HeaderPrefix: m.HeaderPrefix})
	return append(routes, h.NewRoute(matcherSet, m)...), nil
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	wechat_auth [<matcher>] {
//	    platform      wechat|qq|douyin|alipay|baidu
//	    app_id        <appid>
//	    app_secret    <secret>
//	    alipay_private_key_file <pem>
//	    alipay_public_key_file  <pem>
//	    api_base      <url>
//	    timeout       <duration>
//	    db            <path>
//	    signing_key   <secret>
//	    signing_key_file <pem> [<kid>]
//	    issuer        <iss>
//	    audience      <aud>
//	    access_ttl    <duration>
//	    refresh_ttl   <duration>
//	    leeway        <duration>
//	    refresh_grace <duration>
//	    token_source  header <name> [<scheme>] | cookie <name> | query <name>
//	    optional
//	    login_path    <path>
//	    refresh_path  <path>
//	    logout_path   <path>
//	    profile_path  <path>
//	    phone_path    <path>
//	    decrypt_path  <path>
//	    jwks_path     <path>
//	    header_prefix <prefix>
//	    errors        json | caddy
//	    link_unionid
//	    login_rate_limit <requests> <window>
//	    avatar_path   <path>
//	    avatar_max_size <size>
//	    content_check on|off
//	    web {
//	        path            <prefix>
//	        cookie          <name>
//	        cookie_domain   <domain>
//	        cookie_secure   auto|on|off
//	        oa_app_id       <appid>
//	        oa_app_secret   <secret>
//	        oa_scope        snsapi_base|snsapi_userinfo
//	        site_app_id     <appid>
//	        site_app_secret <secret>
//	        oauth_base      <url>
//	        callback_url    <url>
//	    }
//	}
//
// A size is a whole number of bytes, optionally followed by KiB or MiB
// (or KB, MB): 2MiB, 512KiB, 1048576.
//
// signing_key_file and token_source may be repeated; every other
// subdirective (and every subdirective of web) may be given once.
func (m *WeChatAuth) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // consume the directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	seen := make(map[string]bool)
	for d.NextBlock(0) {
		name := d.Val()
		if seen[name] && name != "signing_key_file" && name != "token_source" {
			return d.Errf("%s given more than once", name)
		}
		seen[name] = true

		// Subdirectives taking exactly one string.
		if dst := m.stringField(name); dst != nil {
			if !d.NextArg() {
				return d.ArgErr()
			}
			v := d.Val()
			if d.NextArg() {
				return d.ArgErr()
			}
			if !strings.Contains(v, "{") {
				// Placeholders are resolved and checked at provision.
				if err := checkField(name, v); err != nil {
					return d.Errf("%s: %v", name, err)
				}
			}
			*dst = v
			continue
		}
		// Subdirectives taking one duration.
		if dst := m.durationField(name); dst != nil {
			dur, err := parseDuration(d, name)
			if err != nil {
				return err
			}
			*dst = dur
			continue
		}

		switch name {
		case "leeway":
			dur, err := parseDuration(d, name)
			if err != nil {
				return err
			}
			m.Leeway = &dur

		case "refresh_grace":
			dur, err := parseDuration(d, name)
			if err != nil {
				return err
			}
			m.RefreshGrace = &dur

		case "signing_key_file":
			args := d.RemainingArgs()
			if len(args) < 1 || len(args) > 2 {
				return d.ArgErr()
			}
			kf := KeyFile{Path: args[0]}
			if len(args) == 2 {
				kf.KID = args[1]
			}
			m.SigningKeyFiles = append(m.SigningKeyFiles, kf)

		case "token_source":
			args := d.RemainingArgs()
			if len(args) < 2 {
				return d.ArgErr()
			}
			src := handler.TokenSource{From: args[0], Name: args[1]}
			switch {
			case args[0] == handler.SourceHeader && len(args) <= 3:
				if len(args) == 3 {
					src.Scheme = args[2]
				}
			case (args[0] == handler.SourceCookie || args[0] == handler.SourceQuery) && len(args) == 2:
			case args[0] != handler.SourceHeader && args[0] != handler.SourceCookie && args[0] != handler.SourceQuery:
				return d.Errf("token_source: want header, cookie or query, got %q", args[0])
			default:
				return d.ArgErr()
			}
			m.TokenSources = append(m.TokenSources, src)

		case "optional":
			if d.NextArg() {
				return d.ArgErr()
			}
			m.Optional = true

		case "link_unionid":
			if d.NextArg() {
				return d.ArgErr()
			}
			m.LinkUnionID = true

		case "login_rate_limit":
			args := d.RemainingArgs()
			if len(args) != 2 {
				return d.ArgErr()
			}
			n, err := strconv.Atoi(args[0])
			if err != nil || n < 1 {
				return d.Errf("login_rate_limit: want a positive number of requests, got %q", args[0])
			}
			window, err := caddy.ParseDuration(args[1])
			if err != nil || window <= 0 {
				return d.Errf("login_rate_limit: want a positive window such as 1m, got %q", args[1])
			}
			m.LoginRateLimit = &LoginRateLimit{Requests: n, Window: caddy.Duration(window)}

		case "avatar_max_size":
			if !d.NextArg() {
				return d.ArgErr()
			}
			n, err := handler.ParseSize(d.Val())
			if err != nil {
				return d.Errf("avatar_max_size: %v", err)
			}
			if n < handler.MinAvatarMaxSize || n > handler.MaxAvatarMaxSize {
				return d.Errf("avatar_max_size: want %s to %s, got %s", handler.FormatSize(handler.MinAvatarMaxSize), handler.FormatSize(handler.MaxAvatarMaxSize), d.Val())
			}
			if d.NextArg() {
				return d.ArgErr()
			}
			m.AvatarMaxSize = n

		case "content_check":
			if !d.NextArg() {
				return d.ArgErr()
			}
			switch d.Val() {
			case "on":
				m.ContentCheck = true
			case "off":
				m.ContentCheck = false
			default:
				return d.Errf("content_check: want on or off, got %q", d.Val())
			}
			if d.NextArg() {
				return d.ArgErr()
			}
		case "web":
			w, err := unmarshalWeb(d)
			if err != nil {
				return err
			}
			m.Web = w

		case "errors":
			if !d.NextArg() {
				return d.ArgErr()
			}
			m.Errors = d.Val()
			if d.NextArg() {
				return d.ArgErr()
			}

		default:
			return d.Errf("unknown subdirective %q", name)
		}
	}
	if err := m.Validate(); err != nil {
		return d.Errf("%v", err)
	}
	return nil
}

// stringField returns the field a one-string subdirective sets.
func (m *WeChatAuth) stringField(name string) *string {
	switch name {
	case "app_id":
		return &m.AppID
	case "app_secret":
		return &m.AppSecret
	case "platform":
		return &m.Platform
	case "alipay_private_key_file":
		return &m.AlipayPrivateKeyFile
	case "alipay_public_key_file":
		return &m.AlipayPublicKeyFile
	case "api_base":
		return &m.APIBase
	case "db":
		return &m.DB
	case "signing_key":
		return &m.SigningKey
	case "issuer":
		return &m.Issuer
	case "audience":
		return &m.Audience
	case "login_path":
		return &m.LoginPath
	case "refresh_path":
		return &m.RefreshPath
	case "logout_path":
		return &m.LogoutPath
	case "profile_path":
		return &m.ProfilePath
	case "phone_path":
		return &m.PhonePath
	case "decrypt_path":
		return &m.DecryptPath
	case "jwks_path":
		return &m.JWKSPath
	case "avatar_path":
		return &m.AvatarPath
	case "header_prefix":
		return &m.HeaderPrefix
	}
	return nil
}

// durationField returns the field a one-duration subdirective sets.
func (m *WeChatAuth) durationField(name string) *caddy.Duration {
	switch name {
	case "timeout":
		return &m.Timeout
	case "access_ttl":
		return &m.AccessTTL
	case "refresh_ttl":
		return &m.RefreshTTL
	}
	return nil
}

// parseDuration reads the one non-negative duration argument of the
// subdirective name.
func parseDuration(d *caddyfile.Dispenser, name string) (caddy.Duration, error) {
	if !d.NextArg() {
		return 0, d.ArgErr()
	}
	dur, err := caddy.ParseDuration(d.Val())
	if err != nil {
		return 0, d.Errf("%s: bad duration %q: %v", name, d.Val(), err)
	}
	if dur < 0 {
		return 0, d.Errf("%s: must not be negative", name)
	}
	if d.NextArg() {
		return 0, d.ArgErr()
	}
	return caddy.Duration(dur), nil
}

// Interface guards
var (
	_ caddyfile.Unmarshaler = (*WeChatAuth)(nil)
)
