package websession

import (
	"crypto/sha256"
	"time"
)

// TicketTTL is how long a web-view ticket can be redeemed.
const TicketTTL = 60 * time.Second

// MaxTicketLen bounds a presented ticket (ours are 43 characters).
const MaxTicketLen = 128

// NewTicket returns a new web-view ticket (256 random bits, base64url) and
// the hash under which it is stored; the ticket itself is never stored.
func NewTicket() (string, [32]byte, error) {
	t, err := randomString(32)
	if err != nil {
		return "", [32]byte{}, err
	}
	return t, HashTicket(t), nil
}

// HashTicket is the stored form of a ticket: its SHA-256.
func HashTicket(t string) [32]byte {
	return sha256.Sum256([]byte("wechat_auth ticket\x00" + t))
}
