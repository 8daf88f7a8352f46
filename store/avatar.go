package store

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
)

// Avatar is an avatar image as stored: content-addressed, named by the
// lower-case hex SHA-256 of Data, so two users with the same picture share
// one record. An avatar lives as long as a user refers to it (see
// Store.SetAvatar).
type Avatar struct {
	Hash        string `json:"hash"`
	ContentType string `json:"content_type"` // image/png or image/jpeg
	Data        []byte `json:"data"`
}

// AvatarRecord is an avatar in an export, with the ids of the users whose
// avatar it is. As JSON: {"hash", "content_type", "data" (base64),
// "users": [42, …]}.
type AvatarRecord struct {
	Avatar
	Users []uint64 `json:"users"`
}

// MaxAvatarBytes bounds a stored avatar's Data. Stored avatars are scaled
// images of at most 512×512 pixels; a PNG of that size is below 1.1 MiB.
const MaxAvatarBytes = 4 << 20

// ErrInvalidAvatar: an avatar's hash does not name its data, or its type
// or size is not one a store keeps.
var ErrInvalidAvatar = errors.New("store: invalid avatar")

// Check reports whether a is storable: Hash is the hex SHA-256 of Data,
// ContentType is image/png or image/jpeg and Data is 1 to MaxAvatarBytes
// bytes. The error wraps ErrInvalidAvatar.
func (a *Avatar) Check() error {
	switch {
	case a.ContentType != "image/png" && a.ContentType != "image/jpeg":
		return fmt.Errorf("%w: content type %q", ErrInvalidAvatar, a.ContentType)
	case len(a.Data) == 0 || len(a.Data) > MaxAvatarBytes:
		return fmt.Errorf("%w: %d bytes", ErrInvalidAvatar, len(a.Data))
	}
	sum := sha256.Sum256(a.Data)
	if a.Hash != hex.EncodeToString(sum[:]) {
		return fmt.Errorf("%w: hash is not the SHA-256 of the data", ErrInvalidAvatar)
	}
	return nil
}

// ValidAvatarHash reports whether h has the form of an avatar hash: 64
// lower-case hex digits.
func ValidAvatarHash(h string) bool {
	if len(h) != 64 {
		return false
	}
	for i := 0; i < len(h); i++ {
		if c := h[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
