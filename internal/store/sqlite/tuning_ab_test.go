package sqlite

import (
	"flag"
	"fmt"
	"strings"
	"testing"
)

var (
	abVariants = flag.String("ab.off", "rowcache,memo", "comma-separated caches (rowcache, memo) for BenchmarkTuningAB to turn off, one at a time")
	abRounds   = flag.Int("ab.rounds", 16, "interleaved rounds of BenchmarkTuningAB")
)

// abOptions maps a variant's name to the options that turn it off.
var abOptions = map[string]Options{
	"base":     {},
	"rowcache": {NoRowCache: true},
	"memo":     {NoDecodeMemo: true},
}

// BenchmarkTuningAB runs BenchmarkInsertRequestTx and
// BenchmarkInsertRequestParallel with every cache on ("base") and with each
// of -ab.off turned off, interleaved: each round runs every variant once,
// in an order rotated by the round, so that load from other processes falls
// on all of them alike.
//
//	go test -c ./internal/store/sqlite/ && ./sqlite.test -test.run '^$' -test.bench TuningAB -test.benchtime 3000x -ab.rounds 16
func BenchmarkTuningAB(b *testing.B) {
	variants := append([]string{"base"}, strings.Split(*abVariants, ",")...)
	defer func() { benchOptions = Options{} }()
	for r := range *abRounds {
		for k := range variants {
			v := variants[(k+r)%len(variants)]
			o, ok := abOptions[v]
			if !ok {
				b.Fatalf("unknown variant %q", v)
			}
			benchOptions = o
			b.Run(fmt.Sprintf("serial/%s/r%02d", v, r), BenchmarkInsertRequestTx)
			b.Run(fmt.Sprintf("parallel/%s/r%02d", v, r), BenchmarkInsertRequestParallel)
		}
	}
}
