package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/api"
	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/server"
)

// startServer starts an in-process server with the sample inventory on a
// free loopback port and a temporary database.
func startServer(t *testing.T) *server.Server {
	t.Helper()
	srv, err := server.Start(context.Background(), server.Config{
		Listen: "127.0.0.1:0", DBPath: filepath.Join(t.TempDir(), "drawbridge.db"), SampleInventory: true,
	})
	if err != nil {
		t.Fatalf("start server: %v", err)
	}
	t.Cleanup(func() { srv.Close() })
	tokensMu.Lock()
	tokens[srv.URL] = srv.AdminToken
	tokensMu.Unlock()
	return srv
}

// tokens maps each test server's URL to its bootstrap administrator
// token, which cli sends as DRAWBRIDGE_TOKEN.
var (
	tokensMu sync.Mutex
	tokens   = map[string]string{}
)

func tokenFor(url string) string {
	tokensMu.Lock()
	defer tokensMu.Unlock()
	return tokens[url]
}

type result struct {
	stdout, stderr string
	code           int
}

// cli runs the drawbridge command line in-process against url.
func cli(t *testing.T, url string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	all := append([]string{"--server", url}, args...)
	env := func(k string) string {
		if k == "DRAWBRIDGE_TOKEN" {
			return tokenFor(url)
		}
		return ""
	}
	code := run(context.Background(), all, &out, &errb, env)
	return result{out.String(), errb.String(), code}
}

// ok runs the command and fails the test unless it succeeds.
func ok(t *testing.T, url string, args ...string) string {
	t.Helper()
	r := cli(t, url, args...)
	if r.code != 0 {
		t.Fatalf("drawbridge %s: exit %d, stderr %q", strings.Join(args, " "), r.code, r.stderr)
	}
	if r.stderr != "" {
		t.Fatalf("drawbridge %s: unexpected stderr %q", strings.Join(args, " "), r.stderr)
	}
	return r.stdout
}

func decodeJSON[T any](t *testing.T, s string) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("decoding %q: %v", s, err)
	}
	return v
}

func TestPolicyRequestGrantsRevoke(t *testing.T) {
	srv := startServer(t)
	u := srv.URL

	before := ok(t, u, "network", "get", "web-01")
	out := ok(t, u, "policy", "set", "web-01", "--port", "22", "--max-duration", "PT3H", "--allowed-source", "198.18.0.0/15")
	if !strings.Contains(out, "Succeeded") || !strings.Contains(out, "198.18.0.0/15") {
		t.Fatalf("policy set output lacks state or source:\n%s", out)
	}
	enabled := ok(t, u, "network", "get", "web-01")
	if enabled == before || !strings.Contains(enabled, "Deny") || !strings.Contains(enabled, "drawbridge-jit-deny") {
		t.Fatalf("enabling JIT did not add a deny rule:\n%s", enabled)
	}

	start := time.Now()
	req := decodeJSON[api.RequestResource](t, ok(t, u, "request", "web-01", "--port", "22", "--duration", "1h",
		"--source", "198.18.0.9", "--justification", "test", "-o", "json"))
	if len(req.VirtualMachines) != 1 || len(req.VirtualMachines[0].Ports) != 1 {
		t.Fatalf("request: want one grant, got %+v", req)
	}
	g := req.VirtualMachines[0].Ports[0]
	if g.Status != jit.StatusInitiated || !g.Applied || g.AllowedSourceAddressPrefix != "198.18.0.9" || g.Number != 22 {
		t.Fatalf("grant = %+v, want Initiated, applied, port 22 from 198.18.0.9", g)
	}
	if d := g.EndTimeUtc.Sub(start); d < 59*time.Minute || d > 61*time.Minute {
		t.Fatalf("end time %v is %v after the request, want about 1h", g.EndTimeUtc, d)
	}
	open := ok(t, u, "network", "get", "web-01")
	if !strings.Contains(open, "198.18.0.9") || !strings.Contains(open, "drawbridge-jit-allow") {
		t.Fatalf("network get after the request lacks the allow rule:\n%s", open)
	}

	// The human table names the grant; JSON lists it as active.
	table := ok(t, u, "grants")
	if !strings.Contains(table, g.GrantID) || !strings.Contains(table, "open") || !strings.Contains(table, "left") {
		t.Fatalf("grants table lacks the grant:\n%s", table)
	}
	active := decodeJSON[[]jit.Grant](t, ok(t, u, "grants", "--vm", "web-01", "--active", "-o", "json"))
	if len(active) != 1 || active[0].ID != g.GrantID {
		t.Fatalf("active grants = %+v, want only %s", active, g.GrantID)
	}

	out = ok(t, u, "revoke", g.GrantID)
	if !strings.Contains(out, "ended") || !strings.Contains(out, "revoked") {
		t.Fatalf("revoke output: %s", out)
	}
	if got := ok(t, u, "network", "get", "web-01"); got != enabled {
		t.Fatalf("after revoke the firewall differs from the state after enabling:\n--- enabled\n%s\n--- now\n%s", enabled, got)
	}
	if active := decodeJSON[[]jit.Grant](t, ok(t, u, "grants", "--active", "-o", "json")); len(active) != 0 {
		t.Fatalf("active grants after revoke: %+v", active)
	}

	// Disabling by VM name restores the original firewall text exactly.
	ok(t, u, "policy", "delete", "web-01")
	if got := ok(t, u, "network", "get", "web-01"); got != before {
		t.Fatalf("after disabling the firewall differs from before:\n--- before\n%s\n--- now\n%s", before, got)
	}
}

