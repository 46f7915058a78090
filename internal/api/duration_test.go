package api_test

import (
	"fmt"
	"strings"
	"testing"
)

// Durations that overflow time.Duration, exceed the policy's bounds or end at
// once are 400s naming the field, and change nothing. P213504D used to be
// accepted as a grant of about 25 minutes, P854016D stored as a policy
// maximum of about 102 minutes, and 1ns as a grant that ends at once.
func TestDurationsOutOfRangeAreRefused(t *testing.T) {
	e := newEnv(t)
	if code, body := e.do("PUT", polURL, azurePolicyBody(web01, 22)); code != 200 {
		t.Fatalf("PUT = %d %v", code, body)
	}
	simple := func(d string) string {
		return fmt.Sprintf(`{"vm":%q,"ports":[22],"duration":%q,"source":"198.18.0.7"}`, web01, d)
	}
	initiate := func(d string) string {
		return fmt.Sprintf(`{"virtualMachines":[{"id":%q,"ports":[{"number":22,"duration":%q,"allowedSourceAddressPrefix":"198.18.0.7"}]}]}`, web01, d)
	}
	policy := func(d string) string {
		return strings.Replace(azurePolicyBody(web01, 22), `"PT3H"`, fmt.Sprintf("%q", d), 1)
	}
	const maxField = "properties.virtualMachines[0].ports[0].maxRequestAccessDuration"
	cases := []struct {
		name, method, path, body, target, contains string
	}{
		{"request P213504D", "POST", "/drawbridge/v1/requests", simple("P213504D"), "virtualMachines[0].ports[0].duration", "too long"},
		{"request P854016D", "POST", "/drawbridge/v1/requests", simple("P854016D"), "virtualMachines[0].ports[0].duration", "too long"},
		{"request 1ns", "POST", "/drawbridge/v1/requests", simple("1ns"), "virtualMachines[0].ports[0].duration", "minimum"},
		{"request PT0.5S", "POST", "/drawbridge/v1/requests", simple("PT0.5S"), "virtualMachines[0].ports[0].duration", "minimum"},
		{"request beyond the policy", "POST", "/drawbridge/v1/requests", simple("25h"), "virtualMachines[0].ports[0].duration", "PT3H"},
		{"request P1D", "POST", "/drawbridge/v1/requests", simple("P1D"), "virtualMachines[0].ports[0].duration", "PT3H"},
		{"initiate P213504D", "POST", polURL + "/initiate", initiate("P213504D"), "virtualMachines[0].ports[0].duration", "too long"},
		{"initiate 1ns", "POST", polURL + "/initiate", initiate("1ns"), "virtualMachines[0].ports[0].duration", "minimum"},
		{"policy P854016D", "PUT", polURL, policy("P854016D"), maxField, "too long"},
		{"policy P213504D", "PUT", polURL, policy("P213504D"), maxField, "too long"},
		{"policy PT25H", "PUT", polURL, policy("PT25H"), maxField, "PT24H"},
		{"policy PT4M", "PUT", polURL, policy("PT4M"), maxField, "PT5M"},
		{"policy 1ns", "PUT", polURL, policy("1ns"), maxField, "PT5M"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := e.snapshot()
			code, body := e.do(c.method, c.path, c.body)
			if code != 400 {
				t.Fatalf("status = %d, want 400: %v", code, body)
			}
			_, target, msg := errorOf(t, body)
			if target != c.target || !strings.Contains(msg, c.contains) {
				t.Errorf("target %q message %q; want target %q mentioning %q", target, msg, c.target, c.contains)
			}
			if e.snapshot() != before {
				t.Error("state changed")
			}
		})
	}
}

// Both forms are accepted everywhere a duration is: a policy's maximum given
// as 3h is stored as Azure writes it, PT3H; a request takes 90m or PT90M.
func TestDurationsInBothForms(t *testing.T) {
	e := newEnv(t)
	body := strings.Replace(azurePolicyBody(web01, 22), `"PT3H"`, `"3h"`, 1)
	code, resp := e.do("PUT", polURL, body)
	if code != 200 {
		t.Fatalf("PUT = %d %v", code, resp)
	}
	if !strings.Contains(mustJSON(resp), `"maxRequestAccessDuration":"PT3H"`) {
		t.Errorf("policy with 3h: %s, want maxRequestAccessDuration PT3H", mustJSON(resp))
	}
	for i, d := range []string{"90m", "PT90M"} {
		req := fmt.Sprintf(`{"vm":%q,"ports":[22],"duration":%q,"source":"198.18.0.%d"}`, web01, d, 10+i)
		if code, resp := e.do("POST", "/drawbridge/v1/requests", req); code != 200 && code != 202 {
			t.Errorf("request for %s = %d %v", d, code, resp)
		}
	}
}
