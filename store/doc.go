// Package store defines the persistence behind wechat_auth: users, login
// sessions, refresh-token families, the revocation list and per-app
// secrets. The Store interface is the contract; store/bolt implements it on
// an embedded bbolt file and store/storetest holds the contract tests every
// backend must pass.
//
// # Apps
//
// Everything lives in a namespace, the app (normally the WeChat app_id).
// Apps share nothing: a user, session, refresh token or secret of one app
// is invisible through another, even when both live in one database, and a
// lookup across the boundary answers ErrNotFound, exactly as if the record
// did not exist. An app comes into being with its first write.
//
// # Users
//
// A user is keyed by (app, openid) and has a numeric ID assigned from 1
// upwards within its app, in creation order. Login is get-or-create for
// the user: concurrent logins of one openid create exactly one user and
// all see its ID. The profile of a NewUser (nickname, avatar, gender) is used only when
// the user is created; a later login never overwrites it. The unionid is
// the exception: a user created without one gets it from the first login
// that knows it. Users are also indexed by unionid; when a login sets
// LinkByUnionID and no user has its openid but one has its unionid, the
// openid is indexed to that user, which is returned as existing. A unionid
// index entry, once made, keeps pointing at the first user that had it.
// UpdateUser applies a partial ProfilePatch (nil fields untouched) and sets
// UpdatedAt.
//
// # Sessions and refresh-token families
//
// A session is one login of one user. It holds the session_key WeChat gave
// with that login, sealed by the caller (the store never interprets it),
// and owns a family of refresh tokens. Session IDs are random and chosen by
// the caller; they are unique across apps. Login finds or creates the user
// and stores a session with its first refresh token in one write, all or
// nothing (a session that cannot be stored leaves no new user behind),
// filling the session's user fields from the user; when the session's
// ExpiresAt is zero it is taken from the token. It is the only way
// sessions and users come into being besides Import, and costs one
// durable commit. A banned user gets no session, and a ban that commits
// while a login runs either refuses it or revokes the session it stored;
// Rotate refuses a banned user's session as it refuses a revoked one.
//
// A refresh token is stored only as the SHA-256 hash of its value. Exactly
// one token of a live session is current (RotatedAt zero). Rotate presents
// a hash:
//
//   - the current token, not expired, session active: the token is marked
//     rotated (RotatedAt, Child), the caller's next token becomes current
//     and the session's ExpiresAt moves to the new token's: Rotated;
//   - a token rotated at most grace ago whose child is still current:
//     nothing changes and the child is returned, so a client that retried
//     a refresh gets the same pair again: Retried;
//   - a token rotated longer than grace ago, or whose child has itself been
//     rotated: someone is replaying an old token, so the whole session is
//     revoked with reason "reuse": Reused (not an error: the write is
//     durable and the caller answers invalid_grant);
//   - an unknown hash (or one of another app): ErrNotFound; a revoked
//     session: ErrRevoked; a token that has expired at now (now is not
//     before ExpiresAt): ErrExpired. These change nothing and are checked
//     in that order.
//
// Concurrent Rotate calls with one hash yield exactly one Rotated; the rest
// see Retried with the winner's token. The caller's next token must carry
// a new hash; it is stored only when the outcome is Rotated.
//
// # Revocation
//
// A session is revoked by RevokeSession (idempotent: a second revocation
// keeps the first RevokedAt and reason), by RevokeUserSessions (every
// active session of a user; it returns only those it revoked now, and
// ErrNotFound for an unknown user) or by Rotate on reuse.
// Revocations(since) lists the app's revoked sessions with RevokedAt at or
// after since, oldest first, so a process can rebuild its in-memory
// revocation list at start and keep it current; a revoked session stays
// listed until it is pruned.
//
// # Pruning
//
// Prune deletes, across all apps, sessions whose ExpiresAt is before now,
// refresh tokens whose ExpiresAt is before now, and revoked sessions whose
// RevokedAt is before revokedBefore; a deleted session takes all its
// refresh tokens with it. It returns the number of records deleted,
// counting each session and each refresh token as one. Users and secrets
// are never pruned. revokedBefore should lie at least one access-token
// lifetime in the past, so that the revocation list outlives every access
// token of a revoked session. A presented token that has been pruned is
// simply unknown (ErrNotFound).
//
// # Secrets
//
// Secret is get-or-create for small per-app values such as a generated
// signing key. The create function runs outside any transaction and may
// run in several concurrent callers, but only one value is ever stored and
// every caller gets that value. When create fails nothing is stored.
//
// # Durability and errors
//
// Every method is safe for concurrent use. A write is durable (on stable
// storage) when its method returns nil, so a token may be issued on the
// strength of it; a crash loses no acknowledged write. A method that
// returns an error has changed nothing (Prune, a maintenance sweep, may
// have deleted some records before failing; each deletion is complete).
// Errors wrap the sentinels ErrNotFound, ErrRevoked, ErrExpired and
// ErrClosed, to be tested with errors.Is. Times are stored to at least
// microsecond precision and come back in UTC. After Close every method,
// Close included, returns ErrClosed.
package store
