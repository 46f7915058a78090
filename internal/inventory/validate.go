package inventory

import (
	"errors"
	"fmt"
	"strings"

	"github.com/drawbridge/drawbridge/internal/netrule"
	"github.com/drawbridge/drawbridge/internal/resource"
)

// Validate checks a whole inventory document and returns every problem it
// finds, joined (errors.Join), each naming the object by list, index and id,
// then the field and the reason, e.g.
//
//	networkSecurityGroups[1] (id "…/web-nsg"): securityRules[0] (name "AllowSSH"): priority: 5000 is outside the range 100-4096
//
// It checks each object on its own (IDs present and unique per kind, rules
// and permissions well formed, NSG priorities and rule names unique) and the
// references between objects (a VM's NICs, ENIs and firewall; a NIC's subnet
// and NSG; a subnet's NSG; an ENI's security groups must all exist).
func Validate(inv Inventory) error {
	v := &validator{}
	known := v.checkIDs(inv)
	for i, vm := range inv.VMs {
		v.checkVM(v.at("vms", i, vm.ID), vm, known)
	}
	for i, n := range inv.NICs {
		v.checkNIC(v.at("nics", i, n.ID), n, known)
	}
	for i, vn := range inv.VirtualNetworks {
		v.checkVirtualNetwork(v.at("virtualNetworks", i, vn.ID), vn)
	}
	for i, s := range inv.Subnets {
		v.checkSubnet(v.at("subnets", i, s.ID), s, known)
	}
	for i, n := range inv.NSGs {
		v.checkNSG(v.at("networkSecurityGroups", i, n.ID), n)
	}
	for i, f := range inv.Firewalls {
		v.validateFirewall(v.at("firewalls", i, f.ID), f)
	}
	for i, e := range inv.ENIs {
		v.checkENI(v.at("enis", i, e.ID), e, known)
	}
	for i, g := range inv.SecurityGroups {
		v.checkSecurityGroup(v.at("securityGroups", i, g.GroupID), g)
	}
	v.checkSettings(inv.Settings)
	return v.err()
}

// knownIDs holds the IDs (by Key) of each kind of object that others refer to.
type knownIDs struct {
	nics, subnets, nsgs, firewalls, enis, securityGroups map[string]bool
}

// checkIDs checks that every object has an ID unique within its kind and
// returns the IDs that references are checked against.
func (v *validator) checkIDs(inv Inventory) knownIDs {
	v.ids("vms", len(inv.VMs), func(i int) string { return inv.VMs[i].ID })
	var k knownIDs
	k.nics = v.ids("nics", len(inv.NICs), func(i int) string { return inv.NICs[i].ID })
	v.ids("virtualNetworks", len(inv.VirtualNetworks), func(i int) string { return inv.VirtualNetworks[i].ID })
	k.subnets = v.ids("subnets", len(inv.Subnets), func(i int) string { return inv.Subnets[i].ID })
	k.nsgs = v.ids("networkSecurityGroups", len(inv.NSGs), func(i int) string { return inv.NSGs[i].ID })
	k.firewalls = v.ids("firewalls", len(inv.Firewalls), func(i int) string { return inv.Firewalls[i].ID })
	k.enis = v.ids("enis", len(inv.ENIs), func(i int) string { return inv.ENIs[i].ID })
	k.securityGroups = v.ids("securityGroups", len(inv.SecurityGroups), func(i int) string { return inv.SecurityGroups[i].GroupID })
	return k
}

// ids checks the n IDs of one list and returns the set of their keys.
func (v *validator) ids(list string, n int, id func(int) string) map[string]bool {
	seen := make(map[string]bool, n)
	for i := 0; i < n; i++ {
		s := id(i)
		at := v.at(list, i, s)
		if strings.TrimSpace(s) == "" {
			v.add(at, "id", "id is required")
			continue
		}
		if seen[Key(s)] {
			v.add(at, "id", "duplicate id: another %s has the same id (ids compare case-insensitively)", strings.TrimSuffix(list, "s"))
		}
		seen[Key(s)] = true
	}
	return seen
}

