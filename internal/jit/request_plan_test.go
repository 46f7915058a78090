package jit

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/inventory"
)

// planRequest is a pure step of the request path: given what was loaded,
// it plans the grants, what they supersede and each VM's desired state,
// without a store.
func TestPlanRequestAlone(t *testing.T) {
	const vmID = "/subscriptions/s1/resourceGroups/rg1/providers/Microsoft.Compute/virtualMachines/vm1"
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	vp := VMPolicy{ID: vmID, Ports: []PortPolicy{
		{Number: 22, Protocol: "TCP", AllowedSourceAddressPrefix: "*", MaxRequestAccessDuration: "PT3H"},
		{Number: 3389, Protocol: "TCP", AllowedSourceAddressPrefix: "*", MaxRequestAccessDuration: "PT3H"},
	}}
	src, _ := ParseSource("198.18.0.1")
	old22 := Grant{ID: "old22", VMID: vmID, Port: 22, Source: src, StartTime: now.Add(-time.Hour), EndTime: now.Add(time.Hour), Status: StatusInitiated, StatusReason: ReasonUserRequested}
	old3389 := old22
	old3389.ID, old3389.Port = "old3389", 3389
	targets := requestTargets{
		policy: Policy{ID: "/p", Name: "p", VirtualMachines: []VMPolicy{vp}},
		vms:    []vmTarget{{vm: inventory.VM{ID: vmID}, policy: vp, active: []Grant{old22, old3389}}},
	}
	n := 0
	pi := planInput{
		in: InitiateInput{VirtualMachines: []InitiateVM{{ID: vmID, Ports: []InitiatePort{
			{Number: 22, Duration: "1h", AllowedSourceAddressPrefix: "198.18.0.7"}}}}},
		actor: Actor{Principal: "alice"}, reqID: "r1", now: now,
		newID: func() string { n++; return fmt.Sprintf("g%d", n) },
	}
	plan, err := planRequest(targets, pi)
	if err != nil {
		t.Fatal(err)
	}
	g := plan.req.Grants
	if len(g) != 1 || g[0].ID != "g1" || g[0].RequestID != "r1" || g[0].PolicyID != "/p" || !g[0].EndTime.Equal(now.Add(time.Hour)) || g[0].Status != StatusInitiated {
		t.Fatalf("grants %+v", g)
	}
	vm := plan.vms[0]
	if len(vm.superseded) != 1 || vm.superseded[0].ID != "old22" || vm.superseded[0].StatusReason != ReasonNewerRequestInitiated {
		t.Fatalf("superseded %+v", vm.superseded)
	}
	if d := vm.desired; len(d.Guarded) != 2 || len(d.Grants) != 2 || d.Grants[0].GrantID != "old3389" || d.Grants[1].GrantID != "g1" {
		t.Fatalf("desired %+v", d)
	}

	// A kept ID (an approved request's) wins over a new one.
	pi.keepID = map[string]string{grantKey(vmID, 22): "shown"}
	if plan, err := planRequest(targets, pi); err != nil || plan.req.Grants[0].ID != "shown" {
		t.Fatalf("with a kept ID: %+v, %v", plan.req.Grants, err)
	}

	// A port outside the policy is refused, naming the field.
	pi.in.VirtualMachines[0].Ports[0].Number = 443
	_, err = planRequest(targets, pi)
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != "virtualMachines[0].ports[0].number" || !errors.Is(err, ErrInvalid) {
		t.Fatalf("port 443: %v", err)
	}
}
