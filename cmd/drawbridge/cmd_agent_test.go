package main

import (
	"strings"
	"testing"
)

// TestPolicySetOnHostWithoutLocation: the example inventory's host has no
// location; `policy set` on it works without --location.
func TestPolicySetOnHostWithoutLocation(t *testing.T) {
	srv := startServer(t)
	ok(t, srv.URL, "inventory", "apply", "-f", "../../internal/inventory/testdata/example-inventory.yaml")
	out := ok(t, srv.URL, "-o", "wide", "policy", "set", "build-01", "--port", "22")
	if !strings.Contains(out, "Succeeded") || !strings.Contains(out, "/locations/"+defaultHostLocation+"/") {
		t.Fatalf("policy set on the host:\n%s", out)
	}
}

func TestParseGuardPorts(t *testing.T) {
	ps, err := parseGuardPorts("22, 3389,53/udp,443/TCP")
	if err != nil || len(ps) != 4 || ps[0].Protocol != "*" || ps[2].Protocol != "Udp" || ps[3].Protocol != "Tcp" {
		t.Fatalf("parseGuardPorts: %+v, %v", ps, err)
	}
	for _, bad := range []string{"0", "65536", "ssh", "22/sctp"} {
		if _, err := parseGuardPorts(bad); err == nil || !strings.Contains(err.Error(), "--guard-ports") {
			t.Fatalf("parseGuardPorts(%q): %v; want an error naming --guard-ports", bad, err)
		}
	}
}