func TestVMListJSON(t *testing.T) {
	srv := startServer(t)
	vms := decodeJSON[[]map[string]any](t, ok(t, srv.URL, "vm", "list", "-o", "json"))
	if len(vms) < 2 {
		t.Fatalf("vm list: %d VMs", len(vms))
	}
	names := map[string]bool{}
	for _, vm := range vms {
		id, _ := vm["id"].(string)
		if !strings.HasPrefix(id, "/subscriptions/") || vm["provider"] != "sim" {
			t.Fatalf("VM without a resource id or provider: %v", vm)
		}
		names[vm["name"].(string)] = true
	}
	for _, n := range []string{"web-01", "win-01", "bastion"} {
		if !names[n] {
			t.Errorf("vm list lacks %s", n)
		}
	}
	table := ok(t, srv.URL, "vm", "list")
	if !strings.HasPrefix(table, "NAME") || !strings.Contains(table, "bastion") {
		t.Fatalf("vm list table:\n%s", table)
	}
}

func TestNetworkShowIsStableAndComplete(t *testing.T) {
	srv := startServer(t)
	a := ok(t, srv.URL, "network", "get", "bastion")
	b := ok(t, srv.URL, "network", "get", "bastion")
	if a != b {
		t.Fatalf("two network get outputs differ:\n%s\n%s", a, b)
	}
	for _, want := range []string{"eni-0a1b2c3d4e5f60001", "ssh-open", "0.0.0.0/0"} {
		if !strings.Contains(a, want) {
			t.Errorf("network get bastion lacks %q:\n%s", want, a)
		}
	}
	// Azure: rules in evaluation order, inbound by priority.
	az := ok(t, srv.URL, "network", "get", "web-01", "--inbound")
	i1000, i65500 := strings.Index(az, "AllowSSHFromInternet"), strings.Index(az, "DenyAllInBound")
	if i1000 < 0 || i65500 < 0 || i1000 > i65500 || strings.Contains(az, "Outbound") {
		t.Fatalf("network get web-01 --inbound not in evaluation order or not inbound only:\n%s", az)
	}
}