// ref reports a non-empty reference to an ID that is not in known.
func (v *validator) ref(at, field, what, id string, known map[string]bool) {
	if id != "" && !known[Key(id)] {
		v.add(at, field, "%s %q is not in the inventory", what, id)
	}
}

func (v *validator) checkVM(at string, vm VM, known knownIDs) {
	if vm.ID != "" {
		if id, err := resource.Parse(vm.ID); err != nil {
			v.add(at, "id", "%v", err)
		} else if id.Type() == "" {
			v.add(at, "id", "%q is a scope, not a resource ID (…/providers/{namespace}/{type}/{name})", vm.ID)
		}
	}
	switch vm.Cloud {
	case Azure, AWS, Host:
	case "":
		v.add(at, "cloud", "cloud is required (azure, aws or host)")
	default:
		v.add(at, "cloud", "cloud %q is not one of azure, aws, host", vm.Cloud)
	}
	switch vm.Provider {
	case ProviderSim, ProviderNftables, ProviderAzure, ProviderAWS:
	case "":
		v.add(at, "provider", "provider is required (sim, nftables, azure or aws)")
	default:
		v.add(at, "provider", "provider %q is not one of sim, nftables, azure, aws", vm.Provider)
	}
	for j, n := range vm.NICs {
		v.ref(at, fmt.Sprintf("nics[%d]", j), "network interface", n, known.nics)
	}
	for j, e := range vm.ENIs {
		v.ref(at, fmt.Sprintf("enis[%d]", j), "ENI", e, known.enis)
	}
	v.ref(at, "firewall", "firewall", vm.Firewall, known.firewalls)
	for j, a := range vm.Addresses {
		if !a.IsValid() {
			v.add(at, fmt.Sprintf("addresses[%d]", j), "address is not set")
		}
	}
}

func (v *validator) checkNIC(at string, n NIC, known knownIDs) {
	v.ref(at, "subnet", "subnet", n.Subnet, known.subnets)
	v.ref(at, "networkSecurityGroup", "network security group", n.NSG, known.nsgs)
	for j, a := range n.PrivateIPs {
		if !a.IsValid() {
			v.add(at, fmt.Sprintf("privateIPAddresses[%d]", j), "address is not set")
		}
	}
}

func (v *validator) checkVirtualNetwork(at string, vn VirtualNetwork) {
	if len(vn.AddressSpace) == 0 {
		v.add(at, "addressSpace", "at least one address prefix is required")
	}
	for j, p := range vn.AddressSpace {
		if !p.IsValid() {
			v.add(at, fmt.Sprintf("addressSpace[%d]", j), "prefix is not set")
		} else if p.Masked() != p {
			v.add(at, fmt.Sprintf("addressSpace[%d]", j), "%s has host bits set; the prefix is %s", p, p.Masked())
		}
	}
}

func (v *validator) checkSubnet(at string, s Subnet, known knownIDs) {
	if !s.AddressPrefix.IsValid() {
		v.add(at, "addressPrefix", "address prefix is required (a CIDR such as 10.0.1.0/24)")
	} else if s.AddressPrefix.Masked() != s.AddressPrefix {
		v.add(at, "addressPrefix", "%s has host bits set; the prefix is %s", s.AddressPrefix, s.AddressPrefix.Masked())
	}
	v.ref(at, "networkSecurityGroup", "network security group", s.NSG, known.nsgs)
}

