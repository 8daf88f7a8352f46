package bolt

import (
	"encoding/binary"
	"fmt"

	"go.etcd.io/bbolt"
)

// migrate upgrades a file from format version from to formatVersion
// inside the opening transaction, so a file is either fully upgraded or
// left as it was.
//
// Version 2 added, in every app bucket, the phone index, the index of
// every session by user (revoked ones included) and the user counter;
// they are built here from the records.
func migrate(tx *bbolt.Tx, meta *bbolt.Bucket, from uint64) error {
	if from == 1 {
		apps, err := appNames(tx)
		if err != nil {
			return err
		}
		for _, app := range apps {
			if err := migrateAppV2(tx, app); err != nil {
				return fmt.Errorf("upgrading app %q to format 2: %w", app, err)
			}
		}
	}
	if err := meta.Put(keyFormat, binary.AppendUvarint(nil, formatVersion)); err != nil {
		return fmt.Errorf("writing format version: %w", err)
	}
	return nil
}

// migrateAppV2 creates the buckets that format 2 added to an app and fills
// them from its users and sessions.
func migrateAppV2(tx *bbolt.Tx, app string) error {
	b, err := writeApp(tx, app)
	if err != nil {
		return err
	}
	var users uint64
	err = b.users.ForEach(func(k, v []byte) error {
		if len(k) != 8 {
			return fmt.Errorf("user key of %d bytes: %w", len(k), errCorrupt)
		}
		u, err := decodeUser(app, binary.BigEndian.Uint64(k), v)
		if err != nil {
			return err
		}
		users++
		if u.Phone == "" {
			return nil
		}
		return b.phone.Put(phoneKey(u.Phone, u.ID), nil)
	})
	if err != nil {
		return err
	}
	if err := putUserCount(b, users); err != nil {
		return err
	}
	return b.sessions.ForEach(func(k, v []byte) error {
		s, err := decodeSession(app, string(k), v)
		if err != nil {
			return err
		}
		return b.allSessions.Put(userSessionKey(s.UserID, s.ID), nil)
	})
}

// userCount reads the app's user counter.
func userCount(b *appBuckets) (uint64, error) {
	v := b.counters.Get(keyUserCount)
	switch len(v) {
	case 0:
		return 0, nil
	case 8:
		return binary.BigEndian.Uint64(v), nil
	}
	return 0, fmt.Errorf("user counter of %d bytes: %w", len(v), errCorrupt)
}

// putUserCount writes the app's user counter.
func putUserCount(b *appBuckets, n uint64) error {
	if err := b.counters.Put(keyUserCount, binary.BigEndian.AppendUint64(nil, n)); err != nil {
		return fmt.Errorf("writing user counter: %w", err)
	}
	return nil
}
