package azure_test

import (
	"context"
	"strings"
	"testing"

	"github.com/drawbridge/drawbridge/internal/cloudsim/armsim"
	"github.com/drawbridge/drawbridge/internal/inventory"
	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/netrule"
	"github.com/drawbridge/drawbridge/internal/provider/azure"
	"github.com/drawbridge/drawbridge/internal/provider/sim"
)

// TestSyncRemovesDeletedVMs: a VM deleted in Azure leaves the inventory at
// the next sync of its subscription: its grant ends (PolicyRemoved), it
// leaves its policy (the other VM stays guarded), the removal is audited,
// and JIT's rules on the NSGs that outlive it (its NIC's, the subnet's)
// are removed. A VM outside the sync's scope is kept.
func TestSyncRemovesDeletedVMs(t *testing.T) {
	ctx := context.Background()
	w := newSvcWorld(t)
	web, db := sampleVM("web-01"), sampleVM("win-01")
	pol := w.guard(t, web, db)
	if _, err := w.svc.Initiate(ctx, jit.Actor{Principal: "alice"}, pol.ID, jit.InitiateInput{VirtualMachines: []jit.InitiateVM{{ID: web.ID,
		Ports: []jit.InitiatePort{{Number: 22, Duration: "PT1H", AllowedSourceAddressPrefix: "198.51.100.7"}}}}}); err != nil {
		t.Fatal(err)
	}
	if !w.sim.DeleteResource(web.ID) {
		t.Fatal("web-01 is not in the simulator")
	}
	found, err := azure.Discover(ctx, armsim.StaticToken("t"), w.sim.ClientOptions(), azure.Scope{Subscription: inventory.SampleSubscription})
	if err != nil {
		t.Fatal(err)
	}
	// Another resource group's VM is outside a resource-group scope.
	outside, err := w.svc.SyncInventory(ctx, found, jit.SyncScope{Provider: inventory.ProviderAzure, Prefix: azure.Scope{Subscription: inventory.SampleSubscription, ResourceGroup: "other-rg"}.Prefix()})
	if err != nil || len(outside) != 0 {
		t.Fatalf("sync of another resource group removed %v (%v)", outside, err)
	}
	removed, err := w.svc.SyncInventory(ctx, found, jit.SyncScope{Provider: inventory.ProviderAzure, Prefix: azure.Scope{Subscription: inventory.SampleSubscription}.Prefix()})
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 1 || !strings.EqualFold(removed[0], web.ID) {
		t.Fatalf("removed %v, want web-01", removed)
	}
	if _, err := w.svc.GetVM(ctx, web.ID); err == nil {
		t.Error("web-01 still in the inventory")
	}
	gs, err := w.svc.ListGrants(ctx, jit.GrantFilter{VMID: web.ID})
	if err != nil || len(gs) != 1 {
		t.Fatalf("web-01's grants: %+v %v", gs, err)
	}
	if gs[0].IsActive(w.svc.Clock().Now()) || gs[0].StatusReason != jit.ReasonPolicyRemoved {
		t.Errorf("grant ended with %q, want PolicyRemoved", gs[0].StatusReason)
	}
	p, err := w.svc.GetPolicy(ctx, pol.ID)
	if err != nil || len(p.VirtualMachines) != 1 || !strings.EqualFold(p.VirtualMachines[0].ID, db.ID) {
		t.Errorf("policy after the sync: %+v %v", p.VirtualMachines, err)
	}
	recs := w.auditOps(t, jit.AuditInventoryRemove)
	if len(recs) != 1 || !strings.EqualFold(recs[0].Target, web.ID) || !strings.Contains(recs[0].Detail, "1 grants ended") {
		t.Errorf("inventory.remove records: %+v", recs)
	}
	for _, id := range w.sim.NSGIDs() {
		n, _ := w.sim.NSG(id)
		for _, r := range n.SecurityRules {
			if sim.VMOwnsRule(web.ID, r.Name) {
				t.Errorf("rule %s of deleted web-01 left on %s", r.Name, id)
			}
		}
	}
	// win-01 is still guarded.
	if !hasRule(w.sim, sampleNSG("win-01-nsg"), sim.DenyRuleName(db, 22, netrule.Tcp)) {
		t.Error("win-01 lost its deny rule")
	}
}
