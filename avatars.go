package wechatauth

import (
	"fmt"

	"github.com/caddyserver/caddy/v2"

	"github.com/wxauth/caddy-wechat-auth/internal/avatar"
)

// decoderPool holds the one avatar processor of this process, shared by
// every wechat_auth handler of every config (a reload takes its reference
// before the old config lets go of its own). Its decode slots bound the
// memory that avatar uploads can take at once, whatever the number of
// sites or apps.
var decoderPool = caddy.NewUsagePool()

// decoderKey is the pool key of the shared processor.
const decoderKey = "avatar_decoder"

// pooledDecoder is the shared processor; it holds no resources to free.
type pooledDecoder struct{ p *avatar.Processor }

// Destruct does nothing: the processor is only a semaphore.
func (*pooledDecoder) Destruct() error { return nil }

// acquireDecoder returns the process's avatar processor. The caller
// releases it with decoderPool.Delete(decoderKey).
func acquireDecoder() (*avatar.Processor, error) {
	v, _, err := decoderPool.LoadOrNew(decoderKey, func() (caddy.Destructor, error) {
		return &pooledDecoder{p: avatar.NewProcessor(avatar.DefaultConcurrency)}, nil
	})
	if err != nil {
		return nil, fmt.Errorf("avatar decoder: %w", err)
	}
	return v.(*pooledDecoder).p, nil
}

// Interface guards
var (
	_ caddy.Destructor = (*pooledDecoder)(nil)
)
