package main

import (
	"bytes"
	"cmp"
	"fmt"
	"io"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// report holds the results of a run.
type report struct {
	cfg        config
	dir        string
	guardNames []string
	guard      [][]result // per target, per round
	guardWarm  []result   // per target

	logins []loginResults // per login site: bbolt first, then PostgreSQL
	raw    result
}

// failures is the number of failed operations in the whole run.
func (r *report) failures() int64 {
	var n int64
	for _, rs := range r.guard {
		for _, x := range rs {
			n += x.failed
		}
	}
	for _, x := range r.guardWarm {
		n += x.failed
	}
	for _, x := range r.logins {
		n += failed(x.newLogins) + failed(x.returningLogins) + failed(x.refreshes)
	}
	n += r.raw.failed
	return n
}

// median of xs (the mean of the middle two for an even count).
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(xs))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// verdict is the goal line's word for ratio.
func verdict(ratio, goal float64) string {
	if ratio >= goal {
		return "ok"
	}
	return "MISSED"
}

// print writes the tables and goal lines.
func (r *report) print(out io.Writer) error {
	var b bytes.Buffer
	c := r.cfg
	fmt.Fprintf(&b, "caddy-wechat-auth loopback load: %s/%s, %d CPUs, GOMAXPROCS %d, %s\n",
		runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.Version())
	fmt.Fprintf(&b, "%d workers; each phase stops after %v or %d requests; warm-up %v; data under %s\n",
		c.concurrency, c.duration, c.requests, c.warmup, filepath.Dir(r.dir))
	b.WriteString("client and server share this machine's CPUs: every figure includes the client's own cost\n\n")

	var loud []string
	note := func(name string, x result) {
		if x.failed > 0 {
			loud = append(loud, fmt.Sprintf("!! %s: %d requests FAILED (first: %s); not a clean measurement", name, x.failed, x.firstErr))
		}
	}

	if len(r.guard) > 0 {
		r.printGuard(&b, note)
	}
	b.WriteString("\nLogins and refreshes: EdDSA site, durable bbolt store. A login here is minting its code\n" +
		"at the emulator (POST /emulator/code) plus POST /wx/login: the minting is part of its cost.\n")
	raw := r.raw.rate()
	bolt := r.logins[0]
	rows := []struct {
		name string
		x    result
	}{
		{"login, new users", medianOf(bolt.newLogins)},
		{"login, returning users (pool of " + strconv.Itoa(c.users) + ")", medianOf(bolt.returningLogins)},
		{"refresh (each worker chains its tokens)", medianOf(bolt.refreshes)},
	}
	t := table{}
	t.row("phase", "per s", "done", "errors", "/ raw")
	for _, row := range rows {
		t.row(row.name, fmt.Sprintf("%.0f", row.x.rate()), strconv.FormatInt(row.x.ok, 10),
			errCell(row.x.failed), fmt.Sprintf("%.2f", ratio(row.x.rate(), raw)))
		note(row.name, row.x)
	}
	t.row("bbolt raw durable write (1 Put per Update, 1 writer)", fmt.Sprintf("%.0f", raw),
		strconv.FormatInt(r.raw.ok, 10), errCell(r.raw.failed), "")
	note("bbolt raw durable write", r.raw)
	t.write(&b)
	for _, row := range rows {
		q := ratio(row.x.rate(), raw)
		fmt.Fprintf(&b, "goal: %s >= %.2f x raw durable write: %s (%.2f)%s\n",
			row.name, loginGoal, verdict(q, loginGoal), q, unclean(row.x.failed+r.raw.failed))
	}
	if len(r.logins) > 1 {
		r.printPostgres(&b, note)
	}
	if len(loud) > 0 {
		b.WriteString("\n" + strings.Join(loud, "\n") + "\n")
	}
	_, err := out.Write(b.Bytes())
	return err
}

// printGuard writes the guard table and its goal lines.
func (r *report) printGuard(b *bytes.Buffer, note func(string, result)) {
	fmt.Fprintf(b, "Guard: GET %s on a `respond` route, Authorization: Bearer <valid token> sent to every route (req/s)\n", guardPath)
	var t table
	c := r.cfg
	head := []string{"phase"}
	for i := range c.rounds {
		head = append(head, "round "+strconv.Itoa(i+1))
	}
	t.row(append(head, "median", "errors")...)
	rates := make([][]float64, len(r.guard))
	var guardErrs []int64
	for i, rs := range r.guard {
		name := r.guardNames[i]
		var errs int64
		cells := []string{name}
		for _, x := range rs {
			rates[i] = append(rates[i], x.rate())
			cells = append(cells, fmt.Sprintf("%.0f", x.rate()))
			errs += x.failed
			note(name+" guard phase", x)
		}
		if i < len(r.guardWarm) {
			errs += r.guardWarm[i].failed
			note(name+" warm-up", r.guardWarm[i])
		}
		guardErrs = append(guardErrs, errs)
		t.row(append(cells, fmt.Sprintf("%.0f", median(rates[i])), errCell(errs))...)
	}
	ratios := make([]float64, len(r.guard))
	for i := 1; i < len(r.guard); i++ {
		var rs []float64
		cells := []string{r.guardNames[i] + "/open"}
		for k := range rates[i] {
			rs = append(rs, ratio(rates[i][k], rates[0][k]))
			cells = append(cells, fmt.Sprintf("%.2f", rs[k]))
		}
		ratios[i] = median(rs)
		t.row(append(cells, fmt.Sprintf("%.2f", ratios[i]), "")...)
	}
	t.write(b)
	for i := 1; i < len(r.guard); i++ {
		fmt.Fprintf(b, "goal: %s guard >= %.2f x open (median of the per-round ratios): %s (%.2f)%s\n",
			r.guardNames[i], guardGoal, verdict(ratios[i], guardGoal), ratios[i], unclean(guardErrs[0]+guardErrs[i]))
	}

}

