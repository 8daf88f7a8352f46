package bolt

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/wxauth/caddy-wechat-auth/store"
)

// Record versions: the first byte of every record. Format version 1
// wrote version 1 records only; format 2 writes user and session records
// in version 2 (fields appended) and still reads version 1 ones.
const (
	recordV1 = 1
	recordV2 = 2
)

// errBadRecord reports a record that does not decode.
var errBadRecord = errors.New("malformed record")

// encoder appends the fields of a record.
type encoder struct{ b []byte }

func (e *encoder) uvarint(v uint64) { e.b = binary.AppendUvarint(e.b, v) }
func (e *encoder) varint(v int64)   { e.b = binary.AppendVarint(e.b, v) }
func (e *encoder) str(s string)     { e.uvarint(uint64(len(s))); e.b = append(e.b, s...) }
func (e *encoder) bytes(p []byte)   { e.uvarint(uint64(len(p))); e.b = append(e.b, p...) }
func (e *encoder) hash(h [32]byte)  { e.b = append(e.b, h[:]...) }

// time stores Unix seconds and nanoseconds; the zero time round-trips.
func (e *encoder) time(t time.Time) {
	e.varint(t.Unix())
	e.uvarint(uint64(t.Nanosecond()))
}

// decoder reads the fields of a record. The first failure sticks; every
// read after it returns a zero value, so callers check err once.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("reading %s: %w", what, errBadRecord)
	}
}

func (d *decoder) uvarint(what string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail(what)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint(what string) int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail(what)
		return 0
	}
	d.b = d.b[n:]
	return v
}

// raw returns the next n bytes, still pointing into the record.
func (d *decoder) raw(what string, n uint64) []byte {
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.fail(what)
		return nil
	}
	p := d.b[:n]
	d.b = d.b[n:]
	return p
}

func (d *decoder) str(what string) string {
	return string(d.raw(what, d.uvarint(what)))
}

// bytes returns a copy (bbolt memory is valid only inside a transaction);
// an empty field decodes as nil.
func (d *decoder) bytes(what string) []byte {
	p := d.raw(what, d.uvarint(what))
	if len(p) == 0 {
		return nil
	}
	return append([]byte(nil), p...)
}

func (d *decoder) hash(what string) (h [32]byte) {
	copy(h[:], d.raw(what, 32))
	return h
}

func (d *decoder) time(what string) time.Time {
	sec := d.varint(what)
	ns := d.uvarint(what)
	if ns >= 1e9 {
		d.fail(what)
		return time.Time{}
	}
	if d.err != nil {
		return time.Time{}
	}
	return time.Unix(sec, int64(ns)).UTC()
}

// version reads the record version, which must be at most max, and
// returns it.
func (d *decoder) version(max uint64) uint64 {
	v := d.uvarint("version")
	if d.err == nil && (v < recordV1 || v > max) {
		d.err = fmt.Errorf("record version %d: %w", v, errBadRecord)
	}
	return v
}

func (d *decoder) finish() error {
	if d.err == nil && len(d.b) != 0 {
		d.err = fmt.Errorf("%d trailing bytes: %w", len(d.b), errBadRecord)
	}
	return d.err
}

// User record, v1: version, openid, unionid, nickname, avatar_url,
// gender (varint), phone, created_at, updated_at; v2 appends banned
// (uvarint 0 or 1) and ban_reason. The id is the key and the app the
// enclosing bucket.
func encodeUser(u *store.User) []byte {
	e := encoder{b: make([]byte, 0, 64+len(u.OpenID)+len(u.UnionID)+len(u.Nickname)+len(u.AvatarURL)+len(u.BanReason))}
	e.uvarint(recordV2)
	e.str(u.OpenID)
	e.str(u.UnionID)
	e.str(u.Nickname)
	e.str(u.AvatarURL)
	e.varint(int64(u.Gender))
	e.str(u.Phone)
	e.time(u.CreatedAt)
	e.time(u.UpdatedAt)
	var banned uint64
	if u.Banned {
		banned = 1
	}
	e.uvarint(banned)
	e.str(u.BanReason)
	return e.b
}

