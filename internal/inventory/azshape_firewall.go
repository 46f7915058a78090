package inventory

import (
	"fmt"
	"strings"
)

// azFirewall rewrites an Azure Firewall as `az network firewall show`
// prints it (or ARM returns it): whether a firewall policy controls it, its
// AzureFirewallSubnet (ID, and prefix from the document's subnets), its
// public addresses (expanded, or resolved from publicIPAddresses) and its
// classic NAT rule collections. Network and application rule collections
// are not modelled and are dropped.
func azFirewall(o obj, where string, pips map[string]any, subnets []any) (obj, error) {
	o = flatten(o)
	out := keep(o, "id")
	if refID(o["firewallPolicy"]) != "" {
		out["managedByFirewallManager"] = true
	}
	var public []any
	cs, _ := o["ipConfigurations"].([]any)
	for i, c := range cs {
		co, ok := c.(obj)
		if !ok {
			return nil, fmt.Errorf("%s.ipConfigurations[%d]: not an object", where, i)
		}
		co = flatten(co)
		if sub := refID(co["subnet"]); sub != "" && out["subnet"] == nil {
			out["subnet"] = sub
			if p := subnetPrefix(subnets, sub); p != nil {
				out["subnetPrefix"] = p
			}
		}
		if p, ok := co["publicIPAddress"].(obj); ok {
			p = flatten(p)
			if a, ok := p["ipAddress"].(string); ok && a != "" {
				public = append(public, a)
			} else if a, ok := pips[strings.ToLower(refID(p))]; ok {
				public = append(public, a)
			}
		}
	}
	if len(public) > 0 {
		out["publicIPAddresses"] = public
	}
	var nats []any
	ns, _ := o["natRuleCollections"].([]any)
	for i, c := range ns {
		co, ok := c.(obj)
		if !ok {
			return nil, fmt.Errorf("%s.natRuleCollections[%d]: not an object", where, i)
		}
		co = flatten(co)
		nc := keep(co, "name", "priority")
		if a, ok := co["action"].(obj); ok && a["type"] != nil {
			nc["action"] = a["type"]
		}
		var rules []any
		rs, _ := co["rules"].([]any)
		for j, r := range rs {
			ro, ok := r.(obj)
			if !ok {
				return nil, fmt.Errorf("%s.natRuleCollections[%d].rules[%d]: not an object", where, i, j)
			}
			rules = append(rules, keep(ro, "name", "description", "sourceAddresses", "sourceIpGroups", "destinationAddresses",
				"destinationPorts", "protocols", "translatedAddress", "translatedPort"))
		}
		if len(rules) > 0 {
			nc["rules"] = rules
		}
		nats = append(nats, nc)
	}
	if len(nats) > 0 {
		out["natRuleCollections"] = nats
	}
	return out, nil
}

// subnetPrefix finds a subnet's address prefix in the document's subnets
// (already in drawbridge's shape, or not yet).
func subnetPrefix(subnets []any, id string) any {
	for _, s := range subnets {
		so, ok := s.(obj)
		if !ok || !strings.EqualFold(refID(so), id) {
			continue
		}
		so = flatten(so)
		if p, ok := so["addressPrefix"]; ok {
			return p
		}
		if l, _ := so["addressPrefixes"].([]any); len(l) > 0 {
			return l[0]
		}
	}
	return nil
}
