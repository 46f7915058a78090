package server_test

import (
	"flag"
	"fmt"
	"strings"
	"testing"

	"github.com/drawbridge/drawbridge/internal/store/sqlite"
)

var (
	abVariants = flag.String("ab.off", "rowcache,memo", "comma-separated caches (rowcache, memo) for BenchmarkTuningAB to turn off, one at a time")
	abRounds   = flag.Int("ab.rounds", 16, "interleaved rounds of BenchmarkTuningAB")
)

// benchSQLiteOptions are the options startBenchServer opens SQLite with
// (BenchmarkTuningAB switches them).
var benchSQLiteOptions sqlite.Options

// abOptions maps a variant's name to the options that turn it off.
var abOptions = map[string]sqlite.Options{
	"base":     {},
	"rowcache": {NoRowCache: true},
	"memo":     {NoDecodeMemo: true},
}

// BenchmarkTuningAB runs BenchmarkRequestThroughAPI with every cache on
// ("base") and with each of -ab.off turned off, interleaved: each round
// runs every variant once, in an order rotated by the round, so that load
// from other processes falls on all of them alike.
//
//	go test -c ./internal/server/ && ./server.test -test.run '^$' -test.bench TuningAB -test.benchtime 3000x -ab.rounds 16
func BenchmarkTuningAB(b *testing.B) {
	variants := append([]string{"base"}, strings.Split(*abVariants, ",")...)
	defer func() { benchSQLiteOptions = sqlite.Options{} }()
	for r := range *abRounds {
		for k := range variants {
			v := variants[(k+r)%len(variants)]
			o, ok := abOptions[v]
			if !ok {
				b.Fatalf("unknown variant %q", v)
			}
			benchSQLiteOptions = o
			b.Run(fmt.Sprintf("%s/r%02d", v, r), BenchmarkRequestThroughAPI)
		}
	}
}
