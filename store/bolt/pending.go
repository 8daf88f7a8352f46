package bolt

// UNFINISHED: these methods of store.Store are being written on other
// branches and answer an error until they land. This file is deleted when
// the last of them is implemented.

import (
	"context"
	"errors"

	"github.com/wxauth/caddy-wechat-auth/store"
)

var errPending = errors.New("bolt: not implemented yet")

func (s *Store) Export(ctx context.Context, app string, fn func(store.Record) error) error {
	return errPending
}

func (s *Store) Import(ctx context.Context, app string, recs []store.Record) error {
	return errPending
}
