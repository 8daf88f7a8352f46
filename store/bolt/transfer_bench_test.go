package bolt

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/wxauth/caddy-wechat-auth/store"
)

// BenchmarkExport exports an app of 20,000 users, every tenth of which has
// a second openid linked by unionid, and reports the cost per user.
func BenchmarkExport(b *testing.B) {
	const users, linkEvery = 20000, 10
	s := openBench(b)
	ctx := context.Background()
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	recs := make([]store.Record, 0, users+users/linkEvery)
	for i := 1; i <= users; i++ {
		recs = append(recs, store.Record{User: &store.User{ID: uint64(i), OpenID: fmt.Sprintf("openid-%08d", i), UnionID: fmt.Sprintf("union-%08d", i), CreatedAt: now, UpdatedAt: now}})
	}
	for i := linkEvery; i <= users; i += linkEvery {
		recs = append(recs, store.Record{OpenID: &store.OpenIDRecord{OpenID: fmt.Sprintf("linked-%08d", i), UserID: uint64(i)}})
	}
	if err := s.Import(ctx, "app", recs); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		n := 0
		if err := s.Export(ctx, "app", func(store.Record) error { n++; return nil }); err != nil {
			b.Fatal(err)
		}
		if n != len(recs) {
			b.Fatalf("Export gave %d records, want %d", n, len(recs))
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*users), "ns/user")
}
