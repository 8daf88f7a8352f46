package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"go.etcd.io/bbolt"
)

// guardTarget is one of the interleaved guard phases.
type guardTarget struct {
	name   string
	base   string
	tokens []string // one per worker
}

// request is the phase's operation: one authenticated GET of the
// target's route, each worker with its own token.
func (t guardTarget) request(l *loader) op {
	return func(ctx context.Context, w int) error { return l.get(ctx, t.base, t.tokens[w%len(t.tokens)]) }
}

// guardPhases measures the open and the protected sites, interleaved.
func (l *loader) guardPhases(ctx context.Context, rep *report) error {
	n := l.cfg.concurrency
	hsTokens, err := l.loginMany(ctx, l.hs, "o_load_guard_hs256_", n)
	if err != nil {
		return fmt.Errorf("logging in the HS256 guard users: %w", err)
	}
	edTokens, err := l.loginMany(ctx, l.eddsa, "o_load_guard_eddsa_", n)
	if err != nil {
		return fmt.Errorf("logging in the EdDSA guard users: %w", err)
	}
	esTokens, err := l.loginMany(ctx, l.es, "o_load_guard_es256_", n)
	if err != nil {
		return fmt.Errorf("logging in the ES256 guard users: %w", err)
	}
	rsTokens, err := l.loginMany(ctx, l.rs, "o_load_guard_rs256_", n)
	if err != nil {
		return fmt.Errorf("logging in the RS256 guard users: %w", err)
	}
	// The open route gets the same header, so only the guard differs.
	targets := []guardTarget{{"open", l.open, edTokens}, {"HS256", l.hs, hsTokens}, {"EdDSA", l.eddsa, edTokens},
		{"ES256", l.es, esTokens}, {"RS256", l.rs, rsTokens}}

	// Sanity: the guard must really be guarding, with its own key.
	checks := []struct {
		what      string
		base, tok string
		want      int
	}{
		{"open route", l.open, "", http.StatusOK},
		{"HS256 route without a token", l.hs, "", http.StatusUnauthorized},
		{"EdDSA route without a token", l.eddsa, "", http.StatusUnauthorized},
		{"HS256 route with an EdDSA token", l.hs, edTokens[0], http.StatusUnauthorized},
		{"EdDSA route with an HS256 token", l.eddsa, hsTokens[0], http.StatusUnauthorized},
		{"HS256 route with its token", l.hs, hsTokens[0], http.StatusOK},
		{"EdDSA route with its token", l.eddsa, edTokens[0], http.StatusOK},
		{"ES256 route without a token", l.es, "", http.StatusUnauthorized},
		{"ES256 route with an RS256 token", l.es, rsTokens[0], http.StatusUnauthorized},
		{"ES256 route with its token", l.es, esTokens[0], http.StatusOK},
		{"RS256 route without a token", l.rs, "", http.StatusUnauthorized},
		{"RS256 route with an ES256 token", l.rs, esTokens[0], http.StatusUnauthorized},
		{"RS256 route with its token", l.rs, rsTokens[0], http.StatusOK},
	}
	for _, c := range checks {
		err := l.get(ctx, c.base, c.tok)
		var se *statusError
		switch {
		case c.want == http.StatusOK && err != nil,
			c.want != http.StatusOK && (!errors.As(err, &se) || se.status != c.want):
			return fmt.Errorf("sanity check %s: want status %d, got %v", c.what, c.want, err)
		}
	}

	rep.guard = make([][]result, len(targets))
	for _, t := range targets {
		rep.guardNames = append(rep.guardNames, t.name)
		if l.cfg.warmup > 0 {
			fmt.Fprintf(l.progress, "load: warming up %s\n", t.name)
			rep.guardWarm = append(rep.guardWarm, l.drive(ctx, n, l.cfg.requests, l.cfg.warmup, t.request(l)))
		}
	}
	for round := range l.cfg.rounds {
		for i, t := range targets {
			fmt.Fprintf(l.progress, "load: guard round %d/%d: %s\n", round+1, l.cfg.rounds, t.name)
			rep.guard[i] = append(rep.guard[i], l.drive(ctx, n, l.cfg.requests, l.cfg.duration, t.request(l)))
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("guard phases: interrupted: %w", err)
			}
		}
	}
	return nil
}

// loginMany logs in n users named prefix+i at base and returns their
// access tokens.
func (l *loader) loginMany(ctx context.Context, base, prefix string, n int) ([]string, error) {
	toks := make([]string, n)
	var seq atomic.Int64
	err := l.setup(ctx, "logging in "+strconv.Itoa(n)+" users", n, func(ctx context.Context, _ int) error {
		i := seq.Add(1) - 1
		t, err := l.login(ctx, base, prefix+strconv.FormatInt(i, 10))
		if err != nil {
			return err
		}
		toks[i] = t.Token
		return nil
	})
	return toks, err
}

// loginSite is a site whose logins and refreshes are measured.
type loginSite struct {
	name string // its store, as the report names it
	base string
}

// loginResults are one site's login and refresh rates, one result per
// round.
type loginResults struct {
	site                                  string
	newLogins, returningLogins, refreshes []result
}

