package jit_test

import (
	"reflect"
	"testing"

	"github.com/drawbridge/drawbridge/internal/jit"
)

// DistinctVMs keeps the first entry of each VM, comparing IDs as inventory
// keys do (case-insensitively), in order.
func TestPolicyDistinctVMs(t *testing.T) {
	p := jit.Policy{VirtualMachines: []jit.VMPolicy{{ID: "/VM/a"}, {ID: "/vm/b"}, {ID: "/vm/A", PublicIPAddress: "later"}, {ID: "/vm/c"}}}
	got := p.DistinctVMs()
	var ids []string
	for _, v := range got {
		ids = append(ids, v.ID)
	}
	if !reflect.DeepEqual(ids, []string{"/VM/a", "/vm/b", "/vm/c"}) || got[0].PublicIPAddress != "" {
		t.Fatalf("DistinctVMs = %+v", got)
	}
}
