package armsim

import (
	"encoding/json"
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/drawbridge/drawbridge/internal/inventory"
	"github.com/drawbridge/drawbridge/internal/netrule"
)

// Resource types the simulator serves (ARM's "type" values).
const (
	TypeNSG      = "Microsoft.Network/networkSecurityGroups"
	TypeRule     = "Microsoft.Network/networkSecurityGroups/securityRules"
	TypeNIC      = "Microsoft.Network/networkInterfaces"
	TypeVNet     = "Microsoft.Network/virtualNetworks"
	TypeSubnet   = "Microsoft.Network/virtualNetworks/subnets"
	TypePublicIP = "Microsoft.Network/publicIPAddresses"
	TypeFirewall = "Microsoft.Network/azureFirewalls"
	TypeVM       = "Microsoft.Compute/virtualMachines"
)

// doc is one resource as ARM returns it: id, name, type, location, etag,
// properties. Kept as generic JSON so that whatever a client PUTs (and the
// simulator does not model) round-trips.
type doc = map[string]any

func key(id string) string { return strings.ToLower(strings.TrimSuffix(id, "/")) }

func lastSeg(id string) string { return path.Base(strings.TrimSuffix(id, "/")) }

func ref(id string) doc { return doc{"id": id} }

func props(d doc) doc {
	p, _ := d["properties"].(doc)
	if p == nil {
		p = doc{}
		d["properties"] = p
	}
	return p
}

// toDoc round-trips v through JSON into a generic document.
func toDoc(v any) doc {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only model types with plain fields are converted
	}
	var d doc
	if err := json.Unmarshal(b, &d); err != nil {
		panic(err)
	}
	return d
}

// ruleDoc is a security rule in ARM's shape under the NSG nsgID.
func ruleDoc(nsgID string, r netrule.SecurityRule) doc {
	p := toDoc(r)
	delete(p, "name")
	p["provisioningState"] = "Succeeded"
	return doc{"id": nsgID + "/securityRules/" + r.Name, "name": r.Name, "type": TypeRule, "properties": p}
}

// ruleFromDoc reads a security rule from its ARM document (name and
// properties), the inverse of ruleDoc.
func ruleFromDoc(name string, d doc) (netrule.SecurityRule, error) {
	p, _ := d["properties"].(doc)
	var r netrule.SecurityRule
	b, _ := json.Marshal(p)
	if err := json.Unmarshal(b, &r); err != nil {
		return r, err
	}
	r.Name = name
	return r, nil
}

// Load adds (or replaces) the Azure objects of an inventory document: VMs,
// NICs (with a public IP address resource per public address), virtual
// networks, subnets, NSGs and firewalls. AWS objects are ignored.
func (s *Server) Load(inv inventory.Inventory) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, n := range inv.NSGs {
		rules := []any{}
		for _, r := range n.SecurityRules {
			rd := ruleDoc(n.ID, r)
			rd["etag"] = s.etag()
			rules = append(rules, rd)
		}
		defaults := []any{}
		for _, r := range netrule.DefaultRules() {
			rd := ruleDoc(n.ID, r)
			rd["id"] = n.ID + "/defaultSecurityRules/" + r.Name
			rd["type"] = "Microsoft.Network/networkSecurityGroups/defaultSecurityRules"
			defaults = append(defaults, rd)
		}
		s.put(doc{"id": n.ID, "name": lastSeg(n.ID), "type": TypeNSG, "location": s.loc(n.Location),
			"properties": doc{"provisioningState": "Succeeded", "securityRules": rules, "defaultSecurityRules": defaults}})
	}
	for _, v := range inv.VirtualNetworks {
		prefixes := []any{}
		for _, p := range v.AddressSpace {
			prefixes = append(prefixes, p.String())
		}
		s.put(doc{"id": v.ID, "name": lastSeg(v.ID), "type": TypeVNet, "location": s.loc(""),
			"properties": doc{"provisioningState": "Succeeded", "addressSpace": doc{"addressPrefixes": prefixes}}})
	}
	for _, sn := range inv.Subnets {
		p := doc{"provisioningState": "Succeeded", "addressPrefix": sn.AddressPrefix.String()}
		if sn.NSG != "" {
			p["networkSecurityGroup"] = ref(sn.NSG)
		}
		s.put(doc{"id": sn.ID, "name": lastSeg(sn.ID), "type": TypeSubnet, "properties": p})
		if vnet := vnetOf(sn.ID); s.res[key(vnet)] == nil {
			s.put(doc{"id": vnet, "name": lastSeg(vnet), "type": TypeVNet, "location": s.loc(""),
				"properties": doc{"provisioningState": "Succeeded", "addressSpace": doc{"addressPrefixes": []any{sn.AddressPrefix.String()}}}})
		}
	}
	vmOf := map[string]string{}
	for _, vm := range inv.VMs {
		if vm.Cloud != inventory.Azure && vm.Cloud != "" {
			continue
		}
		nics := []any{}
		for i, n := range vm.NICs {
			nics = append(nics, doc{"id": n, "properties": doc{"primary": i == 0}})
			vmOf[key(n)] = vm.ID
		}
		s.put(doc{"id": vm.ID, "name": lastSeg(vm.ID), "type": TypeVM, "location": s.loc(vm.Location),
			"properties": doc{"provisioningState": "Succeeded", "vmId": s.uuid(),
				"networkProfile": doc{"networkInterfaces": nics}}})
	}
	for _, n := range inv.NICs {
		s.loadNIC(n, vmOf[key(n.ID)])
	}
	for _, f := range inv.Firewalls {
		s.loadFirewall(f)
	}
}

