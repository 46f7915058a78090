package sim

import (
	"encoding/json"
	"fmt"

	"github.com/drawbridge/drawbridge/internal/inventory"
	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/netrule"
)

// Revocation is the KindRevoked record of one security group: which VMs need
// which ports closed in it, the user's permissions JIT revoked (each with
// its index in the group's list as the user had it), and the remainder
// permissions JIT added back in their place. With it, the group as the user
// had it is exactly recoverable: drop the remainders, reinsert the revoked
// permissions at their indices.
type Revocation struct {
	GroupID    string                 `json:"groupId"`
	Holders    []Holder               `json:"holders"`
	Revoked    []RevokedPermission    `json:"revoked"`
	Remainders []netrule.IPPermission `json:"remainders"`
}

// Holder is one JIT-enabled VM that needs ports revoked in a group.
type Holder struct {
	VMID  string            `json:"vmId"` // inventory.Key of the VM ID
	Ports []jit.GuardedPort `json:"ports"`
}

// RevokedPermission is a user permission JIT took out of a group.
type RevokedPermission struct {
	Index      int                  `json:"index"`
	Permission netrule.IPPermission `json:"permission"`
}

func (s *session) reconcileAWS(vm inventory.VM, guarded []jit.GuardedPort, grants []jit.DesiredGrant) ([]string, error) {
	name := vm.ID
	if vm.InstanceID != "" {
		name = vm.InstanceID + " (" + vm.ID + ")"
	}
	if len(guarded) > 0 && len(vm.ENIs) == 0 {
		return nil, fmt.Errorf("instance %s has no network interfaces (enis is empty), so there is no security group to revoke from: %w", name, ErrUnprotectable)
	}
	enis := make([]*inventory.ENI, 0, len(vm.ENIs))
	for i, id := range vm.ENIs {
		eni, err := get[inventory.ENI](s, inventory.KindENI, id)
		if err != nil {
			return nil, err
		}
		if eni == nil {
			if len(guarded) == 0 {
				// Disabling: skip it; holds on its groups are released
				// through the KindRevoked records below.
				continue
			}
			return nil, fmt.Errorf("instance %s: enis[%d]: network interface %s not found: %w", name, i, id, ErrInventory)
		}
		enis = append(enis, eni)
	}
	if err := s.reconcileGrantGroups(vm, name, enis, grants); err != nil {
		return nil, err
	}
	if err := s.reconcileRevocations(vm, enis, guarded); err != nil {
		return nil, err
	}
	for _, e := range enis {
		s.put(inventory.KindENI, e.ID, e)
	}
	var enforced []string
	for _, g := range grants {
		enforced = append(enforced, g.GrantID)
	}
	return enforced, nil
}

func jsonEqual(a, b any) bool {
	x, err1 := json.Marshal(a)
	y, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && string(x) == string(y)
}
