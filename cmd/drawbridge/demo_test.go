package main

import (
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"
)

// checkDemoLayout checks the demo's output (TestDemo runs it once): every
// line fits 80 columns; the AWS scenario names the instance as vm list
// does (bastion), never by its instance ID; and the first Azure scenario
// shows JIT closing SSH before the second shows the caveat of a user rule
// that keeps it open.
func checkDemoLayout(t *testing.T, out string) {
	t.Helper()
	for i, l := range strings.Split(out, "\n") {
		if n := utf8.RuneCountInString(l); n > 80 {
			t.Errorf("line %d is %d columns wide (max 80): %q", i+1, n, l)
		}
	}

	aws := section(t, out, "AWS: JIT closes SSH on bastion", "== Done ==")
	if id := regexp.MustCompile(`(^|[^a-z])i-[0-9a-f]{17}`).FindString(aws); id != "" {
		t.Errorf("the AWS scenario names the instance by its ID %q", id)
	}
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^VM +PORT +PROTOCOL .*\nbastion +22 +TCP `),     // the policy table
		regexp.MustCompile(`(?m)^ +bastion port 22 from 198\.18\.0\.77 until `), // the grant
	} {
		if !want.MatchString(aws) {
			t.Errorf("the AWS scenario lacks %v:\n%s", want, aws)
		}
	}

	first := section(t, out, "1. Azure: JIT closes SSH on app-01", "== 2. ")
	before := section(t, first, "-- Before JIT --", "-- Enable JIT")
	after := section(t, first, "-- After enabling JIT --", "-- Request port 22")
	vnet := func(state string) *regexp.Regexp {
		return regexp.MustCompile(`(?m)^the virtual network +` + state + ` `)
	}
	if !vnet("OPEN").MatchString(before) || !vnet("closed").MatchString(after) {
		t.Errorf("scenario 1 does not show SSH open before JIT and closed after:\n%s", first)
	}
	caveat := section(t, out, "2. Azure: a user rule keeps SSH open on web-01", "== 3. ")
	after = section(t, caveat, "-- After enabling JIT --", "-- Assessment after")
	if !regexp.MustCompile(`(?m)^the internet +OPEN +AllowSSHFromInternet, 1000$`).MatchString(after) {
		t.Errorf("scenario 2 does not show the user rule keeping SSH open after JIT:\n%s", caveat)
	}
}

// section returns the text of s from the first from to the next to after it.
func section(t *testing.T, s, from, to string) string {
	t.Helper()
	i := strings.Index(s, from)
	if i < 0 {
		t.Fatalf("output lacks %q", from)
	}
	j := strings.Index(s[i:], to)
	if j < 0 {
		t.Fatalf("output lacks %q after %q", to, from)
	}
	return s[i : i+j]
}
