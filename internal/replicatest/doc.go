// Package replicatest holds tests (and benchmarks) that run several real
// `drawbridge server` processes on one PostgreSQL database: racing
// requests, expiry exactly once, kill -9 of a replica, and load.
package replicatest
