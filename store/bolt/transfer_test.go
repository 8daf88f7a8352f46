package bolt

import (
	"testing"

	"github.com/wxauth/caddy-wechat-auth/store"
	"github.com/wxauth/caddy-wechat-auth/store/storetest"
)

// TestContractShared runs the cross-instance cases. Only one process can
// open a bbolt file, so the two "instances" are the same store.
func TestContractShared(t *testing.T) {
	storetest.RunShared(t, func(t *testing.T) (store.Store, store.Store) {
		s := openTemp(t)
		return s, s
	})
}
