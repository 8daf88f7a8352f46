// Package bench holds the benchmarks that span packages: the
// guard as Caddy runs it (WeChatAuth.ServeHTTP) against one bare
// golang-jwt parse of the same token, per signing algorithm, with and
// without the verified-token cache, and the revocation check. The module
// runs with metrics on, as under Caddy; BenchmarkGuardMetrics puts metrics
// off and on side by side.
//
// Run them side by side in one run and print the ratios:
//
//	bench/ratios.sh
//
// Goals: guard ServeHTTP within 1.5× of a bare parse; the
// revocation check under 100 ns with no allocation.
package bench