// printPostgres writes the PostgreSQL logins and refreshes next to
// bbolt's, with the ratios of each round and their medians, and the goal
// lines.
func (r *report) printPostgres(b *bytes.Buffer, note func(string, result)) {
	bolt, pg := r.logins[0], r.logins[1]
	fmt.Fprintf(b, "\nThe same on the EdDSA site with the PostgreSQL store (pool size from the DSN; default\n"+
		"the larger of 16 and 4 per CPU), in %d rounds taking turns with bbolt phase by phase (medians):\n", len(pg.newLogins))
	rows := []struct {
		name     string
		bolt, pg []result
	}{
		{"login, new users", bolt.newLogins, pg.newLogins},
		{"login, returning users", bolt.returningLogins, pg.returningLogins},
		{"refresh", bolt.refreshes, pg.refreshes},
	}
	var t table
	t.row("phase", "bbolt per s", "PostgreSQL per s", "PostgreSQL errors", "PG / bbolt per round", "median")
	medians := make([]float64, len(rows))
	for k, row := range rows {
		qs := roundRatios(row.pg, row.bolt)
		medians[k] = median(qs)
		t.row(row.name, fmt.Sprintf("%.0f", medianOf(row.bolt).rate()), fmt.Sprintf("%.0f", medianOf(row.pg).rate()),
			errCell(failed(row.pg)), ratioList(qs), fmt.Sprintf("%.2f", medians[k]))
		for _, x := range row.pg {
			note(row.name+" (PostgreSQL)", x)
		}
	}
	t.write(b)
	for k, row := range rows {
		fmt.Fprintf(b, "goal: PostgreSQL %s >= %.2f x bbolt (median of the rounds): %s (%.2f)%s\n",
			row.name, pgGoal, verdict(medians[k], pgGoal), medians[k], unclean(failed(row.bolt)+failed(row.pg)))
	}
	qs := roundRatios(pg.returningLogins, pg.newLogins)
	q := median(qs)
	fmt.Fprintf(b, "goal: PostgreSQL returning-user logins >= %.2f x its new-user logins (per round %s): %s (%.2f)%s\n",
		pgRetGoal, ratioList(qs), verdict(q, pgRetGoal), q, unclean(failed(pg.newLogins)+failed(pg.returningLogins)))
}

// roundRatios are a[i]/b[i] for each round.
func roundRatios(a, b []result) []float64 {
	qs := make([]float64, min(len(a), len(b)))
	for i := range qs {
		qs[i] = ratio(a[i].rate(), b[i].rate())
	}
	return qs
}

// ratioList formats ratios for a table cell.
func ratioList(qs []float64) string {
	cells := make([]string, len(qs))
	for i, q := range qs {
		cells[i] = fmt.Sprintf("%.2f", q)
	}
	return strings.Join(cells, " ")
}

// medianOf is the result of rs with the median rate (the lower middle
// one for an even count); the zero result when there is none.
func medianOf(rs []result) result {
	if len(rs) == 0 {
		return result{}
	}
	s := slices.SortedFunc(slices.Values(rs), func(a, b result) int { return cmp.Compare(a.rate(), b.rate()) })
	return s[(len(s)-1)/2]
}

// failed is the number of failed operations of rs.
func failed(rs []result) int64 {
	var n int64
	for _, x := range rs {
		n += x.failed
	}
	return n
}

// errCell is an error count, flagged when not zero.
func errCell(n int64) string {
	if n > 0 {
		return strconv.FormatInt(n, 10) + " !!"
	}
	return "0"
}

// unclean marks a goal line whose phases had errors.
func unclean(n int64) string {
	if n > 0 {
		return " -- but its phases had ERRORS, see below"
	}
	return ""
}

// ratio is a/b, or 0 when b is not positive.
func ratio(a, b float64) float64 {
	if b <= 0 {
		return 0
	}
	return a / b
}

// table is a text table: the first column left-aligned, the others
// right-aligned, two spaces apart.
type table struct {
	rows [][]string
}

func (t *table) row(cells ...string) { t.rows = append(t.rows, cells) }

func (t *table) write(b *bytes.Buffer) {
	var widths []int
	for _, r := range t.rows {
		for i, c := range r {
			if i == len(widths) {
				widths = append(widths, 0)
			}
			widths[i] = max(widths[i], utf8.RuneCountInString(c))
		}
	}
	for _, r := range t.rows {
		var line strings.Builder
		for i, c := range r {
			pad := strings.Repeat(" ", widths[i]-utf8.RuneCountInString(c))
			if i == 0 {
				line.WriteString(c + pad)
				continue
			}
			line.WriteString("  " + pad + c)
		}
		b.WriteString(strings.TrimRight(line.String(), " ") + "\n")
	}
}
