package sim

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/drawbridge/drawbridge/internal/inventory"
	"github.com/drawbridge/drawbridge/internal/netrule"
	"github.com/drawbridge/drawbridge/internal/store"
)

// View is a read-only picture of the simulated firewall in front of one VM,
// for the API and CLI. Field names follow Azure's NSG and EC2's documents.
// Its order is stable (equal objects give byte-equal JSON), so two views can
// be compared to tell whether a firewall is back to where it was.
type View struct {
	VMID  string          `json:"vmId"`
	Name  string          `json:"name,omitempty"`
	Cloud inventory.Cloud `json:"cloud"`
	// Azure: the NSGs on the VM's inbound path in evaluation order (for each
	// NIC, its subnet's NSG, then its own), each once.
	NetworkSecurityGroups []NSGView `json:"networkSecurityGroups,omitempty"`
	// Azure: the classic Azure Firewall the VM is reached through, if any,
	// with its NAT rule collections (JIT's DNAT rules among them).
	Firewall *inventory.Firewall `json:"azureFirewall,omitempty"`
	// AWS: the instance's ENIs, primary first.
	NetworkInterfaces []ENIView `json:"networkInterfaces,omitempty"`
}

// NSGView is one NSG with every rule that applies, custom and default
// (priority 65000 and above), ordered as Azure evaluates them: inbound
// first, then outbound, each by priority.
type NSGView struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	Location string `json:"location,omitempty"`
	// Where the NSG is associated on this VM's path.
	Subnets           []string               `json:"subnets,omitempty"`
	NetworkInterfaces []string               `json:"networkInterfaces,omitempty"`
	SecurityRules     []netrule.SecurityRule `json:"securityRules"`
}

// ENIView is one ENI with its security groups in attachment order, each
// group's permissions sorted by protocol, ports, then sources.
type ENIView struct {
	NetworkInterfaceID string                  `json:"NetworkInterfaceId"`
	SubnetID           string                  `json:"SubnetId,omitempty"`
	PrivateIPAddresses []netip.Addr            `json:"PrivateIpAddresses,omitempty"`
	PublicIP           netip.Addr              `json:"PublicIp,omitzero"`
	Groups             []netrule.SecurityGroup `json:"Groups"`
}

// View returns the firewall in front of the VM with ID vmID, read in one
// transaction. A missing VM is an error wrapping store.ErrNotFound.
func (p *Provider) View(ctx context.Context, vmID string) (View, error) {
	var v View
	err := p.objs.ObjectReadTx(ctx, func(o store.Objects) error {
		s := newSession(ctx, o)
		vm, err := get[inventory.VM](s, inventory.KindVM, vmID)
		if err != nil {
			return err
		}
		if vm == nil {
			return fmt.Errorf("virtual machine %s: %w", vmID, store.ErrNotFound)
		}
		v = View{VMID: vm.ID, Name: vm.Name, Cloud: vm.Cloud}
		switch vm.Cloud {
		case inventory.AWS:
			v.NetworkInterfaces, err = s.awsView(*vm)
		case inventory.Azure, "":
			v.NetworkSecurityGroups, err = s.azureView(*vm)
			if err == nil && vm.Firewall != "" {
				v.Firewall, err = get[inventory.Firewall](s, inventory.KindFirewall, vm.Firewall)
			}
		}
		return err
	})
	return v, err
}

