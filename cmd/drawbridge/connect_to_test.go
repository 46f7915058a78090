package main

import (
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/drawbridge/drawbridge/internal/api"
	"github.com/drawbridge/drawbridge/internal/inventory"
	"github.com/drawbridge/drawbridge/internal/jit"
)

// TestRequestThroughFirewallSaysWhereToConnect: jump-01 is reached only
// through edge-fw, whose port 22 a user's rule takes. `request`,
// `request status` and `grants` tell the requester to connect to the
// firewall's public IP on 50000, in their tables and in -o json; a VM
// reached directly gets no such line.
func TestRequestThroughFirewallSaysWhereToConnect(t *testing.T) {
	srv := startServer(t)
	u := srv.URL
	doc, err := json.Marshal(inventory.SampleClassicFirewall())
	if err != nil {
		t.Fatal(err)
	}
	frag := filepath.Join(t.TempDir(), "firewall.json")
	if err := os.WriteFile(frag, doc, 0o600); err != nil {
		t.Fatal(err)
	}
	ok(t, u, "inventory", "apply", "-f", frag)
	for _, vm := range []string{"jump-01", "web-01"} {
		ok(t, u, "policy", "set", vm, "--port", "22", "--max-duration", "PT3H", "--allowed-source", "198.18.0.0/15")
	}

	out := ok(t, u, "request", "jump-01", "--port", "22", "--duration", "1h", "--source", "198.18.0.9")
	id := strings.TrimPrefix(strings.SplitN(out, "\n", 2)[0], "request ")
	req := decodeJSON[api.RequestResource](t, ok(t, u, "request", "jump-01", "--port", "22", "--duration", "1h", "--source", "198.18.0.9", "-o", "json"))
	p := req.VirtualMachines[0].Ports[0]
	if p.ConnectTo != "198.18.0.20:50000" || p.MappedPort != 50000 || !p.Applied {
		t.Errorf("request -o json: port %+v, want connectTo 198.18.0.20:50000, mappedPort 50000, applied", p)
	}
	// The second request replaced the first, whose port is free again.
	line := "connect to 198.18.0.20:50000 for port 22 of jump-01"
	if !strings.Contains(out, line) {
		t.Errorf("request table lacks the connect-to line:\n%s", out)
	}
	if got := ok(t, u, "grants", "--vm", "jump-01"); !strings.Contains(got, line) || strings.Count(got, "connect to") != 1 {
		t.Errorf("grants table: want exactly the line %q (the replaced grant says nothing):\n%s", line, got)
	}
	if got := ok(t, u, "request", "status", req.ID); !strings.Contains(got, line) {
		t.Errorf("request status lacks %q:\n%s", line, got)
	}
	if got := ok(t, u, "request", "status", id); strings.Contains(got, "connect to") {
		t.Errorf("request status of the replaced request still says where to connect:\n%s", got)
	}
	gs := decodeJSON[[]jit.Grant](t, ok(t, u, "grants", "--vm", "jump-01", "--active", "-o", "json"))
	if len(gs) != 1 || gs[0].ConnectTo != netip.MustParseAddrPort("198.18.0.20:50000") {
		t.Errorf("grants -o json: %+v", gs)
	}

	direct := ok(t, u, "request", "web-01", "--port", "22", "--duration", "1h", "--source", "198.18.0.9")
	if strings.Contains(direct, "connect to") {
		t.Errorf("a VM reached directly got a connect-to line:\n%s", direct)
	}
}
