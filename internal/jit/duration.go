package jit

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

var isoDuration = regexp.MustCompile(`^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$`)

// ParseISODuration parses the ISO 8601 durations Azure uses for
// maxRequestAccessDuration: PnDTnHnMnS with days, hours, minutes and
// (fractional) seconds, e.g. PT3H, PT1H30M, P1D, PT90S.
func ParseISODuration(s string) (time.Duration, error) {
	m := isoDuration.FindStringSubmatch(strings.ToUpper(strings.TrimSpace(s)))
	if m == nil || s == "P" || strings.HasSuffix(strings.ToUpper(s), "T") {
		return 0, fmt.Errorf("%q is not an ISO 8601 duration such as PT3H", s)
	}
	var d time.Duration
	units := []time.Duration{24 * time.Hour, time.Hour, time.Minute}
	for i, u := range units {
		if m[i+1] == "" {
			continue
		}
		n, err := strconv.ParseInt(m[i+1], 10, 64)
		if err != nil || n > 1e6 {
			return 0, fmt.Errorf("%q: number out of range", s)
		}
		d += time.Duration(n) * u
	}
	if m[4] != "" {
		f, err := strconv.ParseFloat(m[4], 64)
		if err != nil || f > 1e9 {
			return 0, fmt.Errorf("%q: seconds out of range", s)
		}
		d += time.Duration(f * float64(time.Second))
	}
	return d, nil
}
