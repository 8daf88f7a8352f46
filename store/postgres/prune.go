package postgres

import (
	"context"
	"fmt"
	"time"
)

// pruneChunk bounds the sessions (and, separately, the tokens) one Prune
// statement deletes, so a large sweep never holds many row locks for long.
const pruneChunk = 1000

// Prune deletes, across all apps, sessions and refresh tokens that expired
// before now and sessions revoked before revokedBefore (with their
// tokens), and returns how many records it deleted (sessions plus tokens).
// It also drops revocation feed entries older than revokedBefore. It
// commits in chunks; if it fails or ctx is cancelled part-way, the chunks
// already committed stay deleted (each deletion is complete) and the count
// says how many. Rows locked by a call in flight are left for the next
// sweep.
func (s *Store) Prune(ctx context.Context, now, revokedBefore time.Time) (int, error) {
	now, revokedBefore = norm(now), norm(revokedBefore)
	total := 0
	steps := []struct {
		what string
		sql  string
		args []any
	}{
		{"sessions", `WITH doomed AS (
				SELECT app_id, id FROM wechat_auth_sessions
				WHERE expires_at < $1 OR revoked_at < $2
				LIMIT $3 FOR UPDATE SKIP LOCKED
			), tokens AS (
				DELETE FROM wechat_auth_refresh_tokens t USING doomed d
				WHERE t.app_id = d.app_id AND t.session_id = d.id RETURNING 1
			), sessions AS (
				DELETE FROM wechat_auth_sessions s USING doomed d
				WHERE s.app_id = d.app_id AND s.id = d.id RETURNING 1
			)
			SELECT (SELECT count(*) FROM tokens) + (SELECT count(*) FROM sessions)`,
			[]any{now, revokedBefore, pruneChunk}},
		{"refresh tokens", `WITH doomed AS (
				SELECT app_id, hash FROM wechat_auth_refresh_tokens
				WHERE expires_at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED
			), tokens AS (
				DELETE FROM wechat_auth_refresh_tokens t USING doomed d
				WHERE t.app_id = d.app_id AND t.hash = d.hash RETURNING 1
			)
			SELECT count(*) FROM tokens`,
			[]any{now, pruneChunk}},
	}
	for _, st := range steps {
		for {
			var n int
			err := s.call(ctx, "pruning "+st.what, func(ctx context.Context) error {
				return s.pool.QueryRow(ctx, st.sql, st.args...).Scan(&n)
			})
			if err != nil {
				return total, fmt.Errorf("pruning store: %w", err)
			}
			total += n
			if n == 0 {
				break
			}
		}
	}
	err := s.call(ctx, "pruning the revocation feed", func(ctx context.Context) error {
		_, err := s.pool.Exec(ctx, `DELETE FROM wechat_auth_revocations WHERE revoked_at < $1`, revokedBefore)
		return err
	})
	if err != nil {
		return total, fmt.Errorf("pruning store: %w", err)
	}
	return total, nil
}