func TestPolicySetMergesAndFileBody(t *testing.T) {
	srv := startServer(t)
	u := srv.URL
	beforeWin := ok(t, u, "network", "get", "win-01")
	ok(t, u, "policy", "set", "web-01", "--port", "22")
	ok(t, u, "policy", "set", "win-01", "--port", "3389", "--protocol", "*")
	p := decodeJSON[api.PolicyResource](t, ok(t, u, "policy", "get", "web-01", "-o", "json"))
	if len(p.Properties.VirtualMachines) != 2 {
		t.Fatalf("policy set on a second VM replaced the first: %+v", p.Properties.VirtualMachines)
	}
	list := decodeJSON[[]api.PolicyResource](t, ok(t, u, "policy", "list", "-o", "json"))
	if len(list) != 1 || list[0].ID != p.ID {
		t.Fatalf("policy list = %+v", list)
	}

	// Removing one VM keeps the other in the policy.
	ok(t, u, "policy", "delete", "win-01")
	if got := ok(t, u, "network", "get", "win-01"); got != beforeWin {
		t.Fatalf("win-01 not restored after policy delete:\n%s", got)
	}
	p = decodeJSON[api.PolicyResource](t, ok(t, u, "policy", "get", p.ID, "-o", "json"))
	if len(p.Properties.VirtualMachines) != 1 || !strings.HasSuffix(p.Properties.VirtualMachines[0].ID, "/web-01") {
		t.Fatalf("policy after removing win-01: %+v", p.Properties.VirtualMachines)
	}

	// An Azure body from a file, PUT as it is, with the ID taken from it.
	winID := ""
	for _, vm := range decodeJSON[[]api.VMSummary](t, ok(t, u, "vm", "list", "-o", "json")) {
		if vm.Name == "win-01" {
			winID = vm.ID
		}
	}
	polID := strings.Replace(p.ID, "/default", "/from-file", 1)
	body := `{"id":"` + polID + `","kind":"Basic","properties":{"virtualMachines":[{"id":"` + winID +
		`","ports":[{"number":3389,"protocol":"TCP","allowedSourceAddressPrefix":"198.18.0.0/15","maxRequestAccessDuration":"PT1H"}]}]}}`
	file := filepath.Join(t.TempDir(), "policy.json")
	if err := os.WriteFile(file, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	r := cli(t, u, "policy", "set", "-f", file)
	// The body carries an "id", which the API's strict decoder accepts.
	if r.code != 0 {
		t.Fatalf("policy set -f: exit %d: %s", r.code, r.stderr)
	}
	got := ok(t, u, "-o", "wide", "policy", "get", "win-01")
	if !strings.Contains(got, polID) || !strings.Contains(got, "PT1H") {
		t.Fatalf("policy get win-01 after -f:\n%s", got)
	}
	ok(t, u, "policy", "delete", polID)
	if got := ok(t, u, "network", "get", "win-01"); got != beforeWin {
		t.Fatalf("win-01 not restored after deleting the file policy:\n%s", got)
	}
}

// TestBadInputFailsCleanlyAndChangesNothing: every refused command exits
// non-zero with one line naming the field, and the firewall, grants and
// inventory are as they were.
func TestBadInputFailsCleanlyAndChangesNothing(t *testing.T) {
	srv := startServer(t)
	u := srv.URL
	ok(t, u, "policy", "set", "web-01", "--port", "22", "--allowed-source", "198.18.0.0/15")
	ok(t, u, "request", "web-01", "--port", "22", "--duration", "1h", "--source", "198.18.0.1")

	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	unknownField := write("unknown.yaml", "vms:\n- id: /subscriptions/s/resourceGroups/r/providers/Microsoft.Compute/virtualMachines/x\n  cloud: azure\n  provider: sim\n  bogusField: 1\n")
	badID := write("badid.yaml", "vms:\n- id: not-a-resource-id\n  cloud: azure\n  provider: sim\n")
	notYAML := write("broken.yaml", "vms: [ {id: \n")
	webID := "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/demo-rg/providers/Microsoft.Compute/virtualMachines/"

	cases := []struct {
		name string
		args []string
		want string // the field the message must name
	}{
		{"unknown VM name", []string{"request", "nosuch-vm", "--port", "22", "--duration", "1h", "--source", "198.18.0.1"}, "vm"},
		{"unknown VM id", []string{"request", webID + "nosuch", "--port", "22", "--duration", "1h", "--source", "198.18.0.1"}, "vm"},
		{"port not in policy", []string{"request", "web-01", "--port", "2222", "--duration", "1h", "--source", "198.18.0.1"}, "number"},
		{"bad duration", []string{"request", "web-01", "--port", "22", "--duration", "1x", "--source", "198.18.0.1"}, "duration"},
		{"duration over the maximum", []string{"request", "web-01", "--port", "22", "--duration", "4h", "--source", "198.18.0.1"}, "duration \"4h\" is more than the policy's maximum PT3H"},
		{"source outside the policy", []string{"request", "web-01", "--port", "22", "--duration", "1h", "--source", "203.0.113.5"}, "allowedSourceAddressPrefix"},
		{"bad source", []string{"request", "web-01", "--port", "22", "--duration", "1h", "--source", "300.1.1.1"}, "allowedSourceAddressPrefix"},
		{"missing duration", []string{"request", "web-01", "--port", "22"}, "--duration"},
		{"policy max duration out of range", []string{"policy", "set", "web-01", "--port", "22", "--max-duration", "PT1M"}, "maxRequestAccessDuration"},
		{"policy bad protocol", []string{"policy", "set", "web-01", "--port", "22", "--protocol", "SCTP"}, "protocol"},
		{"policy port out of range", []string{"policy", "set", "web-01", "--port", "70000"}, "number"},
		{"revoke unknown grant", []string{"revoke", "0123456789abcdef"}, "grantId"},
		{"inventory unknown field", []string{"inventory", "apply", "-f", unknownField}, "bogusField"},
		{"inventory bad id", []string{"inventory", "apply", "-f", badID}, "vms[0]"},
		{"inventory not YAML", []string{"inventory", "apply", "-f", notYAML}, "line 1"},
		{"inventory missing file", []string{"inventory", "apply", "-f", filepath.Join(dir, "missing.yaml")}, "-f"},
		{"bad output format", []string{"vm", "list", "-o", "xml"}, "--output"},
	}
	snapshot := func() string {
		return ok(t, u, "network", "get", "web-01") + ok(t, u, "grants", "-o", "json") +
			ok(t, u, "vm", "list", "-o", "json") + ok(t, u, "policy", "list", "-o", "json")
	}
	before := snapshot()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := cli(t, u, tc.args...)
			if r.code == 0 {
				t.Fatalf("exit 0, want non-zero; stdout %q", r.stdout)
			}
			line := strings.TrimSuffix(r.stderr, "\n")
			if line == "" || strings.Contains(line, "\n") || !strings.HasPrefix(line, "drawbridge: ") {
				t.Fatalf("stderr is not one line starting with drawbridge: %q", r.stderr)
			}
			t.Logf("%s", line)
			if !strings.Contains(line, tc.want) {
				t.Fatalf("message %q does not name %q", line, tc.want)
			}
			if r.stdout != "" {
				t.Fatalf("a failed command wrote to stdout: %q", r.stdout)
			}
			if after := snapshot(); after != before {
				t.Fatalf("state changed by a refused command:\n--- before\n%s\n--- after\n%s", before, after)
			}
		})
	}
}

