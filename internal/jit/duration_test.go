package jit_test

import (
	"strings"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/jit"
)

func TestParseISODuration(t *testing.T) {
	good := map[string]time.Duration{
		"PT3H":            3 * time.Hour,
		"pt1h30m":         90 * time.Minute,
		"P1D":             24 * time.Hour,
		"P1DT1S":          24*time.Hour + time.Second,
		"PT90S":           90 * time.Second,
		"PT0.5S":          500 * time.Millisecond,
		"PT1,25S":         1250 * time.Millisecond,
		" PT5M ":          5 * time.Minute,
		"P106751D":        106751 * 24 * time.Hour,
		"PT2562047H":      2562047 * time.Hour,
		"PT0.0000000001S": 0, // below a nanosecond: dropped, refused by the callers' minimum
	}
	for in, want := range good {
		if got, err := jit.ParseISODuration(in); err != nil || got != want {
			t.Errorf("ParseISODuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "P", "PT", "P1", "PT1", "1H", "PT1D", "P1H", "PT1M1H", "PT1H1H", "P1.5D", "PT1.5H",
		"PT.5S", "PT1.S", "PT1.2.3S", "P-1D", "PT+1H", "P1DT", "PT1HX", "P1W"} {
		if d, err := jit.ParseISODuration(in); err == nil {
			t.Errorf("ParseISODuration(%q) = %v, want an error", in, d)
		}
	}
}

// Day, hour or second counts beyond time.Duration's range used to wrap
// around: P213504D parsed as about 25 minutes, P854016D as about 102.
func TestParseISODurationOverflow(t *testing.T) {
	for _, in := range []string{"P213504D", "P854016D", "P106752D", "PT2562048H", "PT153722868M",
		"PT9223372037S", "PT9223372036.9999999999S", "P106751DT23H59M", "P99999999999999999999999D"} {
		d, err := jit.ParseISODuration(in)
		if err == nil {
			t.Errorf("ParseISODuration(%q) = %v, want an overflow error", in, d)
			continue
		}
		if !strings.Contains(err.Error(), "too long") {
			t.Errorf("ParseISODuration(%q): %v, want it to say too long", in, err)
		}
	}
}

func TestParseDurationBothForms(t *testing.T) {
	for _, pair := range [][2]string{{"3h", "PT3H"}, {"90m", "PT1H30M"}, {"45s", "PT45S"}, {"1h0m30s", "PT1H30S"}} {
		a, errA := jit.ParseDuration(pair[0])
		b, errB := jit.ParseDuration(pair[1])
		if errA != nil || errB != nil || a != b {
			t.Errorf("ParseDuration(%q) = %v, %v; ParseDuration(%q) = %v, %v", pair[0], a, errA, pair[1], b, errB)
		}
	}
	for _, in := range []string{"3", "3x", "9999999999999h", "P213504D"} {
		if d, err := jit.ParseDuration(in); err == nil {
			t.Errorf("ParseDuration(%q) = %v, want an error", in, d)
		}
	}
	long := strings.Repeat("9", 1<<20) + "h"
	if _, err := jit.ParseDuration(long); err == nil || len(err.Error()) > 200 {
		t.Errorf("a 1 MiB duration: error %d bytes long, want a short error", len(err.Error()))
	}
}

func TestFormatParseRoundTrip(t *testing.T) {
	for _, d := range []time.Duration{time.Second, 90 * time.Second, 3 * time.Hour, 24 * time.Hour, 1500 * time.Millisecond, 36 * time.Hour} {
		got, err := jit.ParseISODuration(jit.FormatISODuration(d))
		if err != nil || got != d {
			t.Errorf("%v -> %q -> %v, %v", d, jit.FormatISODuration(d), got, err)
		}
	}
}
