package armsim

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"path"
	"strconv"
	"strings"

	"github.com/drawbridge/drawbridge/internal/inventory"
)

// loadFirewall adds an Azure Firewall: its AzureFirewallSubnet (with the
// inventory's prefix), a public IP address resource per public address,
// ipConfigurations referring to them, its classic NAT rule collections, or
// a firewallPolicy reference when Firewall Manager controls it. Caller
// holds mu.
func (s *Server) loadFirewall(f inventory.Firewall) {
	rg := f.ID[:strings.Index(strings.ToLower(f.ID), "/providers/")]
	p := doc{"provisioningState": "Succeeded", "natRuleCollections": natCollectionsDoc(f.NatRuleCollections),
		"networkRuleCollections": []any{}, "applicationRuleCollections": []any{}, "ipConfigurations": []any{},
		"threatIntelMode": "Alert", "sku": doc{"name": "AZFW_VNet", "tier": "Standard"}}
	if f.ManagedByFirewallManager {
		p["firewallPolicy"] = ref(path.Dir(path.Dir(f.ID)) + "/firewallPolicies/" + lastSeg(f.ID) + "-policy")
	}
	subnet := f.Subnet
	if subnet == "" && f.SubnetPrefix.IsValid() {
		subnet = rg + "/providers/" + TypeVNet + "/" + lastSeg(f.ID) + "-vnet/subnets/AzureFirewallSubnet"
	}
	if subnet != "" && s.res[key(subnet)] == nil && f.SubnetPrefix.IsValid() {
		s.put(doc{"id": subnet, "name": lastSeg(subnet), "type": TypeSubnet,
			"properties": doc{"provisioningState": "Succeeded", "addressPrefix": f.SubnetPrefix.String()}})
		if vnet := vnetOf(subnet); s.res[key(vnet)] == nil {
			s.put(doc{"id": vnet, "name": lastSeg(vnet), "type": TypeVNet, "location": s.loc(""),
				"properties": doc{"provisioningState": "Succeeded", "addressSpace": doc{"addressPrefixes": []any{f.SubnetPrefix.String()}}}})
		}
	}
	var configs []any
	for i := 0; i < max(len(f.PublicIPs), 1); i++ {
		c := doc{"provisioningState": "Succeeded"}
		if i == 0 && subnet != "" {
			c["subnet"] = ref(subnet)
			if f.SubnetPrefix.IsValid() {
				// Azure gives the firewall the first usable address after
				// the four it reserves in every subnet.
				a := f.SubnetPrefix.Addr()
				for range 4 {
					a = a.Next()
				}
				c["privateIPAddress"] = a.String()
			}
		}
		if i < len(f.PublicIPs) {
			pip := fmt.Sprintf("%s/providers/%s/%s-pip%d", rg, TypePublicIP, lastSeg(f.ID), i)
			s.put(doc{"id": pip, "name": lastSeg(pip), "type": TypePublicIP, "location": s.loc(""),
				"properties": doc{"provisioningState": "Succeeded", "ipAddress": f.PublicIPs[i].String(), "publicIPAllocationMethod": "Static"}})
			c["publicIPAddress"] = ref(pip)
		} else if subnet == "" {
			continue
		}
		name := "ipconfig" + strconv.Itoa(i+1)
		configs = append(configs, doc{"id": f.ID + "/azureFirewallIpConfigurations/" + name, "name": name, "properties": c})
	}
	if configs != nil {
		p["ipConfigurations"] = configs
	}
	s.put(doc{"id": f.ID, "name": lastSeg(f.ID), "type": TypeFirewall, "location": s.loc(""), "properties": p})
}

func natCollectionsDoc(cs []inventory.NatRuleCollection) []any {
	out := []any{}
	for _, c := range cs {
		rules := []any{}
		for _, r := range c.Rules {
			rules = append(rules, toDoc(r))
		}
		action := c.Action
		if action == "" {
			action = "Dnat"
		}
		out = append(out, doc{"name": c.Name, "properties": doc{"priority": c.Priority, "action": doc{"type": action}, "rules": rules}})
	}
	return out
}

