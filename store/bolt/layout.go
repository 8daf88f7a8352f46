package bolt

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/bbolt"
)

// formatVersion is the layout version written to meta/format. Open
// upgrades a file of an older version (see migrate) and refuses a newer
// one.
const formatVersion = 2

// maxKeyLen bounds apps, openids, unionids, session ids and secret names.
// It keeps keys small and lets a session id be length-prefixed in one byte.
const maxKeyLen = 255

// Top-level buckets and keys.
var (
	bucketMeta = []byte("meta")
	bucketApps = []byte("apps")
	keyFormat  = []byte("format")
)

// Buckets nested in every app bucket.
var (
	bucketUsers         = []byte("users")
	bucketOpenID        = []byte("openid")
	bucketUnionID       = []byte("unionid")
	bucketSessions      = []byte("sessions")
	bucketUserSessions  = []byte("user_sessions")
	bucketRefresh       = []byte("refresh")
	bucketSessionTokens = []byte("session_tokens")
	bucketRevoked       = []byte("revoked")
	bucketExpSessions   = []byte("exp_sessions")
	bucketExpTokens     = []byte("exp_tokens")
	bucketSecrets       = []byte("secrets")
	// Added in format version 2.
	bucketPhone           = []byte("phone")
	bucketAllUserSessions = []byte("user_all_sessions")
	bucketCounters        = []byte("counters")
)

// Keys of the counters bucket.
var keyUserCount = []byte("users")

// appBuckets are the nested buckets of one app, from one transaction.
type appBuckets struct {
	name          string
	root          *bbolt.Bucket // the app's bucket (avatars.go nests optional buckets in it)
	users         *bbolt.Bucket // id (8 bytes BE) -> user record; Sequence = last id
	openID        *bbolt.Bucket // openid -> id
	unionID       *bbolt.Bucket // unionid -> id
	sessions      *bbolt.Bucket // sid -> session record
	userSessions  *bbolt.Bucket // id || sid -> empty, active sessions only
	refresh       *bbolt.Bucket // hash (32) -> refresh-token record
	sessionTokens *bbolt.Bucket // len(sid) || sid || hash -> empty
	revoked       *bbolt.Bucket // time (12) || sid -> user id (8)
	expSessions   *bbolt.Bucket // time (12) || sid -> empty
	expTokens     *bbolt.Bucket // time (12) || hash -> empty
	secrets       *bbolt.Bucket // name -> value
	phone         *bbolt.Bucket // uvarint len(phone) || phone || id (8) -> empty
	allSessions   *bbolt.Bucket // id || sid -> empty, every stored session
	counters      *bbolt.Bucket // "users" -> number of users (8 bytes BE)
}

// errCorrupt marks a database whose invariants do not hold.
var errCorrupt = errors.New("bolt: corrupt database")

// readApp returns the app's buckets, or nil when the app has no data yet.
func readApp(tx *bbolt.Tx, app string) (*appBuckets, error) {
	if !validKey(app) {
		return nil, nil
	}
	apps := tx.Bucket(bucketApps)
	if apps == nil {
		return nil, fmt.Errorf("missing bucket %q: %w", bucketApps, errCorrupt)
	}
	root := apps.Bucket([]byte(app))
	if root == nil {
		return nil, nil
	}
	b := &appBuckets{name: app, root: root}
	for _, nb := range b.fields() {
		*nb.dst = root.Bucket(nb.name)
		if *nb.dst == nil {
			return nil, fmt.Errorf("app %q lacks bucket %q: %w", app, nb.name, errCorrupt)
		}
	}
	return b, nil
}

// writeApp returns the app's buckets, creating them on first use. tx must
// be writable and app valid.
func writeApp(tx *bbolt.Tx, app string) (*appBuckets, error) {
	apps := tx.Bucket(bucketApps)
	if apps == nil {
		return nil, fmt.Errorf("missing bucket %q: %w", bucketApps, errCorrupt)
	}
	root, err := apps.CreateBucketIfNotExists([]byte(app))
	if err != nil {
		return nil, fmt.Errorf("creating bucket of app %q: %w", app, err)
	}
	b := &appBuckets{name: app, root: root}
	for _, nb := range b.fields() {
		if *nb.dst, err = root.CreateBucketIfNotExists(nb.name); err != nil {
			return nil, fmt.Errorf("creating bucket %q of app %q: %w", nb.name, app, err)
		}
	}
	return b, nil
}