// checkNSG checks each rule and that rule names, and priorities per
// direction, are unique within the NSG.
func (v *validator) checkNSG(at string, n netrule.NSG) {
	names := map[string]int{}
	prios := map[string]int{}
	for j, r := range n.SecurityRules {
		rat := fmt.Sprintf("%s: securityRules[%d] (name %q)", at, j, r.Name)
		v.addFieldErrors(rat, netrule.CheckSecurityRule(r))
		if r.Name != "" {
			if k, dup := names[strings.ToLower(r.Name)]; dup {
				v.add(rat, "name", "duplicate rule name: securityRules[%d] has the same name", k)
			} else {
				names[strings.ToLower(r.Name)] = j
			}
		}
		if dir, err := netrule.ParseDirection(string(r.Direction)); err == nil {
			key := fmt.Sprintf("%s/%d", dir, r.Priority)
			if k, dup := prios[key]; dup {
				v.add(rat, "priority", "duplicate priority %d for %s rules: securityRules[%d] (name %q) has it too", r.Priority, dir, k, n.SecurityRules[k].Name)
			} else {
				prios[key] = j
			}
		}
	}
}

func (v *validator) checkENI(at string, e ENI, known knownIDs) {
	if len(e.SecurityGroups) > MaxSecurityGroupsPerENI {
		v.add(at, "securityGroups", "%d security groups attached; AWS allows at most %d per network interface", len(e.SecurityGroups), MaxSecurityGroupsPerENI)
	}
	seen := map[string]bool{}
	for j, g := range e.SecurityGroups {
		field := fmt.Sprintf("securityGroups[%d]", j)
		if seen[Key(g)] {
			v.add(at, field, "security group %q is attached twice", g)
		}
		seen[Key(g)] = true
		if g == "" {
			v.add(at, field, "security group id is empty")
		}
		v.ref(at, field, "security group", g, known.securityGroups)
	}
}

func (v *validator) checkSecurityGroup(at string, g netrule.SecurityGroup) {
	for j, p := range g.IPPermissions {
		v.addFieldErrors(fmt.Sprintf("%s: IpPermissions[%d]", at, j), netrule.CheckIPPermission(p))
	}
}

// addFieldErrors adds netrule's problems, naming the field when the error
// is a netrule.FieldError.
func (v *validator) addFieldErrors(at string, errs []error) {
	for _, err := range errs {
		var fe netrule.FieldError
		if errors.As(err, &fe) {
			v.add(at, fe.Field, "%s", fe.Reason)
		} else {
			v.add(at, "", "%v", err)
		}
	}
}

// checkSettings checks that each setting's scope is a subscription or
// resource group, at most one setting per scope.
func (v *validator) checkSettings(settings []Setting) {
	seenScope := map[string]bool{}
	for i, s := range settings {
		at := fmt.Sprintf("settings[%d] (scope %q)", i, s.Scope)
		id, err := resource.Parse(s.Scope)
		switch {
		case err != nil:
			v.add(at, "scope", "%v", err)
		case id.Type() != "" || id.Equal(resource.Root):
			v.add(at, "scope", "%q is not a subscription or resource group scope", s.Scope)
		case seenScope[id.Key()]:
			v.add(at, "scope", "another setting has the same scope")
		}
		if err == nil {
			seenScope[id.Key()] = true
		}
	}
}

type validator struct {
	errs []error
}

func (v *validator) at(list string, i int, id string) string {
	return fmt.Sprintf("%s[%d] (id %q)", list, i, id)
}

func (v *validator) add(at, field, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if field != "" {
		msg = field + ": " + msg
	}
	v.errs = append(v.errs, errors.New(at+": "+msg))
}

func (v *validator) err() error {
	if len(v.errs) == 0 {
		return nil
	}
	return &ValidationError{Problems: v.errs}
}

// ValidationError lists every problem Validate found. Its message names the
// number of problems and lists them, one a line.
type ValidationError struct {
	Problems []error
}

func (e *ValidationError) Error() string {
	var b strings.Builder
	if len(e.Problems) == 1 {
		b.WriteString("invalid inventory: ")
	} else {
		fmt.Fprintf(&b, "invalid inventory (%d problems): ", len(e.Problems))
	}
	for i, p := range e.Problems {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(p.Error())
	}
	return b.String()
}

// Unwrap lets errors.Is and errors.As see each problem.
func (e *ValidationError) Unwrap() []error { return e.Problems }