// putFirewall replaces an Azure Firewall's properties. A firewall is one
// resource (its rule collections are not child resources), so concurrent
// writers must use If-Match with the etag they read. It checks what ARM
// checks of classic NAT rules that drawbridge writes (a firewall policy
// and classic rules exclude each other; collection names unique;
// priorities 100-65000; ports numbers) and answers 400 naming the field.
func (s *Server) putFirewall(w http.ResponseWriter, r *http.Request, rt route) {
	fw := s.res[key(rt.id)]
	etag := ""
	if fw != nil {
		etag = fw["etag"].(string)
	}
	if !ifMatch(w, r, etag, rt.id) {
		return
	}
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	if fw == nil {
		writeErr(w, http.StatusNotFound, "ResourceNotFound", "The Resource '"+rt.id+"' was not found.", rt.id)
		return
	}
	p, _ := body["properties"].(doc)
	if p == nil {
		writeErr(w, http.StatusBadRequest, "InvalidRequestFormat", "properties is required.", "properties")
		return
	}
	// ARM answers every rule collection list, empty ones as [].
	for _, k := range []string{"natRuleCollections", "networkRuleCollections", "applicationRuleCollections", "ipConfigurations"} {
		if _, ok := p[k].([]any); !ok {
			p[k] = []any{}
		}
	}
	if target, msg := checkNAT(p); target != "" {
		writeErr(w, http.StatusBadRequest, "AzureFirewallRuleCollectionInvalid", msg, target)
		return
	}
	p["provisioningState"] = "Updating"
	fw["properties"] = p
	fw["etag"] = s.etag()
	s.startOp(w, r, rt, fw["location"].(string), false, func() { p["provisioningState"] = "Succeeded" })
	writeJSON(w, http.StatusOK, fw)
}

func checkNAT(p doc) (target, msg string) {
	cs, _ := p["natRuleCollections"].([]any)
	if _, policy := p["firewallPolicy"].(doc); policy && len(cs) > 0 {
		return "properties.natRuleCollections", "A firewall associated with a firewall policy cannot have classic rule collections."
	}
	names := map[string]bool{}
	for i, c := range cs {
		cd, _ := c.(doc)
		at := fmt.Sprintf("properties.natRuleCollections[%d]", i)
		name, _ := cd["name"].(string)
		if name == "" || names[strings.ToLower(name)] {
			return at + ".name", fmt.Sprintf("Rule collection name %q is empty or not unique.", name)
		}
		names[strings.ToLower(name)] = true
		cp, _ := cd["properties"].(doc)
		prio, _ := cp["priority"].(float64)
		if prio < 100 || prio > 65000 {
			return at + ".properties.priority", fmt.Sprintf("Priority %v is outside 100-65000.", cp["priority"])
		}
		rules, _ := cp["rules"].([]any)
		for j, rr := range rules {
			rd, _ := rr.(doc)
			ports, _ := rd["destinationPorts"].([]any)
			for k, pp := range ports {
				ps, _ := pp.(string)
				lo, hi, found := strings.Cut(ps, "-")
				if !validPort(lo) || (found && !validPort(hi)) {
					return fmt.Sprintf("%s.properties.rules[%d].destinationPorts[%d]", at, j, k), fmt.Sprintf("Port %q is invalid.", ps)
				}
			}
			if tp, _ := rd["translatedPort"].(string); tp != "" && !validPort(tp) {
				return fmt.Sprintf("%s.properties.rules[%d].translatedPort", at, j), fmt.Sprintf("Port %q is invalid.", tp)
			}
			if ta, _ := rd["translatedAddress"].(string); ta != "" {
				if _, err := netip.ParseAddr(ta); err != nil {
					return fmt.Sprintf("%s.properties.rules[%d].translatedAddress", at, j), fmt.Sprintf("Address %q is invalid.", ta)
				}
			}
		}
	}
	return "", ""
}

func validPort(s string) bool {
	n, err := strconv.Atoi(s)
	return err == nil && n >= 1 && n <= 65535
}

// EditFirewall changes a firewall's document as someone editing it outside
// drawbridge would (the portal, terraform), with a new etag. It reports
// whether the firewall exists.
func (s *Server) EditFirewall(id string, edit func(properties map[string]any)) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.res[key(id)]
	if d == nil || !strings.EqualFold(d["type"].(string), TypeFirewall) {
		return false
	}
	edit(props(d))
	d["etag"] = s.etag()
	return true
}

// BeforeFirewallWrite makes fn run once, when the next PUT of a firewall
// arrives and before its If-Match is checked: someone else's edit landing
// between a writer's GET and its PUT, which the writer's If-Match then
// finds stale (412).
func (s *Server) BeforeFirewallWrite(fn func(ctx context.Context, id string)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fwWriteHook = fn
}

// firewallWriteHook takes the pending hook for a PUT of rt, if any.
func (s *Server) firewallWriteHook(r *http.Request, rt route) func(context.Context, string) {
	if r.Method != http.MethodPut || rt.id == "" || rt.op != "" || !strings.EqualFold(rt.typ, TypeFirewall) {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	fn := s.fwWriteHook
	s.fwWriteHook = nil
	return fn
}

// NatCollectionDoc is a classic NAT rule collection in ARM's shape, for
// tests that edit a firewall as someone else would.
func NatCollectionDoc(c inventory.NatRuleCollection) map[string]any {
	return natCollectionsDoc([]inventory.NatRuleCollection{c})[0].(doc)
}
