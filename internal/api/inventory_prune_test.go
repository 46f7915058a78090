package api_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/drawbridge/drawbridge/internal/inventory"
)

// TestInventoryPrune: POST /drawbridge/v1/inventory with prune and scope
// removes the provider's VMs under scope that the document lacks (a VM
// deleted in the cloud); without scope it is a 400 naming the field and
// nothing changes.
func TestInventoryPrune(t *testing.T) {
	e := newEnv(t)
	inv := inventory.Sample()
	var kept []inventory.VM
	for _, vm := range inv.VMs {
		if !strings.EqualFold(vm.ID, web01) {
			kept = append(kept, vm)
		}
	}
	inv.VMs = kept
	doc, _ := json.Marshal(inv)
	if code, body := e.do("POST", "/drawbridge/v1/inventory?prune=sim", string(doc)); code != 400 || !strings.Contains(body["error"].(map[string]any)["target"].(string), "scope") {
		t.Fatalf("prune without scope: %d %v", code, body)
	}
	if code, _ := e.do("GET", "/drawbridge/v1/network?vm="+web01, ""); code != 200 {
		t.Fatalf("web-01 gone after a refused prune: %d", code)
	}
	// A listing with no VM of the scope would remove them all: refused.
	none := inventory.Sample()
	none.VMs = nil
	empty, _ := json.Marshal(none)
	if code, body := e.do("POST", "/drawbridge/v1/inventory?prune=sim&scope=/subscriptions/"+sub, string(empty)); code != 409 || !strings.Contains(body["error"].(map[string]any)["target"].(string), "scope") {
		t.Fatalf("prune on an empty listing: %d %v, want 409 naming scope", code, body)
	}
	if code, _ := e.do("GET", "/drawbridge/v1/network?vm="+web01, ""); code != 200 {
		t.Fatalf("web-01 gone after a refused empty prune: %d", code)
	}
	code, body := e.do("POST", "/drawbridge/v1/inventory?prune=sim&scope=/subscriptions/"+sub, string(doc))
	if code != 200 || body["removed"] != float64(1) {
		t.Fatalf("prune: %d %v", code, body)
	}
	if code, _ := e.do("GET", "/drawbridge/v1/network?vm="+web01, ""); code != 404 {
		t.Errorf("web-01 still known after the prune: %d", code)
	}
	if code, _ := e.do("GET", "/drawbridge/v1/network?vm="+win01, ""); code != 200 {
		t.Errorf("win-01 lost: %d", code)
	}
}
