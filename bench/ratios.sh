#!/usr/bin/env bash
# Runs the guard benchmarks side by side in one run and prints the ratios
# the project sets goals for. Usage: bench/ratios.sh [benchtime] [count]
set -euo pipefail
cd "$(dirname "$0")/.."
benchtime=${1:-1s}
count=${2:-3}
out=$(mktemp)
trap 'rm -f "$out"' EXIT

go test -run '^$' -bench 'GuardServeHTTP|GuardNoCache|BareParse|RevocationCheck|RequestReplacer' \
	-benchmem -benchtime "$benchtime" -count "$count" ./bench 2>/dev/null | tee "$out" | grep -E '^Benchmark'

echo
echo "medians of $count runs:"
awk '
/^Benchmark/ {
	name = $1; sub(/-[0-9]+$/, "", name)
	ns[name] = ns[name] " " $3; allocs[name] = $7
}
function median(list,   a, n, i, j, t) {
	n = split(list, a, " ")
	for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
	return a[int((n + 1) / 2)]
}
END {
	split("HS256 EdDSA ES256 RS256", algs, " ")
	printf "%-8s %14s %14s %14s %10s %16s %8s\n", "alg", "ServeHTTP ns", "bare parse ns", "no-cache ns", "ratio", "no-cache ratio", "goal"
	for (i = 1; i <= 4; i++) {
		a = algs[i]
		g = median(ns["BenchmarkGuardServeHTTP/" a]); p = median(ns["BenchmarkBareParse/" a])
		nc = median(ns["BenchmarkGuardNoCache/" a "/nocache"])
		printf "%-8s %14.0f %14.0f %14.0f %10.2f %16.2f %8s\n", a, g, p, nc, g / p, nc / p, (g / p <= 1.5 ? "<=1.5 ok" : "MISSED")
	}
	printf "(ServeHTTP includes Caddy'"'"'s per-request replacer, %.0f ns, which an unprotected route pays too)\n", median(ns["BenchmarkRequestReplacer"])
	r = median(ns["BenchmarkRevocationCheck/revoked=100000"])
	printf "revocation check, 100k revoked: %.1f ns, %s allocs (goal < 100 ns, 0 allocs)\n", r, allocs["BenchmarkRevocationCheck/revoked=100000"]
}' "$out"
