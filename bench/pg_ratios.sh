#!/usr/bin/env bash
# Runs the PostgreSQL benchmarks (logins, refreshes, raw durable commits) in one run and
# prints the ratios with their goals. Needs a PostgreSQL server: set
# WECHAT_AUTH_TEST_POSTGRES (default postgres://postgres@127.0.0.1:5432/test?sslmode=disable).
# Usage: bench/pg_ratios.sh [count] [operations per run]
# (each run of each benchmark: one client makes ~500 durable commits a
# second on a typical SSD, so the defaults take a few minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
count=${1:-3}
ops=${2:-2000}
out=$(mktemp)
trap 'rm -f "$out"' EXIT

# -count repeats each benchmark; run them as rounds so that every round
# measures the baseline next to what is compared with it.
for ((i = 1; i <= count; i++)); do
	go test -run '^$' -bench 'PostgresRawTx|PostgresLogin|PostgresRefresh' -benchtime "${ops}x" ./bench 2>/dev/null | grep -E '^Benchmark' | tee -a "$out"
done
go test -run '^$' -bench 'GuardServeHTTPPostgres' -benchmem -benchtime 200000x -count "$count" ./bench 2>/dev/null | grep -E '^Benchmark' | tee -a "$out"
go test -run '^$' -bench 'RevocationPropagation' -benchtime 1x -count "$count" ./bench 2>/dev/null | grep -E '^Benchmark' | tee -a "$out"

echo
echo "medians of $count runs (N clients on a pool of N connections):"
awk '
function median(list,   a, n, i, j, t) {
	n = split(list, a, " ")
	for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
	return a[int((n + 1) / 2)]
}
/^Benchmark/ {
	name = $1; sub(/-[0-9]+$/, "", name)
	for (i = 3; i < NF; i++) {
		if ($(i + 1) == "ops/s") ops[name] = ops[name] " " $i
		if ($(i + 1) == "ns/op") ns[name] = ns[name] " " $i
		if ($(i + 1) == "p50-ms") p50 = p50 " " $i
		if ($(i + 1) == "p99-ms") p99 = p99 " " $i
	}
}
END {
	printf "%-24s %8s %10s %8s %10s\n", "", "clients", "per second", "ratio", "goal >=0.5"
	split("1 4 16", cs, " ")
	n = split("BenchmarkPostgresRawTx|raw one-row transactions|BenchmarkPostgresLogin/new|logins, new users|BenchmarkPostgresLogin/returning|logins, returning users|BenchmarkPostgresRefresh|refreshes", f, "|")
	for (i = 1; i < n; i += 2) {
		for (c = 1; c <= 3; c++) {
			k = "/clients=" cs[c]
			raw = median(ops["BenchmarkPostgresRawTx" k])
			v = median(ops[f[i] k])
			if (v == "") continue
			if (i == 1) printf "%-24s %8s %10.0f\n", f[i + 1], cs[c], v
			else printf "%-24s %8s %10.0f %8.2f %10s\n", f[i + 1], cs[c], v, v / raw, (v / raw >= 0.5 ? "ok" : "missed")
		}
	}
	b = median(ns["BenchmarkGuardServeHTTPPostgres/bolt"]); p = median(ns["BenchmarkGuardServeHTTPPostgres/postgres"])
	printf "guard ServeHTTP: %.0f ns with bbolt, %.0f ns with PostgreSQL (ratio %.2f; the guard reads no storage)\n", b, p, b / p
	printf "revocation to a second instance, 100 logouts: p50 %.1f ms, p99 %.1f ms (goal p99 <= 1000 ms)\n", median(p50), median(p99)
}' "$out"
