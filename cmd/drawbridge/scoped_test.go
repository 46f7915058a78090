package main

import (
	"context"
	"strings"
	"testing"

	"github.com/drawbridge/drawbridge/internal/api"
	"github.com/drawbridge/drawbridge/internal/client"
	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/netrule"
)

const demoSub = "/subscriptions/00000000-0000-0000-0000-000000000001"

// scopedSetup starts a server where web-01's SSH needs one approval from
// group "ops", carol is a JIT requester at demo-rg only and dave is in
// "ops", which holds the requester role at the subscription. It returns
// the server URL and carol's and dave's tokens.
func scopedSetup(t *testing.T) (url, carol, dave string) {
	t.Helper()
	srv := startServer(t)
	u := srv.URL
	c, err := client.New(u, srv.AdminToken)
	if err != nil {
		t.Fatal(err)
	}
	pid := jit.PolicyID("00000000-0000-0000-0000-000000000001", "demo-rg", "westeurope", "default")
	_, err = c.PutPolicy(context.Background(), pid, api.PolicyResource{Properties: api.PolicyProperties{VirtualMachines: []jit.VMPolicy{{
		ID: web01, Ports: []jit.PortPolicy{{Number: 22, Protocol: netrule.Tcp, AllowedSourceAddressPrefix: "*", MaxRequestAccessDuration: "PT3H",
			RequireApproval: &jit.ApprovalRule{Approvers: "ops", Count: 1}}}}}}})
	if err != nil {
		t.Fatal(err)
	}
	mk := func(args ...string) string {
		r := cli(t, u, append([]string{"token", "create"}, args...)...)
		if r.code != 0 {
			t.Fatalf("token create %v: %+v", args, r)
		}
		return strings.TrimSpace(r.stdout)
	}
	carol, dave = mk("--principal", "carol"), mk("--principal", "dave", "--group", "ops")
	ok(t, u, "role", "assign", "--role", "JIT Network Access Requester", "--principal", "carol", "--scope", demoRG)
	ok(t, u, "role", "assign", "--role", "JIT Network Access Requester", "--principal", "ops", "--principal-type", "group", "--scope", demoSub)
	return u, carol, dave
}

// A requester whose role stops at one resource group lists what she may
// read there (not a 403 because she has no role at "/"), and names VMs by
// their short names.
func TestScopedRequesterListsWhatSheMayRead(t *testing.T) {
	u, carol, _ := scopedSetup(t)
	must := func(args ...string) string {
		t.Helper()
		r := as(t, u, carol, args...)
		if r.code != 0 {
			t.Fatalf("carol: drawbridge %s: exit %d, stderr %q", strings.Join(args, " "), r.code, r.stderr)
		}
		return r.stdout
	}
	vms := decodeJSON[[]api.VMSummary](t, must("-o", "json", "vm", "list"))
	names := map[string]bool{}
	for _, vm := range vms {
		names[vm.Name] = true
		if !strings.HasPrefix(strings.ToLower(vm.ID), strings.ToLower(demoRG)+"/") {
			t.Errorf("carol sees %s, outside demo-rg", vm.ID)
		}
	}
	if !names["web-01"] || names["bastion"] {
		t.Fatalf("carol's vm list: %v (want web-01, not the AWS bastion)", names)
	}
	ps := decodeJSON[[]api.PolicyResource](t, must("-o", "json", "policy", "list"))
	if len(ps) != 1 || !strings.HasPrefix(ps[0].ID, demoRG+"/") {
		t.Fatalf("carol's policy list: %+v", ps)
	}
	if out := must("policy", "get", "web-01"); !strings.Contains(out, "web-01") {
		t.Fatalf("policy get web-01:\n%s", out)
	}
	must("grants")
	must("request", "pending")
	// The AWS bastion is outside her scope: not found by name, as if absent.
	if r := as(t, u, carol, "request", "bastion", "--port", "22", "--duration", "1h", "--source", "198.18.7.7"); r.code == 0 || !strings.Contains(r.stderr, "no virtual machine") {
		t.Fatalf("carol request bastion: exit %d stderr %q", r.code, r.stderr)
	}
}

// Default tables fit 100 columns; -o wide adds the full IDs.
func TestTablesFit100Columns(t *testing.T) {
	u, carol, _ := scopedSetup(t)
	for _, args := range [][]string{{"vm", "list"}, {"policy", "list"}, {"policy", "get", "web-01"}} {
		r := as(t, u, carol, args...)
		if r.code != 0 {
			t.Fatalf("%v: %+v", args, r)
		}
		for _, l := range strings.Split(r.stdout, "\n") {
			if len(l) > 100 {
				t.Errorf("%v: line of %d columns: %q", args, len(l), l)
			}
		}
		if strings.Contains(r.stdout, "/subscriptions/") && args[0] == "vm" {
			t.Errorf("%v shows full IDs without -o wide:\n%s", args, r.stdout)
		}
		if w := as(t, u, carol, append([]string{"-o", "wide"}, args...)...); w.code != 0 || !strings.Contains(w.stdout, "/subscriptions/") {
			t.Errorf("-o wide %v: %+v", args, w)
		}
	}
	if out := as(t, u, carol, "policy", "get", "web-01"); !strings.Contains(out.stdout, "1 of ops") {
		t.Errorf("policy get does not show the approval rule:\n%s", out.stdout)
	}
	if out := ok(t, u, "-o", "json", "policy", "delete", "web-01"); !strings.Contains(out, `"deletedPolicy"`) {
		t.Errorf("policy delete -o json: %q", out)
	}
}
