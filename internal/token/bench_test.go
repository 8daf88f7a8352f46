package token

import (
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// benchService returns a Service with one key of alg, that key, and a token
// issued at the real current time (the bare golang-jwt parse checks exp
// against time.Now, so the services use the real clock too).
func benchService(b *testing.B, m keyMaterial, alg string, cacheSize int) (*Service, *Key, string) {
	b.Helper()
	k := m.key(b, alg, "")
	s, err := New(Config{
		Keys:      []*Key{k},
		Issuer:    testIssuer,
		Audience:  testAudience,
		AccessTTL: testTTL,
		Leeway:    testLeeway,
		CacheSize: cacheSize,
	})
	if err != nil {
		b.Fatal(err)
	}
	tok, _, err := s.Issue(testSubject, "bench-jti", time.Now())
	if err != nil {
		b.Fatal(err)
	}
	return s, k, tok
}

// BenchmarkVerify measures Service.Verify of one valid token per algorithm,
// with the verified-token cache disabled and enabled. HS256 never uses the
// cache, so its two variants measure the same path.
func BenchmarkVerify(b *testing.B) {
	m := genKeys(b)
	for _, alg := range allAlgs {
		for _, mode := range []struct {
			name string
			size int
		}{{"nocache", -1}, {"cache", 0}} {
			b.Run(alg+"/"+mode.name, func(b *testing.B) {
				s, _, tok := benchService(b, m, alg, mode.size)
				if _, err := s.Verify(tok); err != nil {
					b.Fatal(err)
				}
				b.ReportAllocs()
				for b.Loop() {
					if _, err := s.Verify(tok); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkBareParse is the baseline: one plain golang-jwt ParseWithClaims
// into RegisteredClaims of the same tokens, with a key function that returns
// the key and nothing else.
func BenchmarkBareParse(b *testing.B) {
	m := genKeys(b)
	for _, alg := range allAlgs {
		b.Run(alg, func(b *testing.B) {
			_, k, tok := benchService(b, m, alg, -1)
			vk := k.verifyKey
			keyfunc := func(*jwt.Token) (any, error) { return vk, nil }
			if _, err := jwt.ParseWithClaims(tok, &jwt.RegisteredClaims{}, keyfunc); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := jwt.ParseWithClaims(tok, &jwt.RegisteredClaims{}, keyfunc); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkVerifyParallel measures cached EdDSA verification from all
// processors at once over a working set of tokens, to show cache contention.
func BenchmarkVerifyParallel(b *testing.B) {
	m := genKeys(b)
	s, _, _ := benchService(b, m, AlgEdDSA, 0)
	toks := make([]string, 256)
	for i := range toks {
		id, err := NewID()
		if err != nil {
			b.Fatal(err)
		}
		if toks[i], _, err = s.Issue(testSubject, id, time.Now()); err != nil {
			b.Fatal(err)
		}
		if _, err := s.Verify(toks[i]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, err := s.Verify(toks[i%len(toks)]); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
}
