// Package bolt implements store.Store on one bbolt file: the embedded
// default storage of wechat_auth. It needs no server, survives a kill -9 at
// any moment, and keeps login, lookup and rotation cost independent of the
// number of users (every operation is a few B+tree lookups in the app's own
// buckets).
//
// # Opening
//
// Open takes an exclusive lock on the file, waiting at most
// Options.Timeout (default 5s) before failing with ErrLocked, so a second
// opener (another process, or a config reload that did not hand the store
// over) fails fast instead of hanging. One process opens a file once and
// shares the *Store. The file
// is created with mode 0600 and its directory with 0700.
//
// # Durability and concurrency
//
// A method returns only after its transaction has been committed and
// fsynced (unless Options.NoSync, which is for tests). Writes that run
// concurrently in a server (Login, Rotate, revocations,
// UpdateUser, Secret) go through bbolt's db.Batch when another write is in
// flight, so concurrent commits share one fsync; a lone write commits at
// once with db.Update and pays no batch delay. Batch may run a write
// function more than once, so every write function confines its effects to
// its transaction, resets its results at the start of each run, and
// returns an error only for failures that must roll back; outcomes that
// write nothing (not found, expired, revoked, duplicate) are results, not
// errors, so they neither abort a batch nor force a solo re-run. Reads use
// db.View and do not wait for writers. Close waits for calls in flight.
//
// # Layout (format version 2)
//
// Top level:
//
//	meta/format            uvarint format version (2); Open upgrades a
//	                       version 1 file in place (building the buckets
//	                       version 2 added) and refuses newer ones
//	apps/<app>/            one bucket per app, created by its first write
//
// Inside each app bucket:
//
//	users/          id (8 bytes BE) -> user record; the bucket's sequence is
//	                the last id handed out (NextSequence: 1, 2, 3, ...)
//	openid/         openid -> id
//	unionid/        unionid -> id (first user that had the unionid)
//	sessions/       sid -> session record
//	user_sessions/  id (8) || sid -> empty; active (unrevoked) sessions only
//	refresh/        SHA-256 hash (32) -> refresh-token record
//	session_tokens/ len(sid) (1) || sid || hash (32) -> empty
//	revoked/        time (12) || sid -> user id (8); one per revoked session
//	exp_sessions/   time (12) || sid -> empty; keyed by session ExpiresAt
//	exp_tokens/     time (12) || hash (32) -> empty; keyed by token ExpiresAt
//	secrets/        name -> value
//	phone/          uvarint len(phone) || phone || id (8) -> empty; users
//	                with a non-empty phone (version 2)
//	user_all_sessions/ id (8) || sid -> empty; every stored session,
//	                revoked ones included (version 2)
//	counters/       "users" -> number of users, 8 bytes BE (version 2)
//
// A time key is Unix seconds with the sign bit flipped (8 bytes BE) then
// nanoseconds (4 bytes BE), so keys sort in time order: Revocations(since)
// is a seek and a forward scan, and Prune walks exp_sessions, revoked and
// exp_tokens from the start up to its cut-off instead of scanning records.
//
// Keys (app, openid, unionid, sid, secret name) are 1 to 255 bytes.
//
// # Records
//
// Records are a versioned binary encoding: a uvarint record version (1 or 2),
// then the fields in a fixed order. Strings and byte slices are a uvarint
// length and the bytes; integers are (u)varints; a time is a varint of Unix
// seconds and a uvarint of nanoseconds (the zero time round-trips); a hash
// is 32 raw bytes. Fields that a key or the enclosing bucket already gives
// (user id, sid, token hash, app) are not repeated. Times are stored and
// returned in UTC.
//
//	user:    version openid unionid nickname avatar_url gender phone
//	         created_at updated_at [v2: banned ban_reason]
//	session: version user_id openid unionid sealed_session_key created_at
//	         expires_at revoked_at revoke_reason [v2: refreshed_at]
//	token:   version session_id issued_at expires_at rotated_at child
//	         access_id access_issued_at
//
// A record that does not decode is reported as an error wrapping a
// "malformed record" error; it never panics and is never mistaken for a
// missing record.
//
// # Invariants
//
// Every write keeps these in the same transaction as the records:
//
//   - openid/ and unionid/ entries point at existing users; each user's
//     OpenID has an entry pointing at it.
//   - exp_sessions/ holds exactly one entry per session, at its current
//     ExpiresAt; a rotation moves it.
//   - user_sessions/ holds exactly the sessions with a zero RevokedAt;
//     user_all_sessions/ holds every session.
//   - phone/ holds exactly one entry per user with a non-empty Phone, and
//     counters/users is the number of users (putUser keeps both).
//   - A banned user gets no new session: Login refuses it with
//     store.ErrBanned before writing anything, and Rotate refuses its
//     sessions' tokens with store.ErrRevoked.
//   - revoked/ holds exactly one entry per revoked session, at its
//     RevokedAt; a session is revoked at most once.
//   - Every refresh token's session exists; session_tokens/ and
//     exp_tokens/ hold exactly one entry per token.
//   - Of a live session's tokens, exactly one has a zero RotatedAt (the
//     current one); a rotated token's Child names its successor unless
//     pruning removed it.
//
// Prune deletes a session together with its tokens and all their index
// entries, in transactions of about a thousand records, so a large sweep
// never holds the writer lock for long.
package bolt
