package jit

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// MinRequestDuration is the shortest access a request may ask for: anything
// shorter would end before the firewall change lands (a "1ns" grant).
const MinRequestDuration = time.Second

// errDurationOverflow is returned for durations beyond time.Duration's
// ~292 years, which would otherwise wrap around to a short or negative value.
var errDurationOverflow = errors.New("too long (the limit is about 292 years)")

// ParseISODuration parses the ISO 8601 durations Azure uses for
// maxRequestAccessDuration: PnDTnHnMnS with days, hours, minutes and
// (fractional) seconds, e.g. PT3H, PT1H30M, P1D, PT90S. A value that does not
// fit a time.Duration is an error, never a wrapped-around short duration.
func ParseISODuration(s string) (time.Duration, error) {
	d, err := parseISO(strings.ToUpper(strings.TrimSpace(s)))
	switch {
	case errors.Is(err, errDurationOverflow):
		return 0, fmt.Errorf("%s: %w", quoteBounded(s), err)
	case err != nil:
		return 0, fmt.Errorf("%s is not an ISO 8601 duration such as PT3H", quoteBounded(s))
	}
	return d, nil
}

// ParseDuration accepts ISO 8601 (PT3H) and Go syntax (3h, 90s, 1h30m), the
// two forms the API and CLI take for every duration field.
func ParseDuration(s string) (time.Duration, error) {
	if strings.HasPrefix(strings.ToUpper(strings.TrimSpace(s)), "P") {
		return ParseISODuration(s)
	}
	d, err := time.ParseDuration(strings.TrimSpace(s)) // reports overflow itself
	if err != nil {
		return 0, fmt.Errorf("%s is not a duration (PT1H, 90s, 1h30m)", quoteBounded(s))
	}
	return d, nil
}

// parseRequestDuration parses a request's duration: either form, at least
// MinRequestDuration (the upper bound is the policy's maximum).
func parseRequestDuration(s string) (time.Duration, error) {
	d, err := ParseDuration(s)
	if err != nil {
		return 0, err
	}
	if d < MinRequestDuration {
		return 0, fmt.Errorf("duration %s is shorter than the minimum %s", quoteBounded(s), MinRequestDuration)
	}
	return d, nil
}

// quoteBounded quotes s for an error message, cut to a bounded prefix so a
// huge input is never echoed whole.
func quoteBounded(s string) string {
	const max = 64
	if len(s) > max {
		return strconv.Quote(s[:max]) + "…"
	}
	return strconv.Quote(s)
}

// isoUnits are the designators allowed after P (date part) and after T (time
// part), in the order ISO 8601 requires.
var isoUnits = [2][]struct {
	c byte
	d time.Duration
}{
	{{'D', 24 * time.Hour}},
	{{'H', time.Hour}, {'M', time.Minute}, {'S', time.Second}},
}

// parseISO parses an upper-cased PnDTnHnMnS, checking every multiplication
// and addition for overflow.
func parseISO(s string) (time.Duration, error) {
	rest, ok := strings.CutPrefix(s, "P")
	if !ok || rest == "" {
		return 0, errors.New("syntax")
	}
	date, clock, hasT := strings.Cut(rest, "T")
	if hasT && clock == "" {
		return 0, errors.New("syntax")
	}
	var total time.Duration
	for part, text := range [2]string{date, clock} {
		next := 0 // index of the next unit allowed in this part
		for text != "" {
			num, unit, after, err := isoComponent(text)
			if err != nil {
				return 0, err
			}
			for next < len(isoUnits[part]) && isoUnits[part][next].c != unit {
				next++
			}
			if next == len(isoUnits[part]) || (strings.Contains(num, ".") && unit != 'S') {
				return 0, errors.New("syntax")
			}
			v, err := scale(num, isoUnits[part][next].d)
			if err != nil {
				return 0, err
			}
			if total > math.MaxInt64-v {
				return 0, errDurationOverflow
			}
			total += v
			next++
			text = after
		}
	}
	return total, nil
}

// isoComponent splits "12.5S..." into "12.5", 'S' and the rest.
func isoComponent(s string) (num string, unit byte, rest string, err error) {
	i := 0
	for i < len(s) && (s[i] >= '0' && s[i] <= '9' || s[i] == '.' || s[i] == ',') {
		i++
	}
	if i == 0 || i == len(s) {
		return "", 0, "", errors.New("syntax")
	}
	return strings.ReplaceAll(s[:i], ",", "."), s[i], s[i+1:], nil
}

// scale returns num units (num: digits, optionally a fraction) as a
// Duration, or errDurationOverflow.
func scale(num string, unit time.Duration) (time.Duration, error) {
	whole, frac, hasFrac := strings.Cut(num, ".")
	if whole == "" || (hasFrac && frac == "") || strings.ContainsAny(frac, ".") {
		return 0, errors.New("syntax")
	}
	n, err := strconv.ParseUint(whole, 10, 64)
	if errors.Is(err, strconv.ErrRange) || (err == nil && n > uint64(math.MaxInt64/int64(unit))) {
		return 0, errDurationOverflow
	}
	if err != nil {
		return 0, errors.New("syntax")
	}
	d := time.Duration(n) * unit
	// The fraction (seconds only): nanosecond precision, further digits dropped.
	var ns time.Duration
	for i, scaleNs := 0, unit/10; i < len(frac); i++ {
		if frac[i] < '0' || frac[i] > '9' {
			return 0, errors.New("syntax")
		}
		ns += time.Duration(frac[i]-'0') * scaleNs
		scaleNs /= 10
	}
	if d > math.MaxInt64-ns {
		return 0, errDurationOverflow
	}
	return d + ns, nil
}

// FormatISODuration renders d the way Azure does (PT3H, PT1H30M, PT45S).
func FormatISODuration(d time.Duration) string {
	if d <= 0 {
		return "PT0S"
	}
	var b strings.Builder
	b.WriteString("P")
	if days := d / (24 * time.Hour); days > 0 && d%(24*time.Hour) == 0 {
		fmt.Fprintf(&b, "%dD", days)
		return b.String()
	}
	b.WriteString("T")
	h := d / time.Hour
	d -= h * time.Hour
	m := d / time.Minute
	d -= m * time.Minute
	if h > 0 {
		fmt.Fprintf(&b, "%dH", h)
	}
	if m > 0 {
		fmt.Fprintf(&b, "%dM", m)
	}
	if d > 0 {
		fmt.Fprintf(&b, "%sS", strconv.FormatFloat(d.Seconds(), 'f', -1, 64))
	}
	return b.String()
}
