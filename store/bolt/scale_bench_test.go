package bolt

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/wxauth/caddy-wechat-auth/store"
)

// BenchmarkScale measures what a login costs with 10 000 and with 1 000 000
// users in the app (the cost must not grow with users): a lookup by
// openid, and a returning user's whole durable login (user found, session
// and refresh token stored in one commit), from many goroutines. It also
// reports the file's size per user. Populating a million users takes tens
// of seconds; run it on its own:
//
//	go test -run '^$' -bench Scale -benchtime 2s ./store/bolt
func BenchmarkScale(b *testing.B) {
	for _, n := range []int{10_000, 1_000_000} {
		b.Run(fmt.Sprintf("users=%d", n), func(b *testing.B) {
			s := openBench(b)
			populate(b, s, n)
			ctx := context.Background()
			b.Run("lookup", func(b *testing.B) {
				var seq atomic.Uint64
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						i := seq.Add(7919) % uint64(n)
						if _, err := s.UserByOpenID(ctx, "app", fmt.Sprintf("o-%d", i)); err != nil {
							b.Error(err)
							return
						}
					}
				})
				reportRate(b)
				if fi, err := os.Stat(s.Path()); err == nil {
					b.ReportMetric(float64(fi.Size())/float64(n), "file-B/user")
				}
			})
			var loginSeq atomic.Uint64 // across the runs of "login": session ids stay unique
			b.Run("login", func(b *testing.B) {
				seq := &loginSeq
				b.SetParallelism(benchParallelism)
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						i := seq.Add(1)
						sid := fmt.Sprintf("scale-%d-%d", n, i)
						sess := store.Session{ID: sid, AppID: "app", SealedSessionKey: make([]byte, 44), CreatedAt: base, ExpiresAt: base.Add(time.Hour)}
						tok := store.RefreshToken{Hash: sha256.Sum256([]byte(sid)), SessionID: sid, IssuedAt: base, ExpiresAt: base.Add(time.Hour), AccessID: sid, AccessIssuedAt: base}
						nu := store.NewUser{OpenID: fmt.Sprintf("o-%d", (i*7919)%uint64(n))}
						if _, _, created, err := s.Login(ctx, "app", nu, sess, tok, base); err != nil || created {
							b.Errorf("login: created %v, %v", created, err)
							return
						}
					}
				})
				reportRate(b)
			})
		})
	}
}

// populate creates n users o-0 … o-(n-1) in big transactions, through
// the same code a login runs.
func populate(b *testing.B, s *Store, n int) {
	b.Helper()
	const chunk = 50_000
	for start := 0; start < n; start += chunk {
		err := s.db.Update(func(tx *bbolt.Tx) error {
			ab, err := writeApp(tx, "app")
			if err != nil {
				return err
			}
			for i := start; i < min(start+chunk, n); i++ {
				if _, _, err := loginUserTx(ab, "app", store.NewUser{OpenID: fmt.Sprintf("o-%d", i)}, base); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}
