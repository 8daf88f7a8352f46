package bolt

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/bbolt"

	"github.com/wxauth/caddy-wechat-auth/store"
)

// Web-view tickets live in two buckets of the app, created by the first
// ticket (so files written before tickets existed need no upgrade):
//
//	tickets     hash (32) -> ticket record
//	ticket_exp  time (12) || hash -> empty, to delete unredeemed tickets
var (
	bucketTickets   = []byte("tickets")
	bucketTicketExp = []byte("ticket_exp")
)

// ticketPruneBatch bounds how many expired tickets one CreateTicket
// deletes.
const ticketPruneBatch = 64

// ticketRecordV1 is the version byte of ticket records.
const ticketRecordV1 = 1

// ticketBuckets returns the app's ticket buckets, creating them when
// create is set (in a write transaction); nil buckets when missing.
func ticketBuckets(b *appBuckets, create bool) (tickets, exp *bbolt.Bucket, err error) {
	root := b.users.Tx().Bucket(bucketApps).Bucket([]byte(b.name))
	if root == nil {
		return nil, nil, fmt.Errorf("app %q has no bucket: %w", b.name, errCorrupt)
	}
	if !create {
		return root.Bucket(bucketTickets), root.Bucket(bucketTicketExp), nil
	}
	if tickets, err = root.CreateBucketIfNotExists(bucketTickets); err != nil {
		return nil, nil, fmt.Errorf("creating tickets bucket: %w", err)
	}
	if exp, err = root.CreateBucketIfNotExists(bucketTicketExp); err != nil {
		return nil, nil, fmt.Errorf("creating ticket expiry bucket: %w", err)
	}
	return tickets, exp, nil
}

func encodeTicket(t *store.Ticket) []byte {
	e := encoder{b: make([]byte, 0, 64+len(t.SessionID)+len(t.Next))}
	e.b = append(e.b, ticketRecordV1)
	e.str(t.SessionID)
	e.uvarint(t.UserID)
	e.str(t.Next)
	e.time(t.CreatedAt)
	e.time(t.ExpiresAt)
	return e.b
}

func decodeTicket(hash [32]byte, p []byte) (store.Ticket, error) {
	d := decoder{b: p}
	d.version(ticketRecordV1)
	t := store.Ticket{Hash: hash}
	t.SessionID = d.str("ticket session id")
	t.UserID = d.uvarint("ticket user id")
	t.Next = d.str("ticket next")
	t.CreatedAt = d.time("ticket created_at")
	t.ExpiresAt = d.time("ticket expires_at")
	if err := d.finish(); err != nil {
		return store.Ticket{}, fmt.Errorf("ticket record: %w", err)
	}
	return t, nil
}

// CreateTicket stores a web-view ticket of a live session; see
// store.Store. Up to ticketPruneBatch tickets that expired before now are
// deleted in the same write.
func (s *Store) CreateTicket(ctx context.Context, app string, t store.Ticket, now time.Time) error {
	switch {
	case !validKey(app):
		return errors.New("creating ticket: invalid app")
	case !validKey(t.SessionID):
		return errors.New("creating ticket: invalid session id")
	case t.Hash == [32]byte{}:
		return errors.New("creating ticket: missing hash")
	case t.ExpiresAt.IsZero() || len(t.Next) > 4096:
		return errors.New("creating ticket: missing expiry or next too long")
	}
	t.CreatedAt, t.ExpiresAt = t.CreatedAt.UTC(), t.ExpiresAt.UTC()
	_, err := writeIn(s, ctx, "creating ticket", app, func(b *appBuckets) (struct{}, error, error) {
		sess, err := getSession(b, t.SessionID)
		switch {
		case errors.Is(err, store.ErrNotFound):
			return struct{}{}, err, nil
		case err != nil:
			return struct{}{}, nil, err
		case sess.Revoked():
			return struct{}{}, fmt.Errorf("session %q: %w", sess.ID, store.ErrRevoked), nil
		case !now.Before(sess.ExpiresAt):
			return struct{}{}, fmt.Errorf("session %q: %w", sess.ID, store.ErrExpired), nil
		case sess.UserID != t.UserID:
			return struct{}{}, errors.New("ticket user is not the session's user"), nil
		}
		tickets, exp, err := ticketBuckets(b, true)
		if err != nil {
			return struct{}{}, nil, err
		}
		if tickets.Get(t.Hash[:]) != nil {
			return struct{}{}, fmt.Errorf("ticket: %w", errDuplicate), nil
		}
		for _, k := range keysBefore(exp, appendTimeKey(nil, now), ticketPruneBatch) {
			if len(k) != timeKeyLen+32 {
				return struct{}{}, nil, fmt.Errorf("ticket expiry key of %d bytes: %w", len(k), errCorrupt)
			}
			if err := tickets.Delete(k[timeKeyLen:]); err != nil {
				return struct{}{}, nil, err
			}
			if err := exp.Delete(k); err != nil {
				return struct{}{}, nil, err
			}
		}
		if err := tickets.Put(t.Hash[:], encodeTicket(&t)); err != nil {
			return struct{}{}, nil, fmt.Errorf("writing ticket: %w", err)
		}
		if err := exp.Put(timeIDKey(t.ExpiresAt, t.Hash[:]), nil); err != nil {
			return struct{}{}, nil, fmt.Errorf("indexing ticket expiry: %w", err)
		}
		return struct{}{}, nil, nil
	})
	return err
}

