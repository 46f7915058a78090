package azure

import (
	"fmt"
	"net/netip"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v7"

	"github.com/drawbridge/drawbridge/internal/inventory"
	"github.com/drawbridge/drawbridge/internal/netrule"
)

func str(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// strs turns an SDK string list into drawbridge's, nil when empty: Azure
// answers [] for plural fields nobody set, which must compare equal to a
// rule that never had them.
func strs(ps []*string) []string {
	var out []string
	for _, p := range ps {
		if p != nil {
			out = append(out, *p)
		}
	}
	return out
}

func ptrs(ss []string) []*string {
	if len(ss) == 0 {
		return nil
	}
	out := make([]*string, len(ss))
	for i := range ss {
		out[i] = to.Ptr(ss[i])
	}
	return out
}

func optPtr(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// RuleFromARM converts an SDK security rule into drawbridge's model.
func RuleFromARM(r *armnetwork.SecurityRule) netrule.SecurityRule {
	out := netrule.SecurityRule{Name: str(r.Name)}
	p := r.Properties
	if p == nil {
		return out
	}
	if p.Priority != nil {
		out.Priority = int(*p.Priority)
	}
	if p.Direction != nil {
		out.Direction = netrule.Direction(*p.Direction)
	}
	if p.Access != nil {
		out.Access = netrule.Access(*p.Access)
	}
	if p.Protocol != nil {
		out.Protocol = netrule.Protocol(*p.Protocol)
		if pr, err := netrule.ParseProtocol(string(*p.Protocol)); err == nil {
			out.Protocol = pr
		}
	}
	out.Description = str(p.Description)
	out.SourceAddressPrefix, out.SourceAddressPrefixes = str(p.SourceAddressPrefix), strs(p.SourceAddressPrefixes)
	out.SourcePortRange, out.SourcePortRanges = str(p.SourcePortRange), strs(p.SourcePortRanges)
	out.DestinationAddressPrefix, out.DestinationAddressPrefixes = str(p.DestinationAddressPrefix), strs(p.DestinationAddressPrefixes)
	out.DestinationPortRange, out.DestinationPortRanges = str(p.DestinationPortRange), strs(p.DestinationPortRanges)
	out.SourceApplicationSecurityGroups = asgRefs(p.SourceApplicationSecurityGroups)
	out.DestinationApplicationSecurityGroups = asgRefs(p.DestinationApplicationSecurityGroups)
	return out
}

func asgRefs(gs []*armnetwork.ApplicationSecurityGroup) []netrule.SubResource {
	var out []netrule.SubResource
	for _, g := range gs {
		if g != nil && str(g.ID) != "" {
			out = append(out, netrule.SubResource{ID: str(g.ID)})
		}
	}
	return out
}

// ruleToARM is the body of a securityRules PUT for r.
func ruleToARM(r netrule.SecurityRule) armnetwork.SecurityRule {
	proto := armnetwork.SecurityRuleProtocol(r.Protocol)
	return armnetwork.SecurityRule{Properties: &armnetwork.SecurityRulePropertiesFormat{
		Priority:                   to.Ptr(int32(r.Priority)),
		Direction:                  to.Ptr(armnetwork.SecurityRuleDirection(r.Direction)),
		Access:                     to.Ptr(armnetwork.SecurityRuleAccess(r.Access)),
		Protocol:                   &proto,
		Description:                optPtr(r.Description),
		SourceAddressPrefix:        optPtr(r.SourceAddressPrefix),
		SourceAddressPrefixes:      ptrs(r.SourceAddressPrefixes),
		SourcePortRange:            optPtr(r.SourcePortRange),
		SourcePortRanges:           ptrs(r.SourcePortRanges),
		DestinationAddressPrefix:   optPtr(r.DestinationAddressPrefix),
		DestinationAddressPrefixes: ptrs(r.DestinationAddressPrefixes),
		DestinationPortRange:       optPtr(r.DestinationPortRange),
		DestinationPortRanges:      ptrs(r.DestinationPortRanges),
	}}
}

// NSGFromARM converts an SDK NSG (custom rules only).
func NSGFromARM(n *armnetwork.SecurityGroup) netrule.NSG {
	out := netrule.NSG{ID: str(n.ID), Name: str(n.Name), Location: str(n.Location)}
	if n.Properties != nil {
		for _, r := range n.Properties.SecurityRules {
			if r != nil {
				out.SecurityRules = append(out.SecurityRules, RuleFromARM(r))
			}
		}
	}
	return out
}

// NICFromARM converts an SDK network interface: the subnet of its primary
// IP configuration, its NSG, and the private addresses of every
// configuration. Public addresses are resolved by the caller (they are
// separate resources); pips maps public IP resource keys to addresses.
func NICFromARM(n *armnetwork.Interface, pips map[string]netip.Addr) (inventory.NIC, error) {
	out := inventory.NIC{ID: str(n.ID)}
	p := n.Properties
	if p == nil {
		return out, nil
	}
	if p.NetworkSecurityGroup != nil {
		out.NSG = str(p.NetworkSecurityGroup.ID)
	}
	for i, c := range p.IPConfigurations {
		if c == nil || c.Properties == nil {
			continue
		}
		cp := c.Properties
		if cp.Subnet != nil && (out.Subnet == "" || (cp.Primary != nil && *cp.Primary)) {
			out.Subnet = str(cp.Subnet.ID)
		}
		if s := str(cp.PrivateIPAddress); s != "" {
			a, err := netip.ParseAddr(s)
			if err != nil {
				return out, fmt.Errorf("network interface %s: ipConfigurations[%d].privateIPAddress: %w", out.ID, i, err)
			}
			out.PrivateIPs = append(out.PrivateIPs, a)
		}
		if cp.PublicIPAddress != nil {
			if a, ok := pips[inventory.Key(str(cp.PublicIPAddress.ID))]; ok {
				out.PublicIPs = append(out.PublicIPs, a)
			}
		}
	}
	return out, nil
}

// SubnetFromARM converts an SDK subnet.
func SubnetFromARM(s *armnetwork.Subnet) (inventory.Subnet, error) {
	out := inventory.Subnet{ID: str(s.ID)}
	p := s.Properties
	if p == nil {
		return out, nil
	}
	if p.NetworkSecurityGroup != nil {
		out.NSG = str(p.NetworkSecurityGroup.ID)
	}
	pre := str(p.AddressPrefix)
	if pre == "" && len(p.AddressPrefixes) > 0 {
		pre = str(p.AddressPrefixes[0])
	}
	if pre != "" {
		pp, err := netip.ParsePrefix(pre)
		if err != nil {
			return out, fmt.Errorf("subnet %s: addressPrefix: %w", out.ID, err)
		}
		out.AddressPrefix = pp
	}
	return out, nil
}