func decodeUser(app string, id uint64, p []byte) (store.User, error) {
	d := decoder{b: p}
	v := d.version(recordV2)
	u := store.User{ID: id, AppID: app}
	u.OpenID = d.str("openid")
	u.UnionID = d.str("unionid")
	u.Nickname = d.str("nickname")
	u.AvatarURL = d.str("avatar_url")
	u.Gender = int(d.varint("gender"))
	u.Phone = d.str("phone")
	u.CreatedAt = d.time("created_at")
	u.UpdatedAt = d.time("updated_at")
	if v >= recordV2 {
		switch d.uvarint("banned") {
		case 0:
		case 1:
			u.Banned = true
		default:
			d.fail("banned")
		}
		u.BanReason = d.str("ban_reason")
	}
	if err := d.finish(); err != nil {
		return store.User{}, fmt.Errorf("decoding user %d of app %q: %w", id, app, err)
	}
	return u, nil
}

// Session record, v1: version, user_id, openid, unionid,
// sealed_session_key, created_at, expires_at, revoked_at, revoke_reason;
// v2 appends refreshed_at. The id is the key and the app the enclosing
// bucket.
func encodeSession(s *store.Session) []byte {
	e := encoder{b: make([]byte, 0, 80+len(s.OpenID)+len(s.UnionID)+len(s.SealedSessionKey)+len(s.RevokeReason))}
	e.uvarint(recordV2)
	e.uvarint(s.UserID)
	e.str(s.OpenID)
	e.str(s.UnionID)
	e.bytes(s.SealedSessionKey)
	e.time(s.CreatedAt)
	e.time(s.ExpiresAt)
	e.time(s.RevokedAt)
	e.str(s.RevokeReason)
	e.time(s.RefreshedAt)
	return e.b
}

func decodeSession(app, id string, p []byte) (store.Session, error) {
	d := decoder{b: p}
	v := d.version(recordV2)
	s := store.Session{ID: id, AppID: app}
	s.UserID = d.uvarint("user_id")
	s.OpenID = d.str("openid")
	s.UnionID = d.str("unionid")
	s.SealedSessionKey = d.bytes("sealed_session_key")
	s.CreatedAt = d.time("created_at")
	s.ExpiresAt = d.time("expires_at")
	s.RevokedAt = d.time("revoked_at")
	s.RevokeReason = d.str("revoke_reason")
	if v >= recordV2 {
		s.RefreshedAt = d.time("refreshed_at")
	}
	if err := d.finish(); err != nil {
		return store.Session{}, fmt.Errorf("decoding session %q of app %q: %w", id, app, err)
	}
	return s, nil
}

// Refresh-token record, v1: version, session_id, issued_at, expires_at,
// rotated_at, child (32 bytes), access_id, access_issued_at. The hash is
// the key.
func encodeToken(t *store.RefreshToken) []byte {
	e := encoder{b: make([]byte, 0, 96+len(t.SessionID)+len(t.AccessID))}
	e.uvarint(recordV1)
	e.str(t.SessionID)
	e.time(t.IssuedAt)
	e.time(t.ExpiresAt)
	e.time(t.RotatedAt)
	e.hash(t.Child)
	e.str(t.AccessID)
	e.time(t.AccessIssuedAt)
	return e.b
}

func decodeToken(hash [32]byte, p []byte) (store.RefreshToken, error) {
	d := decoder{b: p}
	d.version(recordV1)
	t := store.RefreshToken{Hash: hash}
	t.SessionID = d.str("session_id")
	t.IssuedAt = d.time("issued_at")
	t.ExpiresAt = d.time("expires_at")
	t.RotatedAt = d.time("rotated_at")
	t.Child = d.hash("child")
	t.AccessID = d.str("access_id")
	t.AccessIssuedAt = d.time("access_issued_at")
	if err := d.finish(); err != nil {
		// The hash is a credential's fingerprint: keep it out of errors.
		return store.RefreshToken{}, fmt.Errorf("decoding refresh token of session %q: %w", t.SessionID, err)
	}
	return t, nil
}