type namedBucket struct {
	name []byte
	dst  **bbolt.Bucket
}

func (b *appBuckets) fields() []namedBucket {
	return []namedBucket{
		{bucketUsers, &b.users},
		{bucketOpenID, &b.openID},
		{bucketUnionID, &b.unionID},
		{bucketSessions, &b.sessions},
		{bucketUserSessions, &b.userSessions},
		{bucketRefresh, &b.refresh},
		{bucketSessionTokens, &b.sessionTokens},
		{bucketRevoked, &b.revoked},
		{bucketExpSessions, &b.expSessions},
		{bucketExpTokens, &b.expTokens},
		{bucketSecrets, &b.secrets},
		{bucketPhone, &b.phone},
		{bucketAllUserSessions, &b.allSessions},
		{bucketCounters, &b.counters},
	}
}

// appNames lists every app bucket, copied out of the transaction.
func appNames(tx *bbolt.Tx) ([]string, error) {
	apps := tx.Bucket(bucketApps)
	if apps == nil {
		return nil, fmt.Errorf("missing bucket %q: %w", bucketApps, errCorrupt)
	}
	var names []string
	err := apps.ForEachBucket(func(k []byte) error {
		names = append(names, string(k))
		return nil
	})
	return names, err
}

// validKey reports whether s can be used as an app, openid, session id or
// secret name.
func validKey(s string) bool { return len(s) > 0 && len(s) <= maxKeyLen }

// idKey encodes a user id as 8 big-endian bytes, so ids sort numerically.
func idKey(id uint64) []byte { return binary.BigEndian.AppendUint64(nil, id) }

// timeKeyLen is the size of a sortable time prefix.
const timeKeyLen = 12

// appendTimeKey appends a time that sorts bytewise in time order: Unix
// seconds with the sign bit flipped (8 bytes BE), then nanoseconds (4
// bytes BE).
func appendTimeKey(dst []byte, t time.Time) []byte {
	dst = binary.BigEndian.AppendUint64(dst, uint64(t.Unix())^(1<<63))
	return binary.BigEndian.AppendUint32(dst, uint32(t.Nanosecond()))
}

// parseTimeKey decodes the time prefix written by appendTimeKey.
func parseTimeKey(k []byte) (time.Time, bool) {
	if len(k) < timeKeyLen {
		return time.Time{}, false
	}
	sec := int64(binary.BigEndian.Uint64(k) ^ (1 << 63))
	ns := binary.BigEndian.Uint32(k[8:])
	if ns >= 1e9 {
		return time.Time{}, false
	}
	return time.Unix(sec, int64(ns)).UTC(), true
}

// timeIDKey is time || id, the key of the revocation and expiry indexes.
func timeIDKey(t time.Time, id []byte) []byte {
	k := make([]byte, 0, timeKeyLen+len(id))
	return append(appendTimeKey(k, t), id...)
}

// userSessionKey is user id || sid.
func userSessionKey(uid uint64, sid string) []byte {
	return append(idKey(uid), sid...)
}

// sessionPrefix is len(sid) || sid, the prefix of a session's entries in
// session_tokens. The length byte keeps "s1" from matching "s10".
func sessionPrefix(sid string) []byte {
	p := make([]byte, 0, 1+len(sid)+32)
	return append(append(p, byte(len(sid))), sid...)
}

// sessionTokenKey is len(sid) || sid || hash.
func sessionTokenKey(sid string, hash [32]byte) []byte {
	return append(sessionPrefix(sid), hash[:]...)
}

// phonePrefix is uvarint len(phone) || phone, the prefix of the phone
// index entries of every user with that phone; the length keeps "123"
// from matching "1234".
func phonePrefix(phone string) []byte {
	p := binary.AppendUvarint(make([]byte, 0, binary.MaxVarintLen64+len(phone)+8), uint64(len(phone)))
	return append(p, phone...)
}

// phoneKey is phonePrefix(phone) || id.
func phoneKey(phone string, id uint64) []byte {
	return binary.BigEndian.AppendUint64(phonePrefix(phone), id)
}
