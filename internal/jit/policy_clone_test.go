package jit_test

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/drawbridge/drawbridge/internal/jit"
)

// Clone shares no memory with the original: every slice and pointer a
// policy holds is changed in the clone, and the original's JSON stays the
// same. The reflect walk fails if a field that can share memory is added
// to Policy without Clone copying it.
func TestPolicyCloneIsDeep(t *testing.T) {
	p := jit.Policy{ID: "p", VirtualMachines: []jit.VMPolicy{{ID: "vm1", Ports: []jit.PortPolicy{{
		Number: 22, AllowedSourceAddressPrefixes: []string{"198.18.0.0/24"},
		RequireApproval: &jit.ApprovalRule{Approvers: "ops", Count: 1},
	}}}}}
	before, _ := json.Marshal(p)
	c := p.Clone()
	if !reflect.DeepEqual(c, p) {
		t.Fatalf("clone differs: %+v", c)
	}
	c.VirtualMachines[0].ID = "changed"
	c.VirtualMachines[0].Ports[0].Number = 3389
	c.VirtualMachines[0].Ports[0].AllowedSourceAddressPrefixes[0] = "changed"
	c.VirtualMachines[0].Ports[0].RequireApproval.Count = 9
	if after, _ := json.Marshal(p); string(after) != string(before) {
		t.Fatalf("changing the clone changed the original:\n%s\n%s", before, after)
	}
	assertNoSharedMemory(t, reflect.ValueOf(p), reflect.ValueOf(p.Clone()), "Policy")
}

// assertNoSharedMemory fails if a and b (equal values) share a slice's
// backing array or a pointer's target anywhere.
func assertNoSharedMemory(t *testing.T, a, b reflect.Value, path string) {
	t.Helper()
	switch a.Kind() {
	case reflect.Slice:
		if a.Len() > 0 && a.Pointer() == b.Pointer() {
			t.Errorf("%s shares its backing array", path)
		}
		for i := range a.Len() {
			assertNoSharedMemory(t, a.Index(i), b.Index(i), path+"[]")
		}
	case reflect.Pointer:
		if !a.IsNil() && a.Pointer() == b.Pointer() {
			t.Errorf("%s points to the same value", path)
		}
		if !a.IsNil() {
			assertNoSharedMemory(t, a.Elem(), b.Elem(), path)
		}
	case reflect.Map:
		if !a.IsNil() && a.Pointer() == b.Pointer() {
			t.Errorf("%s is the same map", path)
		}
	case reflect.Struct:
		for i := range a.NumField() {
			if a.Type().Field(i).IsExported() {
				assertNoSharedMemory(t, a.Field(i), b.Field(i), path+"."+a.Type().Field(i).Name)
			}
		}
	}
}

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
