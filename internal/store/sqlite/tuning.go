package sqlite

import (
	"os"
	"strings"
)

// tuning turns single optimisations off, for A/B measurement only
// (BENCHMARKS.md): DRAWBRIDGE_TUNING_OFF lists the ones to turn off,
// comma-separated. Read once per Open.
type tuning struct {
	noRowCache, noActiveCache, noKeyIDCache, noDecodeMemo, noHeadDefer, noOptimistic, noCanonicalRows, noBoundStmts bool
}

func tuningFromEnv() tuning {
	var t tuning
	for _, w := range strings.Split(os.Getenv("DRAWBRIDGE_TUNING_OFF"), ",") {
		switch w {
		case "rowcache":
			t.noRowCache = true
		case "activecache":
			t.noActiveCache = true
		case "keyidcache":
			t.noKeyIDCache = true
		case "memo":
			t.noDecodeMemo = true
		case "headdefer":
			t.noHeadDefer = true
		case "optimistic":
			t.noOptimistic = true
		case "canonical":
			t.noCanonicalRows = true
		case "bound":
			t.noBoundStmts = true
		}
	}
	return t
}
