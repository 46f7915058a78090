package api

import (
	"testing"
	"time"
)

// Token lifetimes take days, Go syntax and ISO 8601, as every duration.
func TestParseExpiryForms(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"": 0, "30d": 720 * time.Hour, "P30D": 720 * time.Hour, "p30d": 720 * time.Hour,
		"12h": 12 * time.Hour, "PT12H": 12 * time.Hour, "PT1H30M": 90 * time.Minute, "90m": 90 * time.Minute,
	} {
		got, err := ParseExpiry(in)
		if err != nil || got != want {
			t.Errorf("ParseExpiry(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"0d", "3651d", "xd", "-1h", "PT0S", "P", "PT", "1x", "P1Y"} {
		if d, err := ParseExpiry(bad); err == nil {
			t.Errorf("ParseExpiry(%q) = %v, want an error", bad, d)
		}
	}
}
