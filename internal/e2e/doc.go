// Package e2e holds end-to-end tests of drawbridge on real Linux hosts: it
// builds the drawbridge binary, runs `drawbridge server` and `drawbridge
// agent` as real processes, builds a "vm" network namespace and client
// namespaces A and B (addresses from 198.18.0.0/15 and 2001:2::/48), and
// asserts with real TCP connects. Everything needs root; tests skip with the
// reason otherwise.
//
//	go test ./internal/e2e/                                   # the e2e test (~30 s)
//	go test -run '^$' -bench . -benchtime 1x ./internal/e2e/  # time-to-open and time-to-close, drawbridge vs fwknop
//
// The benchmarks never run under plain `go test`.
package e2e
