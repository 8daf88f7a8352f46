package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// Secret returns the app's secret called name, storing the value of create
// when there is none. create runs outside any transaction; when several
// callers race, in one process or several, each may run create but the
// first value inserted wins (INSERT ... ON CONFLICT DO NOTHING, then a
// read) and every caller gets it. A create error is returned wrapped and
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
	op := fmt.Sprintf("getting secret %q", name)
	var val []byte
	err := s.call(ctx, op, func(ctx context.Context) error {
		err := s.pool.QueryRow(ctx, `SELECT value FROM wechat_auth_secrets WHERE app_id = $1 AND name = $2`, app, name).Scan(&val)
		if errors.Is(err, pgx.ErrNoRows) {
			val = nil
			return nil
		}
		return err
	})
	if err != nil {
		return nil, err
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
	err = s.call(ctx, fmt.Sprintf("storing secret %q", name), func(ctx context.Context) error {
		// When the insert does nothing, the winner's row was committed
		// before it, so the read that follows (a new snapshot) sees it.
		err := s.pool.QueryRow(ctx, `INSERT INTO wechat_auth_secrets (app_id, name, value) VALUES ($1, $2, $3)
			ON CONFLICT DO NOTHING RETURNING value`, app, name, fresh).Scan(&val)
		if !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		return s.pool.QueryRow(ctx, `SELECT value FROM wechat_auth_secrets WHERE app_id = $1 AND name = $2`, app, name).Scan(&val)
	})
	if err != nil {
		return nil, err
	}
	return val, nil
}

// ReplaceSecret stores next as the app's secret called name when the
// stored value is still old, and returns what is stored afterwards: next,
// or the value another caller stored first (then nothing is written). A
// missing secret counts as old only when old is empty; otherwise it is
// ErrNotFound.
func (s *Store) ReplaceSecret(ctx context.Context, app, name string, old, next []byte) ([]byte, error) {
	switch {
	case !validKey(app):
		return nil, errors.New("replacing secret: invalid app")
	case !validKey(name):
		return nil, errors.New("replacing secret: invalid name")
	case len(next) == 0:
		return nil, errors.New("replacing secret: empty value")
	}
	next = append([]byte(nil), next...)
	var val []byte
	err := s.inTx(ctx, fmt.Sprintf("replacing secret %q", name), func(ctx context.Context, tx pgx.Tx) error {
		if len(old) == 0 {
			tag, err := tx.Exec(ctx, `INSERT INTO wechat_auth_secrets (app_id, name, value) VALUES ($1, $2, $3)
				ON CONFLICT DO NOTHING`, app, name, next)
			if err != nil {
				return err
			}
			if tag.RowsAffected() == 1 {
				val = next
				return nil
			}
			return tx.QueryRow(ctx, `SELECT value FROM wechat_auth_secrets WHERE app_id = $1 AND name = $2`, app, name).Scan(&val)
		}
		var cur []byte
		err := tx.QueryRow(ctx, `SELECT value FROM wechat_auth_secrets WHERE app_id = $1 AND name = $2 FOR UPDATE`, app, name).Scan(&cur)
		if err != nil {
			return err
		}
		if !bytes.Equal(cur, old) {
			val = cur
			return nil
		}
		if _, err := tx.Exec(ctx, `UPDATE wechat_auth_secrets SET value = $3 WHERE app_id = $1 AND name = $2`, app, name, next); err != nil {
			return err
		}
		val = next
		return nil
	})
	if err != nil {
		return nil, err
	}
	return val, nil
}
