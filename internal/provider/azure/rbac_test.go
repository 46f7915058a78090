package azure_test

import (
	"context"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/cloudsim/armsim"
	"github.com/drawbridge/drawbridge/internal/inventory"
	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/netrule"
	"github.com/drawbridge/drawbridge/internal/provider/azure"
	"github.com/drawbridge/drawbridge/internal/provider/providertest"
)

// TestRequiredActionsAreExactlyTheCallsMade records every call discovery
// and a full JIT lifecycle make against the wire simulator and checks that
// the RBAC actions they need are exactly azure.RequiredActions.
func TestRequiredActionsAreExactlyTheCallsMade(t *testing.T) {
	s := startSim(t, armsim.Options{PageSize: 2})
	inv := providertest.Inventory()
	s.Load(inv)
	ctx := context.Background()
	if _, err := azure.Discover(ctx, armsim.StaticToken("t"), s.ClientOptions(), azure.Scope{Subscription: "00000000-0000-0000-0000-00000000c0f0"}); err != nil {
		t.Fatal(err)
	}
	p := newProvider(t, s)
	src, _ := jit.ParseSource("198.51.100.7")
	for _, vm := range inv.VMs {
		guarded := []jit.GuardedPort{{Port: 22, Protocol: netrule.Tcp}}
		grant := jit.DesiredGrant{GrantID: "g", Port: 22, Protocol: netrule.Tcp, Source: src, End: time.Now().Add(time.Hour)}
		for _, d := range []jit.Desired{{VMID: vm.ID, Guarded: guarded}, {VMID: vm.ID, Guarded: guarded, Grants: []jit.DesiredGrant{grant}}, {VMID: vm.ID}} {
			if err := p.Check(ctx, vm, d); err != nil {
				t.Fatal(err)
			}
			if _, err := p.Apply(ctx, vm, d); err != nil {
				t.Fatal(err)
			}
		}
	}
	var got []string
	for _, c := range s.Calls() {
		if c.Action != "" && !slices.Contains(got, c.Action) {
			got = append(got, c.Action)
		}
	}
	slices.Sort(got)
	if !slices.Equal(got, azure.RequiredActions) {
		t.Errorf("actions used:\n%v\nazure.RequiredActions:\n%v", got, azure.RequiredActions)
	}
}

// TestCustomRoleFile: contrib/azure/drawbridge-role.json is CustomRole's
// output, so what the README tells operators to create is what the code
// needs.
func TestCustomRoleFile(t *testing.T) {
	b, err := os.ReadFile("../../../contrib/azure/drawbridge-role.json")
	if err != nil {
		t.Fatal(err)
	}
	want := azure.CustomRole("/subscriptions/" + inventory.SampleSubscription).JSON()
	if string(b) != string(want) {
		t.Errorf("contrib/azure/drawbridge-role.json is stale; want:\n%s", want)
	}
}
