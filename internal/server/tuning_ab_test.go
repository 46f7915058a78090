package server_test

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"
)

var (
	abVariants = flag.String("ab.off", "", "comma-separated optimisations for BenchmarkTuningAB to turn off, one at a time (DRAWBRIDGE_TUNING_OFF words)")
	abRounds   = flag.Int("ab.rounds", 16, "interleaved rounds of BenchmarkTuningAB")
)

// BenchmarkTuningAB runs BenchmarkRequestThroughAPI with every optimisation
// on ("base") and with each of -ab.off turned off, interleaved: each round
// runs every variant once, in an order rotated by the round, so that load
// from other processes falls on all of them alike.
//
//	go test -c ./internal/server/ && ./server.test -test.run '^$' -test.bench TuningAB -test.benchtime 3000x -ab.off rowcache,memo
func BenchmarkTuningAB(b *testing.B) {
	variants := []string{"base"}
	if *abVariants != "" {
		variants = append(variants, strings.Split(*abVariants, ",")...)
	}
	defer os.Unsetenv("DRAWBRIDGE_TUNING_OFF")
	for r := range *abRounds {
		for k := range variants {
			v := variants[(k+r)%len(variants)]
			off := v
			if v == "base" {
				off = ""
			}
			os.Setenv("DRAWBRIDGE_TUNING_OFF", off)
			b.Run(fmt.Sprintf("%s/r%02d", v, r), BenchmarkRequestThroughAPI)
		}
	}
}
