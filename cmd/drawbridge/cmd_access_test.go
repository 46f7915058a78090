package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/drawbridge/drawbridge/internal/api"
	"github.com/drawbridge/drawbridge/internal/client"
	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/netrule"
)

const (
	demoRG = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/demo-rg"
	web01  = demoRG + "/providers/Microsoft.Compute/virtualMachines/web-01"
)

// as runs the CLI with an explicit --token.
func as(t *testing.T, url, token string, args ...string) result {
	t.Helper()
	return cli(t, url, append([]string{"--token", token}, args...)...)
}

func TestTokenRoleApproveAuditCLI(t *testing.T) {
	srv := startServer(t)
	u := srv.URL
	admin := srv.AdminToken

	// A policy whose SSH port needs one approval from group "ops".
	c, err := client.New(u, admin)
	if err != nil {
		t.Fatal(err)
	}
	pid := jit.PolicyID("00000000-0000-0000-0000-000000000001", "demo-rg", "westeurope", "web")
	_, err = c.PutPolicy(context.Background(), pid, api.PolicyResource{Properties: api.PolicyProperties{VirtualMachines: []jit.VMPolicy{{
		ID: web01, Ports: []jit.PortPolicy{{Number: 22, Protocol: netrule.Tcp, AllowedSourceAddressPrefix: "*", MaxRequestAccessDuration: "PT3H",
			RequireApproval: &jit.ApprovalRule{Approvers: "ops", Count: 1}}}}}}})
	if err != nil {
		t.Fatal(err)
	}

	mk := func(args ...string) string {
		r := cli(t, u, append([]string{"token", "create"}, args...)...)
		if r.code != 0 || !strings.Contains(r.stderr, "shown only this once") {
			t.Fatalf("token create %v: %+v", args, r)
		}
		return strings.TrimSpace(r.stdout)
	}
	alice := mk("--principal", "alice", "--expires", "30d")
	bob := mk("--principal", "bob", "--group", "ops")
	if !strings.HasPrefix(alice, "dbt_") || !strings.HasPrefix(bob, "dbt_") {
		t.Fatalf("tokens %q %q", alice, bob)
	}
	ok(t, u, "role", "assign", "--role", "JIT Network Access Requester", "--principal", "alice", "--scope", demoRG)
	ok(t, u, "role", "assign", "--role", "JIT Network Access Requester", "--principal", "ops", "--principal-type", "group", "--scope", demoRG)

	// Bad input: a clear error naming the flag or field, exit 2 (usage).
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"token", "create"}, "--principal"},
		{[]string{"token", "create", "--principal", "x", "--expires", "soon"}, "expires"},
		{[]string{"role", "assign", "--role", "Reader", "--principal", "x", "--scope", "not-an-id"}, "scope"},
		{[]string{"role", "assign", "--role", "No Such Role", "--principal", "x", "--scope", "/"}, "No Such Role"},
	} {
		r := cli(t, u, tc.args...)
		if r.code != exitUsage || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%v: exit %d stderr %q; want exit 2 naming %q", tc.args, r.code, r.stderr, tc.want)
		}
	}
	bad := filepath.Join(t.TempDir(), "role.json")
	os.WriteFile(bad, []byte(`{"Name":"x","Actions":["Microsoft.Nope/frobnicate"],"AssignableScopes":["/"]}`), 0o600)
	if r := cli(t, u, "role", "create", "-f", bad); r.code != 1 || !strings.Contains(r.stderr, "Microsoft.Nope") {
		t.Errorf("bad role: exit %d stderr %q", r.code, r.stderr)
	}

	// Alice may request but not see roles.
	if r := as(t, u, alice, "role", "list"); r.code != exitPermission || !strings.Contains(r.stderr, "roleDefinitions/read") {
		t.Fatalf("alice role list: exit %d stderr %q", r.code, r.stderr)
	}
	r := as(t, u, alice, "-o", "json", "request", web01, "--port", "22", "--duration", "1h", "--source", "198.18.7.7", "--justification", "fix nginx")
	if r.code != 0 {
		t.Fatalf("request: %q", r.stderr)
	}
	rr := decodeJSON[api.RequestResource](t, r.stdout)
	if rr.VirtualMachines[0].Ports[0].Status != jit.StatusPending {
		t.Fatalf("request status %s, want Pending", rr.VirtualMachines[0].Ports[0].Status)
	}
	if out := ok(t, u, "request", "pending"); !strings.Contains(out, rr.ID) || !strings.Contains(out, "1 of ops") {
		t.Fatalf("pending list:\n%s", out)
	}
	if r := as(t, u, alice, "request", "approve", rr.ID); r.code != exitPermission || !strings.Contains(r.stderr, "own request") {
		t.Fatalf("self-approval: exit %d stderr %q", r.code, r.stderr)
	}
	if out := as(t, u, bob, "request", "approve", rr.ID); out.code != 0 || !strings.Contains(out.stdout, "approved and opened") {
		t.Fatalf("bob approve: %+v", out)
	}
	if gs := decodeJSON[[]jit.Grant](t, ok(t, u, "-o", "json", "grants", "--vm", "web-01", "--active")); len(gs) != 1 || gs[0].Status != jit.StatusInitiated {
		t.Fatalf("active grants after approval: %+v", gs)
	}

	// Audit: list by principal, export as JSON lines, verify.
	out := ok(t, u, "audit", "list", "--principal", "bob")
	if !strings.Contains(out, "request.approve") {
		t.Fatalf("audit list --principal bob:\n%s", out)
	}
	lines := strings.Split(strings.TrimSpace(ok(t, u, "audit", "export", "--vm", web01)), "\n")
	var ops []string
	for _, l := range lines {
		rec := decodeJSON[struct{ Operation, Result string }](t, l)
		ops = append(ops, rec.Operation+":"+rec.Result)
	}
	// The policy's own record targets the policy ID, not the VM; the
	// self-approval was refused (and audited) before bob's approval opened it.
	want := "request.pending:succeeded approve:denied request.approve:succeeded initiate:succeeded"
	if got := strings.Join(ops, " "); got != want {
		t.Fatalf("audit export --vm web-01 operations:\n got %s\nwant %s", got, want)
	}
	if out := ok(t, u, "audit", "verify"); !strings.Contains(out, "audit log intact") {
		t.Fatalf("verify: %s", out)
	}

	// Token revoke: the token stops working.
	var id string
	for _, tok := range decodeJSON[[]struct{ ID, Principal string }](t, ok(t, u, "-o", "json", "token", "list")) {
		if tok.Principal == "alice" {
			id = tok.ID
		}
	}
	ok(t, u, "token", "revoke", id)
	if r := as(t, u, alice, "vm", "list"); r.code != exitAuth || !strings.Contains(r.stderr, "revoked") {
		t.Fatalf("revoked token: exit %d stderr %q", r.code, r.stderr)
	}
}
