package wechatauth

import (
	"context"
	"fmt"
	"os"

	"github.com/caddyserver/caddy/v2"
	"github.com/wxauth/caddy-wechat-auth/internal/handler"
	"github.com/wxauth/caddy-wechat-auth/internal/token"
)

// loadKeys builds the signing keys: the HS256 secret, the PEM files, or
// the generated Ed25519 key kept in the store, sealed with the app secret.
func (m *WeChatAuth) loadKeys(ctx context.Context, repl *caddy.Replacer, db *sharedDB, sealer *handler.Sealer, appID string) ([]*token.Key, error) {
	if m.SigningKey != "" {
		secret := repl.ReplaceKnown(m.SigningKey, "")
		if err := checkField("signing_key", secret); err != nil {
			return nil, fmt.Errorf("signing_key: %w", err)
		}
		k, err := token.NewHMACKey([]byte(secret), "")
		if err != nil {
			return nil, fmt.Errorf("signing_key: %w", err)
		}
		return []*token.Key{k}, nil
	}
	if len(m.SigningKeyFiles) > 0 {
		keys := make([]*token.Key, 0, len(m.SigningKeyFiles))
		for i, f := range m.SigningKeyFiles {
			path := repl.ReplaceKnown(f.Path, "")
			data, err := os.ReadFile(path)
			if err != nil {
				return nil, fmt.Errorf("signing_key_file %s: reading: %w", path, err)
			}
			k, err := token.ParsePEM(data, f.KID)
			if err != nil {
				return nil, fmt.Errorf("signing_key_file %s: %w", path, err)
			}
			if i == 0 && !k.CanSign() {
				return nil, fmt.Errorf("signing_key_file %s: the first key signs, so it must be a private key", path)
			}
			keys = append(keys, k)
		}
		return keys, nil
	}
	seed, err := db.generatedSecret(ctx, sealer, appID, handler.SecretSigningKey, m.logger)
	if err != nil {
		return nil, fmt.Errorf("loading the generated signing key: %w", err)
	}
	k, err := token.NewEd25519Key(seed, "")
	if err != nil {
		return nil, fmt.Errorf("loading the generated signing key: %w", err)
	}
	return []*token.Key{k}, nil
}