// redeemed is what RedeemTicket's transaction gives back.
type redeemed struct {
	ticket store.Ticket
	sess   store.Session
}

// RedeemTicket consumes a ticket and stores the new session in one
// durable write; see store.Store.
func (s *Store) RedeemTicket(ctx context.Context, app string, hash [32]byte, sess store.Session, tok store.RefreshToken, now time.Time) (store.Ticket, store.Session, error) {
	if sess.AppID == "" {
		sess.AppID = app
	}
	switch {
	case !validKey(app) || sess.AppID != app:
		return store.Ticket{}, store.Session{}, errors.New("redeeming ticket: invalid app")
	case !validKey(sess.ID):
		return store.Ticket{}, store.Session{}, errors.New("redeeming ticket: invalid session id")
	case tok.SessionID != sess.ID || tok.Hash == [32]byte{} || tok.ExpiresAt.IsZero():
		return store.Ticket{}, store.Session{}, errors.New("redeeming ticket: bad first refresh token")
	case sess.Revoked() || !tok.RotatedAt.IsZero() || tok.Child != [32]byte{}:
		return store.Ticket{}, store.Session{}, errors.New("redeeming ticket: the new session is already revoked or rotated")
	}
	now = now.UTC()
	sess = normSession(sess)
	tok = normToken(tok)
	if sess.ExpiresAt.IsZero() {
		sess.ExpiresAt = tok.ExpiresAt
	}
	out, err := writeIn(s, ctx, "redeeming ticket", app, func(b *appBuckets) (redeemed, error, error) {
		tickets, exp, err := ticketBuckets(b, false)
		if err != nil {
			return redeemed{}, nil, err
		}
		if tickets == nil || exp == nil {
			return redeemed{}, fmt.Errorf("ticket: %w", store.ErrNotFound), nil
		}
		raw := tickets.Get(hash[:])
		if raw == nil {
			return redeemed{}, fmt.Errorf("ticket: %w", store.ErrNotFound), nil
		}
		t, err := decodeTicket(hash, raw)
		if err != nil {
			return redeemed{}, nil, err
		}
		// Consumed whatever happens next: the refusals below still commit
		// the deletion.
		if err := tickets.Delete(hash[:]); err != nil {
			return redeemed{}, nil, err
		}
		if err := exp.Delete(timeIDKey(t.ExpiresAt, hash[:])); err != nil {
			return redeemed{}, nil, err
		}
		if !now.Before(t.ExpiresAt) {
			return redeemed{}, fmt.Errorf("ticket: %w", store.ErrExpired), nil
		}
		asking, err := getSession(b, t.SessionID)
		switch {
		case errors.Is(err, store.ErrNotFound):
			return redeemed{}, fmt.Errorf("ticket's session: %w", store.ErrRevoked), nil
		case err != nil:
			return redeemed{}, nil, err
		case asking.Revoked():
			return redeemed{}, fmt.Errorf("ticket's session: %w", store.ErrRevoked), nil
		case !now.Before(asking.ExpiresAt):
			return redeemed{}, fmt.Errorf("ticket's session: %w", store.ErrExpired), nil
		}
		u, refused, err := readUserForWrite(b, asking.UserID)
		if refused != nil || err != nil {
			return redeemed{}, refused, err
		}
		if u.Banned {
			return redeemed{}, fmt.Errorf("user %d: %w", u.ID, store.ErrBanned), nil
		}
		stored := sess
		stored.UserID, stored.OpenID, stored.UnionID = asking.UserID, asking.OpenID, u.UnionID
		if stored.UnionID == "" {
			stored.UnionID = asking.UnionID
		}
		t2 := tok
		refused, err = createSessionTx(b, &stored, &t2)
		if err == nil && refused != nil {
			// The ticket stays consumed; the session was not stored.
			return redeemed{}, refused, nil
		}
		return redeemed{ticket: t, sess: stored}, nil, err
	})
	if err != nil {
		return store.Ticket{}, store.Session{}, err
	}
	return out.ticket, out.sess, nil
}
