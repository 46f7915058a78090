package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/drawbridge/drawbridge/internal/api"
	"github.com/drawbridge/drawbridge/internal/jit"
)

// The client-only build (go build -tags drawbridge_client, README "The
// requester's binary") has the client commands, none of the server's, and
// links none of the stores, providers, cloud SDKs or metrics: what makes it
// start fast. This test is what keeps it so; it builds with the go tool.
func TestClientOnlyBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a binary; skipped with -short")
	}
	const pkg = "github.com/drawbridge/drawbridge/cmd/drawbridge"
	bin := filepath.Join(t.TempDir(), "drawbridge")
	if out, err := exec.Command("go", "build", "-tags", "drawbridge_client", "-o", bin, pkg).CombinedOutput(); err != nil {
		t.Fatalf("go build -tags drawbridge_client: %v\n%s", err, out)
	}
	runBin := func(args ...string) (string, error) {
		out, err := exec.Command(bin, args...).CombinedOutput()
		return string(out), err
	}

	out, err := runBin("version")
	if err != nil || !strings.HasPrefix(out, "drawbridge ") || !strings.Contains(out, "[client only]") {
		t.Errorf("version: %v, %q; want a version line marked [client only]", err, out)
	}
	help, err := runBin("--help")
	if err != nil {
		t.Fatalf("--help: %v\n%s", err, help)
	}
	listed := helpCommands(help)
	for _, c := range []string{"request", "grants", "revoke", "policy", "vm", "network", "inventory", "assess",
		"login", "logout", "token", "role", "audit", "version", "completion"} {
		if !listed[c] {
			t.Errorf("--help lists no %q command:\n%s", c, help)
		}
	}
	for _, c := range []string{"server", "agent", "demo", "cloudsim"} {
		if listed[c] {
			t.Errorf("--help lists %q, a command of the full binary only:\n%s", c, help)
		}
	}
	if strings.Contains(help, "drawbridge demo") || !strings.Contains(help, "client-only build") {
		t.Errorf("--help should say it is the client-only build and not suggest the demo:\n%s", help)
	}
	if out, err := runBin("request", "--help"); err != nil || !strings.Contains(out, "approve") {
		t.Errorf("request --help: %v; want the approve subcommand:\n%s", err, out)
	}
	if out, err := runBin("inventory", "--help"); err != nil || helpCommands(out)["sync"] {
		t.Errorf("inventory --help: %v; want no sync (cloud SDKs):\n%s", err, out)
	}
	if out, err := runBin("server"); err == nil || !strings.Contains(out, "unknown command") {
		t.Errorf("server in the client build: %v, %q; want an unknown-command error", err, out)
	}

	// The client commands work: a policy, a request by short name, the
	// grant listed and revoked, against a real server.
	srv := startServer(t)
	clientOK := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(bin, append([]string{"--server", srv.URL}, args...)...)
		cmd.Env = []string{"DRAWBRIDGE_TOKEN=" + srv.AdminToken, "HOME=" + t.TempDir()}
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("client build: drawbridge %s: %v", strings.Join(args, " "), err)
		}
		return string(out)
	}
	clientOK("policy", "set", "web-01", "--port", "22", "--allowed-source", "198.18.0.0/15")
	req := decodeJSON[api.RequestResource](t, clientOK("request", "web-01", "--port", "22", "--duration", "1h", "--source", "198.18.0.9", "-o", "json"))
	if len(req.VirtualMachines) != 1 || len(req.VirtualMachines[0].Ports) != 1 || !req.VirtualMachines[0].Ports[0].Applied {
		t.Fatalf("client build: request = %+v, want one applied grant", req)
	}
	grant := req.VirtualMachines[0].Ports[0].GrantID
	if active := decodeJSON[[]jit.Grant](t, clientOK("grants", "--active", "-o", "json")); len(active) != 1 || active[0].ID != grant {
		t.Fatalf("client build: active grants = %+v, want %s", active, grant)
	}
	clientOK("revoke", grant)
	if active := decodeJSON[[]jit.Grant](t, clientOK("grants", "--active", "-o", "json")); len(active) != 0 {
		t.Fatalf("client build: active grants after revoke = %+v", active)
	}

	deps, err := exec.Command("go", "list", "-deps", "-tags", "drawbridge_client", pkg).Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	banned := []string{
		"github.com/drawbridge/drawbridge/internal/server", "github.com/drawbridge/drawbridge/internal/agent",
		"github.com/drawbridge/drawbridge/internal/store/", "github.com/drawbridge/drawbridge/internal/provider/azure",
		"github.com/drawbridge/drawbridge/internal/provider/aws", "github.com/drawbridge/drawbridge/internal/cloudsim",
		"github.com/drawbridge/drawbridge/internal/metrics", "github.com/drawbridge/drawbridge/internal/console",
		"github.com/aws/", "github.com/Azure/", "github.com/AzureAD/", "modernc.org/", "github.com/jackc/",
		"github.com/prometheus/", "google.golang.org/protobuf", "github.com/chromedp/", "github.com/getkin/",
	}
	for _, d := range strings.Fields(string(deps)) {
		for _, b := range banned {
			// "x/" bans x's subpackages (internal/store/ is sqlite, postgres
			// and memstore; the store package itself holds interfaces the
			// wire types' package uses); "x" bans x and its subpackages.
			if strings.HasPrefix(d, b) && (strings.HasSuffix(b, "/") || d == b || d[len(b)] == '/') {
				t.Errorf("the client-only build links %s", d)
			}
		}
	}
}

// helpCommands returns the command names of cobra help's command list.
func helpCommands(help string) map[string]bool {
	names := map[string]bool{}
	in := false
	for _, line := range strings.Split(help, "\n") {
		switch {
		case strings.HasPrefix(line, "Available Commands:"):
			in = true
		case in && strings.HasPrefix(line, "  "):
			if f := strings.Fields(line); len(f) > 0 {
				names[f[0]] = true
			}
		case in:
			in = false
		}
	}
	return names
}
