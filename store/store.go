package store

import (
	"context"
	"errors"
	"io"
	"time"
)

// Sentinel errors. Backends wrap them (fmt.Errorf("...: %w", ErrNotFound))
// so callers test with errors.Is.
var (
	// ErrNotFound: no such user, session, refresh token or secret.
	ErrNotFound = errors.New("store: not found")
	// ErrRevoked: the session exists but has been revoked.
	ErrRevoked = errors.New("store: session revoked")
	// ErrExpired: the refresh token or session exists but has expired.
	ErrExpired = errors.New("store: expired")
	// ErrClosed: the store has been closed.
	ErrClosed = errors.New("store: closed")
	// ErrBanned: the user is banned; Login wrote nothing.
	ErrBanned = errors.New("store: user banned")
	// ErrConflict: an imported record collides with an existing one
	// (same user id, openid, session id or refresh-token hash).
	ErrConflict = errors.New("store: conflict")
	// ErrUnavailable: the database cannot be reached right now. Nothing
	// was written; the same call may succeed later.
	ErrUnavailable = errors.New("store: database unavailable")
)

// Revocation reasons, as stored in Session.RevokeReason.
const (
	ReasonLogout    = "logout"     // the user logged out of this session
	ReasonLogoutAll = "logout_all" // the user logged out everywhere
	ReasonReuse     = "reuse"      // a rotated refresh token was replayed
	ReasonBan       = "ban"        // the user was banned
	ReasonAdmin     = "admin"      // an operator ended the session
)

