package bolt

// UNFINISHED: these methods of store.Store are being written on other
// branches and answer an error until they land. This file is deleted when
// the last of them is implemented.

import (
	"context"
	"errors"
	"time"

	"github.com/wxauth/caddy-wechat-auth/store"
)

var errPending = errors.New("bolt: not implemented yet")

func (s *Store) UserByPhone(ctx context.Context, app, phone string) (store.User, error) {
	return store.User{}, errPending
}

func (s *Store) UserSessions(ctx context.Context, app string, userID uint64) ([]store.Session, error) {
	return nil, errPending
}

func (s *Store) Ban(ctx context.Context, app string, userID uint64, reason string, now time.Time) (store.User, []store.Session, error) {
	return store.User{}, nil, errPending
}

func (s *Store) Unban(ctx context.Context, app string, userID uint64, now time.Time) (store.User, error) {
	return store.User{}, errPending
}

func (s *Store) Stats(ctx context.Context, app string, now time.Time) (store.Stats, error) {
	return store.Stats{}, errPending
}
