// Package postgres implements store.Store on PostgreSQL through a pgx
// connection pool, so that several wechat_auth processes (Caddy instances
// behind one load balancer) share users, sessions, keys and revocations.
//
// # Opening
//
// Open takes a postgres:// or postgresql:// URL (IsDSN tells one from a
// bbolt path), checks that the server answers and migrates the schema.
// Errors name the server's host and port, never the password. Every call
// runs with a deadline (Options.Timeout, default 5s); a connection that
// cannot be made, is lost or runs out of time is reported as
// store.ErrUnavailable, so callers can answer "try again later"; a missing
// row is store.ErrNotFound. One process should open a DSN once and share
// the *Store.
//
// # Schema
//
// The numbered files in migrations/ are applied in order at Open, inside
// one transaction holding an advisory lock keyed by the current schema, and
// recorded in wechat_auth_schema_migrations: processes starting at once
// apply each migration once, and a schema newer than the build is refused.
// Tables are prefixed wechat_auth_ and keyed by app_id; search_path in the
// DSN puts them in a schema of their own.
//
//	wechat_auth_apps             app_id -> last user id handed out
//	wechat_auth_id_reservations  (app_id, openid) -> id reserved for a user being created
//	wechat_auth_users            (app_id, id) -> profile, ban
//	wechat_auth_openids          (app_id, openid) -> user id (own and linked openids)
//	wechat_auth_unionids         (app_id, unionid) -> first user that had it
//	wechat_auth_sessions         (app_id, id) -> user, sealed session_key, times, revocation
//	wechat_auth_refresh_tokens   (app_id, SHA-256 hash) -> session, times, child, access token id
//	wechat_auth_secrets          (app_id, name) -> value (first writer wins)
//	wechat_auth_revocations      seq (bigserial) -> app, session, user, time, reason
//
// # Consistency across processes
//
// Uniqueness is the database's: primary keys and ON CONFLICT, never a read
// followed by a write. Each method that writes is one transaction (most of
// them one statement), durable at commit (synchronous_commit as the server
// is configured). A login of a new user reserves the app's next id for its
// openid in a short transaction committed without waiting for the disk
// (the login's own commit flushes the log past it), then creates the user,
// session and token in one statement; concurrent first logins of one
// openid share the reservation and all but one start over as returning
// logins, so one user is created and no id is spent. Rotate locks the
// presented token and its session, so concurrent rotations of one token
// run one after another: one rotates, the others see a retry (or reuse).
//
// # Revocations
//
// Every revocation (logout, logout_all, reuse, ban, admin, and imported
// revoked sessions) appends a row to wechat_auth_revocations in the same
// transaction and sends NOTIFY wechat_auth_revocations, which PostgreSQL
// delivers at commit. A revocation is stamped with the database's clock
// (clock_timestamp()), or the caller's time if that is later, so every
// instance counts how long to refuse a session's tokens from one clock.
// WatchRevocations (store.RevocationWatcher) keeps a dedicated connection,
// not a pooled one, in LISTEN with application_name wechat_auth_listener,
// reconnecting after a loss with a backoff of 250ms up to 2s; it reads the
// feed by sequence number after every notification, after every
// (re)connect and every Options.PollInterval (default 2s), so a lost
// notification delays a revocation by that much at most. A sequence number
// taken by a transaction that commits after a later one is read again
// until it appears, or until reads that work have looked for it in vain
// for a minute (a rolled-back transaction leaves a hole for good); time
// while reads fail does not count. A watcher that starts on an empty feed
// looks the same way for the numbers just below the sequence's current
// value, which a transaction in flight may hold. After reads have failed
// for longer than a minute, the watcher asks its caller to reload its
// revocation lists from the sessions table. Prune drops feed rows older
// than its revokedBefore.
package postgres