func TestServerRefusesUnopenableDatabase(t *testing.T) {
	db := filepath.Join(t.TempDir(), "no", "such", "dir", "x.db")
	r := cli(t, "http://127.0.0.1:1", "server", "--db", db, "--listen", "127.0.0.1:0")
	if r.code == 0 || !strings.Contains(r.stderr, "open database") || strings.Count(r.stderr, "\n") != 1 {
		t.Fatalf("exit %d, stderr %q; want non-zero and one line about the database", r.code, r.stderr)
	}
}

func TestUnreachableServer(t *testing.T) {
	r := cli(t, "http://127.0.0.1:1", "vm", "list")
	if r.code == 0 || !strings.Contains(r.stderr, "cannot reach drawbridge server at http://127.0.0.1:1") {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestServerFromEnvironment(t *testing.T) {
	srv := startServer(t)
	var out, errb bytes.Buffer
	env := map[string]string{"DRAWBRIDGE_SERVER": srv.URL, "DRAWBRIDGE_TOKEN": srv.AdminToken}
	code := run(context.Background(), []string{"vm", "list", "-o", "json"}, &out, &errb, func(k string) string { return env[k] })
	if code != 0 || !strings.Contains(out.String(), "web-01") {
		t.Fatalf("exit %d, stderr %q", code, errb.String())
	}
}

func TestDemo(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	var out bytes.Buffer
	began := time.Now()
	if err := runDemo(context.Background(), &out); err != nil {
		t.Fatalf("demo failed: %v\n%s", err, out.String())
	}
	took := time.Since(began)
	if took > 30*time.Second {
		t.Errorf("demo took %v, want under 30s", took)
	}
	s := out.String()
	for _, want := range []string{
		"drawbridge-jit-allow", demoSource, "sg-jit-", "Revoked (Expired)",
		"Identical to the state after enabling JIT", "Identical to the state before JIT was enabled", "Every check passed",
		"web-01: Unhealthy", "bastion: Unhealthy", "web-01: Healthy", "bastion: Healthy",
		"warning: port 22 is still reachable through web-01-nsg/AllowSSHFromInternet",
		// The Azure Firewall section (demo_firewall.go).
		"jump-01: Unhealthy", "exposed by edge-fw/inbound/rdp-jump", "jump-01: Healthy",
		"DNAT drawbridge-jit-dnat-", "from " + demoSource + " to 198.18.0.20:50000 TCP -> 10.0.4.4:22",
		"The request's answer tells the requester: connect to 198.18.0.20:50000.",
		"Firewall and NSG identical to the state after enabling JIT", "Firewall and NSG identical to the state before JIT was enabled",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("demo output lacks %q", want)
		}
	}
	if n := strings.Count(s, "Identical to the state"); n != 5 {
		t.Errorf("demo reported %d identical states, want 5 (two per grant scenario, one for the caveat)", n)
	}
	checkDemoLayout(t, s) // demo_test.go
	left, err := os.ReadDir(tmp)
	if err != nil || len(left) != 0 {
		t.Errorf("demo left files in its temporary directory: %v %v", left, err)
	}
	t.Logf("demo took %v", took)
}

func TestTokenFromEnvironmentIsSent(t *testing.T) {
	got := make(chan string, 1)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case got <- r.Header.Get("Authorization"):
		default:
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"error":{"code":"AuthenticationFailed","message":"token expired"}}`))
	}))
	defer ts.Close()
	env := map[string]string{"DRAWBRIDGE_SERVER": ts.URL, "DRAWBRIDGE_TOKEN": "tok-123"}
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"grants"}, &out, &errb, func(k string) string { return env[k] })
	if code == 0 || errb.String() != "drawbridge: token expired\n" {
		t.Fatalf("exit %d, stderr %q; want the server's message on one line", code, errb.String())
	}
	if h := <-got; h != "Bearer tok-123" {
		t.Fatalf("Authorization = %q", h)
	}
}

func TestPolicyGetShowsRequests(t *testing.T) {
	srv := startServer(t)
	ok(t, srv.URL, "policy", "set", "web-01", "--port", "22")
	ok(t, srv.URL, "request", "web-01", "--port", "22", "--duration", "1h", "--source", "198.18.0.4", "--justification", "patch night")
	out := ok(t, srv.URL, "policy", "get", "web-01")
	if !strings.Contains(out, "recent requests") || !strings.Contains(out, "patch night") || !strings.Contains(out, "198.18.0.4") {
		t.Fatalf("policy get lacks the request:\n%s", out)
	}
}
