package jit_test

import (
	"math"
	"math/big"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/jit"
)

// isoOracle is the ISO 8601 grammar the parser accepts, written the slow
// and obvious way: a regular expression and exact big-integer arithmetic.
var isoOracle = regexp.MustCompile(`^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)(?:[.,](\d+))?S)?)?$`)

// oracleNanos returns the exact duration of s in nanoseconds (fraction
// beyond nanoseconds dropped) and whether s is in the grammar.
func oracleNanos(s string) (*big.Int, bool) {
	u := strings.ToUpper(strings.TrimSpace(s))
	m := isoOracle.FindStringSubmatch(u)
	if m == nil || u == "P" || strings.HasSuffix(u, "T") {
		return nil, false
	}
	total := new(big.Int)
	for i, unit := range []int64{24 * 3600e9, 3600e9, 60e9, 1e9} {
		if m[i+1] == "" {
			continue
		}
		n, _ := new(big.Int).SetString(m[i+1], 10)
		total.Add(total, n.Mul(n, big.NewInt(unit)))
	}
	if frac := m[5]; frac != "" {
		frac = (frac + "000000000")[:9]
		n, _ := new(big.Int).SetString(frac, 10)
		total.Add(total, n)
	}
	return total, true
}

// FuzzParseISODuration: the parser agrees with the oracle on every input:
// what the grammar accepts and fits a time.Duration parses to exactly the
// oracle's value; what does not fit is an overflow error (never a wrapped
// short duration); what the grammar refuses is an error. Errors are short.
// A parsed duration survives FormatISODuration and back.
func FuzzParseISODuration(f *testing.F) {
	for _, s := range []string{"PT3H", "pt1h30m", "P1D", "PT90S", "PT0.5S", "PT1,25S", "P1DT2H3M4.5S", " PT5M ",
		"P213504D", "P854016D", "P106751DT23H47M16.854775807S", "P106751DT23H47M16.854775808S",
		"PT0.0000000001S", "P", "PT", "P1DT", "PT1M1H", "P-1D", "PT1.5H", "P99999999999999999999D", "1h"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := jit.ParseISODuration(s)
		want, ok := oracleNanos(s)
		switch {
		case !ok:
			if err == nil {
				t.Fatalf("%q is outside the grammar but parsed as %v", s, d)
			}
		case want.Cmp(big.NewInt(math.MaxInt64)) > 0:
			if err == nil || !strings.Contains(err.Error(), "too long") {
				t.Fatalf("%q is %s ns, beyond a Duration, but parsed as %v, %v", s, want, d, err)
			}
		default:
			if err != nil || int64(d) != want.Int64() {
				t.Fatalf("%q = %v, %v; want %s ns", s, d, err, want)
			}
			back, err := jit.ParseISODuration(jit.FormatISODuration(d))
			if d > 0 && (err != nil || back != d) {
				t.Fatalf("%v -> %q -> %v, %v", d, jit.FormatISODuration(d), back, err)
			}
		}
		if err != nil && len(err.Error()) > 400 { // the input is quoted, cut to 64 bytes
			t.Fatalf("error of %d bytes echoes the input", len(err.Error()))
		}
	})
}

// FuzzParseDuration: both forms; the Go form agrees with time.ParseDuration,
// the ISO form with ParseISODuration; nothing is negative unless the Go form
// says so.
func FuzzParseDuration(f *testing.F) {
	for _, s := range []string{"3h", "PT3H", "90m", "1h30m", "1ns", "-1h", "9999999999h", "P213504D", "", "P", "1.5h"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := jit.ParseDuration(s)
		if strings.HasPrefix(strings.ToUpper(strings.TrimSpace(s)), "P") {
			iso, isoErr := jit.ParseISODuration(s)
			if (err == nil) != (isoErr == nil) || d != iso {
				t.Fatalf("%q: %v, %v; ISO parser %v, %v", s, d, err, iso, isoErr)
			}
			return
		}
		g, gErr := time.ParseDuration(strings.TrimSpace(s))
		if (err == nil) != (gErr == nil) || d != g {
			t.Fatalf("%q: %v, %v; time.ParseDuration %v, %v", s, d, err, g, gErr)
		}
	})
}

// FuzzParseSource: an accepted source prints as a string that parses back
// to the same source, contains itself, and is contained by "*".
func FuzzParseSource(f *testing.F) {
	for _, s := range []string{"*", "Any", "internet", "198.18.0.7", "198.18.0.0/15", "2001:2::/48", "2001:2::1",
		"::ffff:198.18.0.1", "::ffff:198.18.0.0/112", "10.1.2.3/8", "fe80::1%eth0", " 10.0.0.0/8 ", "", "300.1.1.1", "1.2.3.4/33"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		src, err := jit.ParseSource(s)
		if err != nil {
			return
		}
		back, err := jit.ParseSource(src.String())
		if err != nil || back != src {
			t.Fatalf("%q -> %q -> %v, %v", s, src.String(), back, err)
		}
		if !src.Contains(src) || !jit.AnySource.Contains(src) {
			t.Fatalf("%q: containment broken", s)
		}
		if !src.IsAny() && (src.Prefix().Addr().Is4In6() || src.Prefix().Addr().Zone() != "" || src.Prefix().Masked() != src.Prefix()) {
			t.Fatalf("%q parsed to a non-canonical prefix %v", s, src.Prefix())
		}
	})
}