// User is one mini-program user. Users live in a namespace, the app
// (normally the WeChat app_id); within an app a user is keyed by OpenID and
// has a numeric ID unique in that app, assigned from 1 upwards.
type User struct {
	ID        uint64    `json:"id"`
	AppID     string    `json:"app_id"`
	OpenID    string    `json:"openid"`
	UnionID   string    `json:"unionid,omitempty"`
	Nickname  string    `json:"nickname"`
	AvatarURL string    `json:"avatar_url"`
	Gender    int       `json:"gender"`
	Phone     string    `json:"phone"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	// Banned users cannot log in (Login answers ErrBanned) until unbanned.
	Banned    bool   `json:"banned"`
	BanReason string `json:"ban_reason,omitempty"`
}

// NewUser is what a login knows about a user. The profile fields are used
// only when the user is created; an existing user's profile is never
// overwritten by a login.
type NewUser struct {
	OpenID    string
	UnionID   string // may be empty
	Nickname  string
	AvatarURL string
	Gender    int
	// LinkByUnionID: when no user has OpenID but a user of the same app has
	// UnionID, that user is returned (created=false) and OpenID is indexed
	// to it too. Off by default.
	LinkByUnionID bool
}

// ProfilePatch is a partial update; nil fields are left alone.
type ProfilePatch struct {
	Nickname  *string
	AvatarURL *string
	Gender    *int
	Phone     *string
}

// Session is one login of one user: the refresh-token family and the WeChat
// session_key that came with the login.
type Session struct {
	ID      string `json:"id"` // sid, random, unique across apps
	AppID   string `json:"app_id"`
	UserID  uint64 `json:"user_id"`
	OpenID  string `json:"openid"`
	UnionID string `json:"unionid,omitempty"`
	// SealedSessionKey is WeChat's session_key as sealed (encrypted) by the
	// caller. The store keeps it as opaque bytes and never interprets it.
	SealedSessionKey []byte    `json:"sealed_session_key,omitempty"`
	CreatedAt        time.Time `json:"created_at"`
	// ExpiresAt is when the session's newest refresh token expires; each
	// rotation moves it to the new token's ExpiresAt.
	ExpiresAt time.Time `json:"expires_at"`
	// RefreshedAt is when the session's refresh token last rotated (zero
	// until the first refresh).
	RefreshedAt time.Time `json:"refreshed_at,omitempty"`
	// RevokedAt is zero while the session is active.
	RevokedAt    time.Time `json:"revoked_at,omitempty"`
	RevokeReason string    `json:"revoke_reason,omitempty"` // one of the Reason constants
}

// Revoked reports whether the session has been revoked.
func (s *Session) Revoked() bool { return !s.RevokedAt.IsZero() }

// RefreshToken is the stored record of one refresh token. The token itself
// is never stored: only its SHA-256 hash.
type RefreshToken struct {
	Hash      [32]byte  `json:"hash"`
	SessionID string    `json:"session_id"`
	IssuedAt  time.Time `json:"issued_at"`
	ExpiresAt time.Time `json:"expires_at"`
	// RotatedAt is zero while this token is the session's current one.
	RotatedAt time.Time `json:"rotated_at,omitempty"`
	// Child is the hash of the token that replaced this one (zero while
	// current).
	Child [32]byte `json:"child,omitempty"`
	// AccessID and AccessIssuedAt describe the access token issued together
	// with this refresh token, so a retried rotation can hand out the same
	// pair again.
	AccessID       string    `json:"access_id"`
	AccessIssuedAt time.Time `json:"access_issued_at"`
}

// RotateOutcome says what Rotate did.
type RotateOutcome int

const (
	// Rotated: the presented token was current; it is now rotated and Next
	// is the session's current token.
	Rotated RotateOutcome = iota + 1
	// Retried: the presented token had been rotated less than the grace
	// period ago and its child is still current; nothing changed and
	// RotateResult.Token is that child, so the caller can answer with the
	// same pair again.
	Retried
	// Reused: the presented token had been rotated earlier than the grace
	// period allows, or its child has itself been rotated: the whole
	// session is now revoked (reason "reuse").
	Reused
)

// RotateResult is what Rotate returns.
type RotateResult struct {
	Outcome RotateOutcome
	// Session after the operation (revoked when Outcome is Reused).
	Session Session
	// Token is the session's current refresh token record after the
	// operation: Next when Rotated, the existing child when Retried, and
	// the presented token's record when Reused.
	Token RefreshToken
}

// Revocation is one revoked session, for the in-memory revocation list.
type Revocation struct {
	AppID     string
	SessionID string
	UserID    uint64
	RevokedAt time.Time
}

// Store is the persistence every backend (bbolt today, PostgreSQL later)
// provides. Every method is safe for concurrent use. Every write is durable
// when the method returns nil: a token may be issued on the strength of it.
// A method that returns an error has changed nothing.
//
// All lookups are scoped by app: a user or session of one app is invisible
// to another, even in one database.
type Store interface {
	// User returns the app's user by id (ErrNotFound when missing).
	User(ctx context.Context, app string, id uint64) (User, error)
	// UserByOpenID returns the app's user by openid (ErrNotFound).
	UserByOpenID(ctx context.Context, app, openID string) (User, error)
	// UserByUnionID returns the app's user by unionid (ErrNotFound).
	UserByUnionID(ctx context.Context, app, unionID string) (User, error)
	// UpdateUser applies patch and returns the updated user.
	UpdateUser(ctx context.Context, app string, id uint64, patch ProfilePatch, now time.Time) (User, error)

	// Login is one durable write, all or nothing: the app's user with
	// nu.OpenID is found or created (created=true; concurrent logins of
	// one openid create one user, and an existing user whose UnionID is
	// empty gets nu.UnionID), then s is stored with its first refresh
	// token tok (tok.SessionID == s.ID). The store fills s.UserID,
	// s.OpenID and s.UnionID from the user. It returns the user, the
	// session as stored and whether the user was created. If the session
	// cannot be stored, no user is created either. A banned user gets
	// ErrBanned, and a ban committed while the login runs either makes
	// it fail so or revokes the session it stored.
	Login(ctx context.Context, app string, nu NewUser, s Session, tok RefreshToken, now time.Time) (u User, stored Session, created bool, err error)

	// Session returns a session by id (ErrNotFound), revoked or not.
	Session(ctx context.Context, app, id string) (Session, error)
	// Rotate presents the refresh token whose hash is hash. If it is the
	// session's current token, next (whose IssuedAt, ExpiresAt, AccessID
	// and AccessIssuedAt the caller fills; SessionID may be left empty for
	// the store to fill, and must match when given) becomes current and the
	// session's ExpiresAt moves to next.ExpiresAt. See RotateOutcome for
	// the other cases. Errors: ErrNotFound (unknown hash, or a session of
	// another app), ErrExpired (token expired at now), ErrRevoked (session
	// already revoked, or its user banned: no outcome is given for a
	// banned user's session). Concurrent calls with one hash yield exactly
	// one Rotated.
	Rotate(ctx context.Context, app string, hash [32]byte, next RefreshToken, now time.Time, grace time.Duration) (RotateResult, error)
	// RefreshToken returns a refresh token record by hash (ErrNotFound).
	RefreshToken(ctx context.Context, app string, hash [32]byte) (RefreshToken, error)
	// RevokeSession revokes one session (idempotent: revoking a revoked
	// session returns it unchanged with its first RevokedAt).
	RevokeSession(ctx context.Context, app, id string, reason string, now time.Time) (Session, error)
	// RevokeUserSessions revokes every active session of a user and
	// returns the sessions it revoked now.
	RevokeUserSessions(ctx context.Context, app string, userID uint64, reason string, now time.Time) ([]Session, error)
	// Revocations lists the app's sessions revoked at or after since.
	Revocations(ctx context.Context, app string, since time.Time) ([]Revocation, error)

	// UserByPhone returns the app's user whose Phone is phone (the lowest
	// id when several share it), or ErrNotFound.
	UserByPhone(ctx context.Context, app, phone string) (User, error)
	// UserSessions lists a user's sessions, newest first, revoked ones
	// included until they are pruned (ErrNotFound for an unknown user).
	UserSessions(ctx context.Context, app string, userID uint64) ([]Session, error)
	// Ban marks the user banned with reason and revokes every active
	// session of the user with ReasonBan, in one durable write; it returns
	// the user and the sessions it revoked now. Banning a banned user
	// updates the reason and revokes any session left.
	Ban(ctx context.Context, app string, userID uint64, reason string, now time.Time) (User, []Session, error)
	// Unban lifts a ban (idempotent); the user can log in again.
	Unban(ctx context.Context, app string, userID uint64, now time.Time) (User, error)
	// Stats counts the app's users and its sessions that are neither
	// revoked nor expired at now.
	Stats(ctx context.Context, app string, now time.Time) (Stats, error)

	// Export calls fn with every record of app: its secrets, then its
	// users, then the openids linked to users besides their own (see
	// OpenIDRecord), then its avatars (see AvatarRecord), then its
	// sessions each followed by its refresh tokens. A session's sealed session_key is exported as stored
	// (sealed).
	Export(ctx context.Context, app string, fn func(Record) error) error
	// Import writes records (as Export gives them) into app, all or
	// nothing. A record that collides with an existing one (user id,
	// openid of a user or a linked openid, session id, refresh-token hash,
	// secret name) fails the whole call with ErrConflict. A linked
	// openid's user must be in the import (before it, where Export puts
	// it) or already stored. User ids are kept; users created later get
	// ids after the highest one in the store.
	Import(ctx context.Context, app string, recs []Record) error
	// Prune deletes, across all apps, sessions and refresh tokens that
	// expired before now, and revoked sessions (with their tokens) revoked
	// before revokedBefore. It returns how many records it deleted.
	Prune(ctx context.Context, now, revokedBefore time.Time) (int, error)

	// Secret returns the app's named secret, creating it with create when
	// missing (concurrent callers all get the one value that was stored).
	Secret(ctx context.Context, app, name string, create func() ([]byte, error)) ([]byte, error)
	// ReplaceSecret stores next as the app's named secret if the stored
	// value is still old (compare and swap) and returns the value stored
	// afterwards: next, or whatever another caller put there first.
	ReplaceSecret(ctx context.Context, app, name string, old, next []byte) ([]byte, error)

	// SetAvatar stores a (when no record of that hash exists yet) and
	// makes it the user's avatar, with avatarURL as the user's AvatarURL,
	// in one durable write: until it returns the user keeps the old
	// avatar. The avatar the user had before is deleted in that write when
	// no other user of the app refers to it. ErrNotFound for an unknown
	// user; an a that fails Avatar.Check is refused (ErrInvalidAvatar).
	// UpdateUser with an AvatarURL also moves the user off its stored
	// avatar, deleting it the same way.
	SetAvatar(ctx context.Context, app string, userID uint64, a Avatar, avatarURL string, now time.Time) (User, error)
	// Avatar returns the app's stored avatar by hash (ErrNotFound).
	Avatar(ctx context.Context, app, hash string) (Avatar, error)
	// CreateTicket stores a one-time web-view ticket (only its hash).
	// Tickets that expired before now may be deleted on the way. The
	// session t.SessionID must exist and be live (ErrNotFound, ErrRevoked
	// or ErrExpired otherwise); t.Hash must be new.
	CreateTicket(ctx context.Context, app string, t Ticket, now time.Time) error
	// RedeemTicket consumes the ticket with hash, atomically: of
	// concurrent calls with one hash, at most one succeeds, and a ticket is
	// deleted by its first redemption whatever its outcome. When the
	// ticket is unexpired at now and the session that asked for it is
	// still live (neither revoked nor expired) and its user not banned, s
	// and its first refresh token tok are stored as a new session of that
	// user (the store fills s.UserID, s.OpenID and s.UnionID from the
	// asking session) in the same write. Errors: ErrNotFound (unknown or
	// already redeemed), ErrExpired (the ticket or its session expired),
	// ErrRevoked (the asking session ended), ErrBanned; on every error no
	// session is stored.
	RedeemTicket(ctx context.Context, app string, hash [32]byte, s Session, tok RefreshToken, now time.Time) (Ticket, Session, error)

	// Close releases the store. Calls after Close return ErrClosed.
	Close() error
}

// Ticket is a one-time web-view ticket: a mini-program session asks for
// one and a browser (the web-view) redeems it for a cookie session of the
// same user. Only the ticket's hash is stored.
type Ticket struct {
	Hash [32]byte `json:"hash"`
	// SessionID is the session that asked for the ticket; the ticket is
	// refused once that session has ended.
	SessionID string    `json:"session_id"`
	UserID    uint64    `json:"user_id"`
	Next      string    `json:"next"` // the page to open, a same-origin path
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
}

// Stats are an app's counts, for operators.
type Stats struct {
	Users          int64 `json:"users"`
	ActiveSessions int64 `json:"active_sessions"`
}

// Record is one line of an export: exactly one of its fields is set. As
// JSON it is an object with one key naming the kind: "secret", "user",
// "openid", "avatar", "session" or "refresh_token".
type Record struct {
	Secret *SecretRecord `json:"secret,omitempty"`
	User   *User         `json:"user,omitempty"`
	// OpenID is an openid indexed to a user besides the user's own
	// (User.OpenID), as a login with LinkByUnionID leaves it.
	OpenID  *OpenIDRecord `json:"openid,omitempty"`
	Session *Session      `json:"session,omitempty"`
	Token   *RefreshToken `json:"refresh_token,omitempty"`
	// Avatar is a stored avatar with the users whose avatar it is; Export
	// puts it after the users.
	Avatar *AvatarRecord `json:"avatar,omitempty"`
}

// OpenIDRecord is an openid linked to an existing user: a login with this
// openid finds the user UserID. As JSON: {"openid": "…", "user_id": 42}.
type OpenIDRecord struct {
	OpenID string `json:"openid"`
	UserID uint64 `json:"user_id"`
}

// SecretRecord is one named per-app secret as stored.
type SecretRecord struct {
	Name  string `json:"name"`
	Value []byte `json:"value"`
}

// RevocationWatcher is implemented by stores that several processes share
// (PostgreSQL). WatchRevocations delivers to fn every revocation committed
// by any process, of any app in the store, from the moment it is called
// until ctx is done, catching up after a lost connection; fn may see a
// revocation more than once. After the store could not be read for long
// enough that it may have lost track of some, it calls reload (when not
// nil) until reload returns nil, so the caller rebuilds what it keeps from
// the store. It returns once watching has started, or an error if it
// cannot start.
type RevocationWatcher interface {
	WatchRevocations(ctx context.Context, fn func(Revocation), reload func(context.Context) error) error
}

// Backuper is implemented by stores that can write a consistent snapshot
// of their whole database while serving (bbolt). Backup writes it to w and
// returns the number of bytes written.
type Backuper interface {
	Backup(ctx context.Context, w io.Writer) (int64, error)
}