func (s *session) azureView(vm inventory.VM) ([]NSGView, error) {
	var out []NSGView
	idx := map[string]int{}
	add := func(nsgID, subnet, nic string) error {
		if nsgID == "" {
			return nil
		}
		k := inventory.Key(nsgID)
		i, ok := idx[k]
		if !ok {
			nsg, err := get[netrule.NSG](s, inventory.KindNSG, nsgID)
			if err != nil {
				return err
			}
			if nsg == nil {
				return fmt.Errorf("networkSecurityGroup %s not found: %w", nsgID, ErrInventory)
			}
			rules := append(slices.Clone(nsg.SecurityRules), netrule.DefaultRules()...)
			slices.SortStableFunc(rules, func(a, b netrule.SecurityRule) int {
				if a.Direction != b.Direction {
					if a.Direction == netrule.Inbound {
						return -1
					}
					return 1
				}
				return cmp.Or(cmp.Compare(a.Priority, b.Priority), strings.Compare(a.Name, b.Name))
			})
			out = append(out, NSGView{ID: nsg.ID, Name: nsg.Name, Location: nsg.Location, SecurityRules: rules})
			i = len(out) - 1
			idx[k] = i
		}
		if subnet != "" && !slices.Contains(out[i].Subnets, subnet) {
			out[i].Subnets = append(out[i].Subnets, subnet)
		}
		if nic != "" && !slices.Contains(out[i].NetworkInterfaces, nic) {
			out[i].NetworkInterfaces = append(out[i].NetworkInterfaces, nic)
		}
		return nil
	}
	for _, nicID := range vm.NICs {
		nic, err := get[inventory.NIC](s, inventory.KindNIC, nicID)
		if err != nil {
			return nil, err
		}
		if nic == nil {
			return nil, fmt.Errorf("virtual machine %s: network interface %s not found: %w", vm.ID, nicID, ErrInventory)
		}
		if nic.Subnet != "" {
			sub, err := get[inventory.Subnet](s, inventory.KindSubnet, nic.Subnet)
			if err != nil {
				return nil, err
			}
			if sub == nil {
				return nil, fmt.Errorf("network interface %s: subnet %s not found: %w", nic.ID, nic.Subnet, ErrInventory)
			}
			if err := add(sub.NSG, sub.ID, ""); err != nil {
				return nil, err
			}
		}
		if err := add(nic.NSG, "", nic.ID); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (s *session) awsView(vm inventory.VM) ([]ENIView, error) {
	var out []ENIView
	for _, id := range vm.ENIs {
		eni, err := get[inventory.ENI](s, inventory.KindENI, id)
		if err != nil {
			return nil, err
		}
		if eni == nil {
			return nil, fmt.Errorf("instance %s: network interface %s not found: %w", vm.ID, id, ErrInventory)
		}
		ev := ENIView{NetworkInterfaceID: eni.ID, SubnetID: eni.SubnetID, PrivateIPAddresses: eni.PrivateIPs, PublicIP: eni.PublicIP, Groups: []netrule.SecurityGroup{}}
		for _, gid := range eni.SecurityGroups {
			sg, err := get[netrule.SecurityGroup](s, inventory.KindSecurityGroup, gid)
			if err != nil {
				return nil, err
			}
			if sg == nil {
				return nil, fmt.Errorf("network interface %s: security group %s not found: %w", eni.ID, gid, ErrInventory)
			}
			g := *sg
			g.IPPermissions = sortedPermissions(sg.IPPermissions)
			ev.Groups = append(ev.Groups, g)
		}
		out = append(out, ev)
	}
	return out, nil
}

// sortedPermissions orders permissions by protocol, from port, to port, then
// their JSON, so that the same set always reads the same.
func sortedPermissions(in []netrule.IPPermission) []netrule.IPPermission {
	out := slices.Clone(in)
	if out == nil {
		out = []netrule.IPPermission{}
	}
	key := func(p netrule.IPPermission) string {
		b, _ := json.Marshal(p)
		return string(b)
	}
	slices.SortStableFunc(out, func(a, b netrule.IPPermission) int {
		return cmp.Or(strings.Compare(a.IPProtocol, b.IPProtocol), cmp.Compare(a.FromPort, b.FromPort),
			cmp.Compare(a.ToPort, b.ToPort), strings.Compare(key(a), key(b)))
	})
	return out
}

// NSG returns one network security group as stored (custom rules only;
// netrule.DefaultRules are implied), or an error wrapping store.ErrNotFound.
func (p *Provider) NSG(ctx context.Context, id string) (netrule.NSG, error) {
	var n netrule.NSG
	err := p.objs.ObjectReadTx(ctx, func(o store.Objects) error {
		return o.GetObject(ctx, inventory.KindNSG, inventory.Key(id), &n)
	})
	return n, err
}
