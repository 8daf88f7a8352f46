package wechatauth

import (
	"strings"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// unmarshalWeb parses the web block, the current token being "web":
//
//	web {
//	    path            <prefix>
//	    cookie          <name>
//	    cookie_domain   <domain>
//	    cookie_secure   auto|on|off
//	    oa_app_id       <appid>
//	    oa_app_secret   <secret>
//	    oa_scope        snsapi_base|snsapi_userinfo
//	    site_app_id     <appid>
//	    site_app_secret <secret>
//	    oauth_base      <url>
//	    callback_url    <url>
//	}
//
// Every subdirective takes one value and may be given once; "web" alone
// (or with an empty block) turns browser sessions on with the defaults.
func unmarshalWeb(d *caddyfile.Dispenser) (*WebConfig, error) {
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	w := new(WebConfig)
	fields := make(map[string]*string)
	for _, f := range w.fields() {
		fields[f.name] = f.v
	}
	seen := make(map[string]bool)
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		name := d.Val()
		dst, ok := fields[name]
		if !ok {
			return nil, d.Errf("web: unknown subdirective %q", name)
		}
		if seen[name] {
			return nil, d.Errf("web: %s given more than once", name)
		}
		seen[name] = true
		if !d.NextArg() {
			return nil, d.ArgErr()
		}
		v := d.Val()
		if d.NextArg() {
			return nil, d.ArgErr()
		}
		if v == "" {
			return nil, d.Errf("web: %s: empty value", name)
		}
		if !strings.Contains(v, "{") {
			// Placeholders are resolved and checked at provision.
			if err := checkWebField(name, v); err != nil {
				return nil, d.Errf("web: %s: %v", name, err)
			}
		}
		*dst = v
	}
	if err := w.validate(); err != nil {
		return nil, d.Errf("%v", err)
	}
	return w, nil
}