// loginSites are the sites the login phases measure: the EdDSA site on
// bbolt, and with -postgres the EdDSA site on PostgreSQL.
func (l *loader) loginSites() []loginSite {
	sites := []loginSite{{"bbolt", l.eddsa}}
	if l.pg != "" {
		sites = append(sites, loginSite{"PostgreSQL", l.pg})
	}
	return sites
}

// loginRounds is how many rounds the login phases run: one with bbolt
// alone; with PostgreSQL, -rounds, so that the ratios are medians of
// rounds measured side by side.
func (l *loader) loginRounds() int {
	if l.pg == "" {
		return 1
	}
	return l.cfg.rounds
}

// loginPhases measures new-user logins, returning-user logins and
// refreshes on each login site, the sites taking turns phase by phase
// (and, with several rounds, round by round) so that they run under the
// same conditions.
func (l *loader) loginPhases(ctx context.Context, rep *report) error {
	n := l.cfg.concurrency
	sites := l.loginSites()
	rep.logins = make([]loginResults, len(sites))
	label := func(st loginSite, what string, round int) string {
		return fmt.Sprintf("%s (%s, round %d/%d)", what, st.name, round+1, l.loginRounds())
	}
	pool := func(i int64) string { return "o_load_pool_" + strconv.FormatInt(i%int64(l.cfg.users), 10) }
	newSeq := make([]atomic.Int64, len(sites))
	chains := make([][]string, len(sites))
	for i, st := range sites {
		rep.logins[i].site = st.name
		fmt.Fprintf(l.progress, "load: creating %d returning users (%s)\n", l.cfg.users, st.name)
		var seq atomic.Int64
		if err := l.setup(ctx, "creating the returning users ("+st.name+")", l.cfg.users, func(ctx context.Context, _ int) error {
			_, err := l.login(ctx, st.base, pool(seq.Add(1)-1))
			return err
		}); err != nil {
			return err
		}
		// Each worker walks its own session's refresh-token chain.
		chains[i] = make([]string, n)
		for w := range chains[i] {
			t, err := l.login(ctx, st.base, "o_load_refresh_"+strconv.Itoa(w))
			if err != nil {
				return fmt.Errorf("logging in the refresh users (%s): %w", st.name, err)
			}
			chains[i][w] = t.RefreshToken
		}
	}

	for round := range l.loginRounds() {
		for i, st := range sites {
			r, err := l.measure(ctx, label(st, "logins of new users", round), n, func(ctx context.Context, _ int) error {
				t, err := l.login(ctx, st.base, "o_load_new_"+strconv.FormatInt(newSeq[i].Add(1), 10))
				if err == nil && !t.NewUser {
					err = errors.New("a new openid logged in as an existing user")
				}
				return err
			})
			if err != nil {
				return err
			}
			rep.logins[i].newLogins = append(rep.logins[i].newLogins, r)
		}
		for i, st := range sites {
			var seq atomic.Int64
			r, err := l.measure(ctx, label(st, "logins of returning users", round), n, func(ctx context.Context, _ int) error {
				t, err := l.login(ctx, st.base, pool(seq.Add(1)))
				if err == nil && t.NewUser {
					err = errors.New("a returning user was created again")
				}
				return err
			})
			if err != nil {
				return err
			}
			rep.logins[i].returningLogins = append(rep.logins[i].returningLogins, r)
		}
		for i, st := range sites {
			r, err := l.measure(ctx, label(st, "refreshes", round), n, func(ctx context.Context, w int) error {
				t, err := l.refresh(ctx, st.base, chains[i][w])
				if err != nil {
					// The chain may be broken: start a new one (not counted).
					if t, lerr := l.login(ctx, st.base, "o_load_refresh_"+strconv.Itoa(w)); lerr == nil {
						chains[i][w] = t.RefreshToken
					}
					return err
				}
				chains[i][w] = t.RefreshToken
				return nil
			})
			if err != nil {
				return err
			}
			rep.logins[i].refreshes = append(rep.logins[i].refreshes, r)
		}
	}
	return nil
}

// rawPhase measures bbolt's raw durable write rate in dir's file system:
// one 64-byte Put per db.Update, one writer, each commit fsynced.
func (l *loader) rawPhase(ctx context.Context, rep *report, path string) (err error) {
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return fmt.Errorf("opening the raw bbolt file: %w", err)
	}
	defer func() {
		if cerr := db.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("closing the raw bbolt file: %w", cerr)
		}
	}()
	bucket := []byte("raw")
	if err := db.Update(func(tx *bbolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucket)
		return err
	}); err != nil {
		return fmt.Errorf("creating the raw bucket: %w", err)
	}
	val := make([]byte, 64)
	var seq uint64 // one writer: no synchronisation needed
	rep.raw, err = l.measure(ctx, "raw durable bbolt writes", 1, func(context.Context, int) error {
		seq++
		key := binary.BigEndian.AppendUint64(nil, seq)
		return db.Update(func(tx *bbolt.Tx) error { return tx.Bucket(bucket).Put(key, val) })
	})
	return err
}
