package agenthub

import (
	"context"
	"testing"

	"github.com/drawbridge/drawbridge/internal/inventory"
	"github.com/drawbridge/drawbridge/internal/jit"
)

func TestConnected(t *testing.T) {
	ctx := context.Background()
	h := New()
	vm := inventory.VM{ID: "/subscriptions/s1/resourceGroups/rg1/providers/Drawbridge.Host/hosts/h1", Cloud: inventory.Host, Provider: inventory.ProviderNftables}
	if h.Connected(vm.ID) {
		t.Fatal("a VM the hub never saw is not connected")
	}
	if _, err := h.Apply(ctx, vm, jit.Desired{VMID: vm.ID}); err != nil {
		t.Fatal(err)
	}
	if h.Connected(vm.ID) {
		t.Fatal("desired state alone is not a connected agent")
	}
	sub, err := h.Subscribe(ctx, vm.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !h.Connected("/SUBSCRIPTIONS/s1/resourceGroups/rg1/providers/Drawbridge.Host/hosts/H1") {
		t.Error("subscribed agent: Connected should be true (IDs compare case-insensitively)")
	}
	sub.Close()
	if h.Connected(vm.ID) {
		t.Error("after the subscription closed: Connected should be false")
	}
}