func (s *Server) loadNIC(n inventory.NIC, vm string) {
	rg := n.ID[:strings.Index(strings.ToLower(n.ID), "/providers/")]
	ipc := doc{"privateIPAllocationMethod": "Dynamic", "primary": true, "provisioningState": "Succeeded"}
	if len(n.PrivateIPs) > 0 {
		ipc["privateIPAddress"] = n.PrivateIPs[0].String()
	}
	if n.Subnet != "" {
		ipc["subnet"] = ref(n.Subnet)
	}
	configs := []any{}
	for i := 0; i < max(1, len(n.PrivateIPs)); i++ {
		c := doc{}
		for k, v := range ipc {
			c[k] = v
		}
		if i > 0 {
			c["primary"] = false
			c["privateIPAddress"] = n.PrivateIPs[i].String()
		}
		if i < len(n.PublicIPs) {
			pip := fmt.Sprintf("%s/providers/%s/%s-pip%d", rg, TypePublicIP, lastSeg(n.ID), i)
			s.put(doc{"id": pip, "name": lastSeg(pip), "type": TypePublicIP, "location": s.loc(""),
				"properties": doc{"provisioningState": "Succeeded", "ipAddress": n.PublicIPs[i].String(), "publicIPAllocationMethod": "Static"}})
			c["publicIPAddress"] = ref(pip)
		}
		name := fmt.Sprintf("ipconfig%d", i+1)
		configs = append(configs, doc{"id": n.ID + "/ipConfigurations/" + name, "name": name, "properties": c})
	}
	p := doc{"provisioningState": "Succeeded", "ipConfigurations": configs}
	if n.NSG != "" {
		p["networkSecurityGroup"] = ref(n.NSG)
	}
	if vm != "" {
		p["virtualMachine"] = ref(vm)
	}
	s.put(doc{"id": n.ID, "name": lastSeg(n.ID), "type": TypeNIC, "location": s.loc(""), "properties": p})
}

func vnetOf(subnetID string) string {
	i := strings.LastIndex(strings.ToLower(subnetID), "/subnets/")
	if i < 0 {
		return subnetID
	}
	return subnetID[:i]
}

func (s *Server) loc(l string) string {
	if l == "" {
		return "westeurope"
	}
	return l
}

// put stores d under its id with a fresh etag. Caller holds mu.
func (s *Server) put(d doc) {
	d["etag"] = s.etag()
	k := key(d["id"].(string))
	if s.res[k] == nil {
		delete(s.byType, strings.ToLower(d["type"].(string)))
	}
	s.res[k] = d
}

// NSG returns the simulated NSG as drawbridge's model (custom rules only, in
// the order Azure lists them), and whether it exists.
func (s *Server) NSG(id string) (netrule.NSG, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.res[key(id)]
	if d == nil {
		return netrule.NSG{}, false
	}
	n := netrule.NSG{ID: d["id"].(string), Name: d["name"].(string), Location: d["location"].(string)}
	rules, _ := props(d)["securityRules"].([]any)
	for _, rd := range rules {
		r, err := ruleFromDoc(rd.(doc)["name"].(string), rd.(doc))
		if err == nil {
			n.SecurityRules = append(n.SecurityRules, r)
		}
	}
	return n, true
}

// NSGIDs lists the IDs of every simulated NSG, sorted.
func (s *Server) NSGIDs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, d := range s.res {
		if strings.EqualFold(d["type"].(string), TypeNSG) {
			out = append(out, d["id"].(string))
		}
	}
	slices.Sort(out)
	return out
}

// DeleteRule removes a security rule as someone editing the NSG outside
// drawbridge would (terraform, the portal), for drift tests. It reports
// whether the rule existed.
func (s *Server) DeleteRule(nsgID, name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.res[key(nsgID)]
	if d == nil {
		return false
	}
	rules, _ := props(d)["securityRules"].([]any)
	i := slices.IndexFunc(rules, func(r any) bool { return strings.EqualFold(r.(doc)["name"].(string), name) })
	if i < 0 {
		return false
	}
	props(d)["securityRules"] = slices.Delete(rules, i, i+1)
	d["etag"] = s.etag()
	return true
}

// Doc returns a deep copy of the resource document with that ID.
func (s *Server) Doc(id string) (map[string]any, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.res[key(id)]
	if d == nil {
		return nil, false
	}
	return toDoc(d), true
}

// DeleteResource removes a resource as someone deleting it outside
// drawbridge would (a VM deleted in the portal), for discovery tests. Its
// child resources and the resources that refer to it stay, as in Azure
// (deleting a VM keeps its NICs and disks). It reports whether it existed.
func (s *Server) DeleteResource(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.res[key(id)]
	if d == nil {
		return false
	}
	delete(s.byType, strings.ToLower(d["type"].(string)))
	delete(s.res, key(id))
	return true
}

// AddRule adds a security rule as someone editing the NSG outside
// drawbridge would, for drift tests. It reports whether the NSG exists.
func (s *Server) AddRule(nsgID string, r netrule.SecurityRule) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.res[key(nsgID)]
	if d == nil {
		return false
	}
	rules, _ := props(d)["securityRules"].([]any)
	props(d)["securityRules"] = append(rules, ruleDoc(d["id"].(string), r))
	d["etag"] = s.etag()
	return true
}
