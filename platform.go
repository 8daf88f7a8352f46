package wechatauth

import (
	"fmt"
	"os"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/wxauth/caddy-wechat-auth/internal/handler"
	"github.com/wxauth/caddy-wechat-auth/internal/platform"
	"github.com/wxauth/caddy-wechat-auth/internal/wechat"
)

// provisionExchange builds the platform's code exchange: for WeChat the
// WeChat client (which also serves the phone-number API), for the others
// their exchanger, with Alipay's keys read from their files.
func (m *WeChatAuth) provisionExchange(repl *caddy.Replacer, apiBase, appID, secret string) error {
	cfg := platform.Config{
		Platform:  m.Platform,
		BaseURL:   apiBase,
		AppID:     appID,
		AppSecret: secret,
		Timeout:   time.Duration(m.Timeout),
		Logger:    m.logger.Named(m.Platform),
		Observe:   observeWeChat,
	}
	if m.Platform == platform.WeChat {
		wx, err := wechat.New(wechat.Config{
			BaseURL:   apiBase,
			AppID:     appID,
			AppSecret: secret,
			Timeout:   time.Duration(m.Timeout),
			Logger:    m.logger.Named("wechat"),
			Observe:   observeWeChat,
		})
		if err != nil {
			return fmt.Errorf("setting up the WeChat client: %w", err)
		}
		m.wx, cfg.WeChat = wx, wx
	}
	if m.Platform == platform.Alipay {
		path := repl.ReplaceKnown(m.AlipayPrivateKeyFile, "")
		data, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("alipay_private_key_file %s: reading: %w", path, err)
		}
		if cfg.AlipayPrivateKey, err = platform.ParseRSAPrivateKey(data); err != nil {
			return fmt.Errorf("alipay_private_key_file %s: %w", path, err)
		}
		path = repl.ReplaceKnown(m.AlipayPublicKeyFile, "")
		if data, err = os.ReadFile(path); err != nil {
			return fmt.Errorf("alipay_public_key_file %s: reading: %w", path, err)
		}
		if cfg.AlipayPublicKey, err = platform.ParseRSAPublicKey(data); err != nil {
			return fmt.Errorf("alipay_public_key_file %s: %w", path, err)
		}
	}
	x, err := platform.New(cfg)
	if err != nil {
		return fmt.Errorf("setting up the %s code exchange: %w", platform.DisplayName(m.Platform), err)
	}
	m.exch = x
	return nil
}

// phoneClient is the WeChat client for the phone-number API, or nil on
// the platforms that have none.
func (m *WeChatAuth) phoneClient() handler.WeChat {
	if m.wx == nil {
		return nil
	}
	return m.wx
}
