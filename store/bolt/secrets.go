package bolt

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"go.etcd.io/bbolt"

	"github.com/wxauth/caddy-wechat-auth/store"
)

// Secret returns the app's secret called name, storing the value of create
// when there is none. create runs outside any transaction; when several
// callers race, each may run create but only the first value committed is
// kept and every caller gets it. A create error is returned wrapped and
// nothing is stored; so is an empty value.
func (s *Store) Secret(ctx context.Context, app, name string, create func() ([]byte, error)) ([]byte, error) {
	switch {
	case !validKey(app):
		return nil, errors.New("getting secret: invalid app")
	case !validKey(name):
		return nil, errors.New("getting secret: invalid name")
	case create == nil:
		return nil, errors.New("getting secret: nil create function")
	}
	if err := s.enter(ctx); err != nil {
		return nil, fmt.Errorf("getting secret %q: %w", name, err)
	}
	defer s.mu.RUnlock()

	var val []byte
	err := s.view(func(tx *bbolt.Tx) error {
		b, err := readApp(tx, app)
		if err != nil || b == nil {
			return err
		}
		if v := b.secrets.Get([]byte(name)); v != nil {
			val = append([]byte(nil), v...)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("getting secret %q: %w", name, err)
	}
	if val != nil {
		return val, nil
	}

	fresh, err := create()
	if err != nil {
		return nil, fmt.Errorf("creating secret %q: %w", name, err)
	}
	if len(fresh) == 0 {
		return nil, fmt.Errorf("creating secret %q: create returned an empty value", name)
	}
	fresh = append([]byte(nil), fresh...)
	err = s.write(func(tx *bbolt.Tx) error {
		val = nil
		b, err := writeApp(tx, app)
		if err != nil {
			return err
		}
		if v := b.secrets.Get([]byte(name)); v != nil {
			val = append([]byte(nil), v...)
			return nil
		}
		if err := b.secrets.Put([]byte(name), fresh); err != nil {
			return fmt.Errorf("writing secret: %w", err)
		}
		val = fresh
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("storing secret %q: %w", name, err)
	}
	return val, nil
}

// ReplaceSecret stores next as the app's secret called name when the
// stored value is still old, and returns what is stored afterwards: next,
// or the value another caller stored first (then nothing is written). A
// missing secret counts as old only when old is empty.
func (s *Store) ReplaceSecret(ctx context.Context, app, name string, old, next []byte) ([]byte, error) {
	switch {
	case !validKey(app):
		return nil, errors.New("replacing secret: invalid app")
	case !validKey(name):
		return nil, errors.New("replacing secret: invalid name")
	case len(next) == 0:
		return nil, errors.New("replacing secret: empty value")
	}
	if err := s.enter(ctx); err != nil {
		return nil, fmt.Errorf("replacing secret %q: %w", name, err)
	}
	defer s.mu.RUnlock()
	next = append([]byte(nil), next...)
	var val []byte
	err := s.write(func(tx *bbolt.Tx) error {
		val = nil
		b, err := writeApp(tx, app)
		if err != nil {
			return err
		}
		if cur := b.secrets.Get([]byte(name)); !bytes.Equal(cur, old) {
			val = append([]byte(nil), cur...)
			if cur == nil {
				return store.ErrNotFound
			}
			return nil
		}
		if err := b.secrets.Put([]byte(name), next); err != nil {
			return fmt.Errorf("writing secret: %w", err)
		}
		val = next
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("replacing secret %q: %w", name, err)
	}
	return val, nil
}
