package bolt

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/wxauth/caddy-wechat-auth/store"
	"github.com/wxauth/caddy-wechat-auth/store/storetest"
)

// benchParallelism is goroutines per GOMAXPROCS in parallel benchmarks: a
// server answers many logins at once, most of them waiting on the disk.
const benchParallelism = 16

// openBench opens a durable store (fsync on every commit) for a benchmark.
func openBench(b *testing.B) *Store {
	b.Helper()
	s, err := Open(filepath.Join(b.TempDir(), "bench.db"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	return s
}

// reportRate adds an ops/s metric, the figure the ratios are taken on.
func reportRate(b *testing.B) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
}

// rawBucket creates the bucket the raw benchmarks write to.
func rawBucket(b *testing.B, s *Store) []byte {
	b.Helper()
	name := []byte("raw")
	if err := s.db.Update(func(tx *bbolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(name)
		return err
	}); err != nil {
		b.Fatal(err)
	}
	return name
}

// BenchmarkRawDurableWrite is the baseline: one small Put per db.Update,
// one writer, each commit fsynced.
func BenchmarkRawDurableWrite(b *testing.B) {
	s := openBench(b)
	name := rawBucket(b, s)
	val := make([]byte, 64)
	b.ResetTimer()
	for i := range b.N {
		err := s.db.Update(func(tx *bbolt.Tx) error {
			return tx.Bucket(name).Put(binary.BigEndian.AppendUint64(nil, uint64(i)), val)
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	reportRate(b)
}

// BenchmarkRawBatchWrite is the same Put through db.Batch from many
// goroutines: the best a store built on bbolt batches can do.
func BenchmarkRawBatchWrite(b *testing.B) {
	s := openBench(b)
	name := rawBucket(b, s)
	val := make([]byte, 64)
	var seq atomic.Uint64
	b.SetParallelism(benchParallelism)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			k := binary.BigEndian.AppendUint64(nil, seq.Add(1))
			if err := s.db.Batch(func(tx *bbolt.Tx) error { return tx.Bucket(name).Put(k, val) }); err != nil {
				b.Error(err)
				return
			}
		}
	})
	reportRate(b)
}

// BenchmarkLoginNew is a whole login as the handler stores it: a new user
// and its first session with its refresh token, in one durable write.
func BenchmarkLoginNew(b *testing.B) {
	s := openBench(b)
	ctx := context.Background()
	var seq atomic.Uint64
	b.SetParallelism(benchParallelism)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := seq.Add(1)
			sid := fmt.Sprintf("sid-%d", i)
			sess := store.Session{ID: sid, AppID: "app", SealedSessionKey: make([]byte, 44), CreatedAt: base, ExpiresAt: base.Add(time.Hour)}
			tok := store.RefreshToken{Hash: sha256.Sum256([]byte(sid)), SessionID: sid, IssuedAt: base, ExpiresAt: base.Add(time.Hour), AccessID: sid, AccessIssuedAt: base}
			if _, _, _, err := s.Login(ctx, "app", store.NewUser{OpenID: fmt.Sprintf("o-%d", i)}, sess, tok, base); err != nil {
				b.Error(err)
				return
			}
		}
	})
	reportRate(b)
}

// BenchmarkLoginNewSerial logs a new user in per op from one goroutine:
// the lone-writer path, comparable to BenchmarkRawDurableWrite.
func BenchmarkLoginNewSerial(b *testing.B) {
	s := openBench(b)
	ctx := context.Background()
	b.ResetTimer()
	for i := range b.N {
		if _, _, err := storetest.LoginUser(ctx, s, "app", store.NewUser{OpenID: fmt.Sprintf("o-%d", i)}, base); err != nil {
			b.Fatal(err)
		}
	}
	reportRate(b)
}

// BenchmarkLoginExisting logs returning users in (a new session each),
// from many goroutines, in a store of 20,000 users.
func BenchmarkLoginExisting(b *testing.B) {
	const users = 20000
	path := filepath.Join(b.TempDir(), "bench.db")
	// Populate without fsync, then reopen durable.
	setup, err := Open(path, Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	err = setup.db.Update(func(tx *bbolt.Tx) error {
		ab, err := writeApp(tx, "app")
		if err != nil {
			return err
		}
		for i := range users {
			id, err := ab.users.NextSequence()
			if err != nil {
				return err
			}
			u := store.User{ID: id, OpenID: fmt.Sprintf("o-%d", i), CreatedAt: base, UpdatedAt: base}
			if err := putUser(ab, &u); err != nil {
				return err
			}
			if err := ab.openID.Put([]byte(u.OpenID), idKey(id)); err != nil {
				return err
			}
		}
		return nil
	})
	if cerr := setup.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		b.Fatal(err)
	}
	s, err := Open(path, Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	ctx := context.Background()
	var seq atomic.Uint64
	b.SetParallelism(benchParallelism)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := seq.Add(7919) % users
			u, created, err := storetest.LoginUser(ctx, s, "app", store.NewUser{OpenID: fmt.Sprintf("o-%d", i)}, base)
			if err != nil || created || u.ID != i+1 {
				b.Errorf("login of o-%d: id %d, created %v, %v", i, u.ID, created, err)
				return
			}
		}
	})
	reportRate(b)
}

// BenchmarkRotate rotates refresh tokens from many goroutines, each
// walking its own session's token chain.
func BenchmarkRotate(b *testing.B) {
	s := openBench(b)
	ctx := context.Background()
	u, _, err := storetest.CreateUser(ctx, s, "app", store.NewUser{OpenID: "o"}, base)
	if err != nil {
		b.Fatal(err)
	}
	var sessions atomic.Uint64
	b.SetParallelism(benchParallelism)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		sid := fmt.Sprintf("sid-%d", sessions.Add(1))
		sess, tok := benchSession(u, sid, base)
		if err := storetest.CreateSession(ctx, s, sess, tok); err != nil {
			b.Error(err)
			return
		}
		cur := tok.Hash
		for gen := 1; pb.Next(); gen++ {
			now := base.Add(time.Duration(gen) * time.Second)
			next := store.RefreshToken{
				Hash:           sha256.Sum256(fmt.Appendf(nil, "%s/%d", sid, gen)),
				SessionID:      sid,
				IssuedAt:       now,
				ExpiresAt:      now.Add(30 * 24 * time.Hour),
				AccessID:       "a",
				AccessIssuedAt: now,
			}
			res, err := s.Rotate(ctx, "app", cur, next, now, 10*time.Second)
			if err != nil || res.Outcome != store.Rotated {
				b.Errorf("Rotate: %v, %v", res.Outcome, err)
				return
			}
			cur = next.Hash
		}
	})
	reportRate(b)
}

// benchSession builds a session of u created at now, as a login would:
// times advance with the requests, hashes are random.
func benchSession(u store.User, sid string, now time.Time) (store.Session, store.RefreshToken) {
	tok := store.RefreshToken{
		Hash:           sha256.Sum256([]byte(sid)),
		SessionID:      sid,
		IssuedAt:       now,
		ExpiresAt:      now.Add(30 * 24 * time.Hour),
		AccessID:       "a",
		AccessIssuedAt: now,
	}
	sess := store.Session{
		ID: sid, AppID: "app", UserID: u.ID, OpenID: u.OpenID,
		SealedSessionKey: make([]byte, 40), CreatedAt: now, ExpiresAt: tok.ExpiresAt,
	}
	return sess, tok
}
