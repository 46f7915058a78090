package inventory

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"sigs.k8s.io/yaml"
)

// Objects as the Azure CLI prints them (`az network nsg show`, `az network
// nic show`, `az network vnet show`, `az network vnet subnet show`, `az
// network public-ip list`, `az network firewall show`) or as ARM returns them (with "properties") are
// accepted in an inventory document beside drawbridge's own shape. Such an
// object is recognised by a field only Azure writes (etag, type,
// provisioningState, resourceGroup, properties, ipConfigurations); it is
// rewritten to drawbridge's shape, keeping the fields the model has and
// dropping the read-only rest. Objects in drawbridge's own shape are left
// alone, so a typo in them is still an error.

// azMarkers are fields that only Azure's output has.
var azMarkers = []string{"etag", "type", "provisioningState", "resourceGroup", "properties", "ipConfigurations", "resourceGuid"}

type obj = map[string]any

func isAz(o obj) bool {
	for _, k := range azMarkers {
		if _, ok := o[k]; ok {
			return true
		}
	}
	return false
}

// flatten merges ARM's "properties" into the object, as az prints it.
func flatten(o obj) obj {
	if p, ok := o["properties"].(obj); ok {
		out := obj{}
		for k, v := range o {
			if k != "properties" {
				out[k] = v
			}
		}
		for k, v := range p {
			out[k] = v
		}
		return out
	}
	return o
}

func refID(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case obj:
		s, _ := x["id"].(string)
		return s
	}
	return ""
}

// keep copies the named fields of o that are set: not null, and not an
// empty list (az prints [] for every plural field nobody set, which means
// the same as leaving it out).
func keep(o obj, names ...string) obj {
	out := obj{}
	for _, n := range names {
		v, ok := o[n]
		if l, isList := v.([]any); !ok || v == nil || (isList && len(l) == 0) {
			continue
		}
		out[n] = v
	}
	return out
}

var ruleFields = []string{"name", "description", "priority", "direction", "access", "protocol",
	"sourceAddressPrefix", "sourceAddressPrefixes", "sourcePortRange", "sourcePortRanges",
	"destinationAddressPrefix", "destinationAddressPrefixes", "destinationPortRange", "destinationPortRanges"}

func azNSG(o obj, where string) (obj, error) {
	o = flatten(o)
	out := keep(o, "id", "name", "location")
	rules := []any{}
	rs, _ := o["securityRules"].([]any)
	for i, r := range rs {
		ro, ok := r.(obj)
		if !ok {
			return nil, fmt.Errorf("%s.securityRules[%d]: not an object", where, i)
		}
		ro = flatten(ro)
		kept := keep(ro, ruleFields...)
		// Application security groups are kept as references (their
		// members are not modelled; the assessment treats such rules
		// conservatively).
		for _, f := range []string{"sourceApplicationSecurityGroups", "destinationApplicationSecurityGroups"} {
			l, _ := ro[f].([]any)
			var refs []any
			for j, g := range l {
				id := refID(g)
				if id == "" {
					return nil, fmt.Errorf("%s.securityRules[%d].%s[%d].id: an application security group reference needs its id", where, i, f, j)
				}
				refs = append(refs, obj{"id": id})
			}
			if len(refs) > 0 {
				kept[f] = refs
			}
		}
		rules = append(rules, kept)
	}
	out["securityRules"] = rules
	return out, nil
}

func azNIC(o obj, where string, pips map[string]any) (obj, error) {
	o = flatten(o)
	out := keep(o, "id")
	if id := refID(o["networkSecurityGroup"]); id != "" {
		out["networkSecurityGroup"] = id
	}
	var private, public []any
	cs, _ := o["ipConfigurations"].([]any)
	for i, c := range cs {
		co, ok := c.(obj)
		if !ok {
			return nil, fmt.Errorf("%s.ipConfigurations[%d]: not an object", where, i)
		}
		co = flatten(co)
		if sub := refID(co["subnet"]); sub != "" {
			if _, set := out["subnet"]; !set || co["primary"] == true {
				out["subnet"] = sub
			}
		}
		if a, ok := co["privateIPAddress"].(string); ok && a != "" {
			private = append(private, a)
		}
		if p, ok := co["publicIPAddress"].(obj); ok {
			p = flatten(p)
			if a, ok := p["ipAddress"].(string); ok && a != "" {
				public = append(public, a) // an expanded reference
			} else if a, ok := pips[strings.ToLower(refID(p))]; ok {
				public = append(public, a)
			}
		}
	}
	if len(private) > 0 {
		out["privateIPAddresses"] = private
	}
	if len(public) > 0 {
		out["publicIPAddresses"] = public
	}
	return out, nil
}

func azSubnet(o obj) obj {
	o = flatten(o)
	out := keep(o, "id", "addressPrefix")
	if _, ok := out["addressPrefix"]; !ok {
		if l, _ := o["addressPrefixes"].([]any); len(l) > 0 {
			out["addressPrefix"] = l[0]
		}
	}
	if id := refID(o["networkSecurityGroup"]); id != "" {
		out["networkSecurityGroup"] = id
	}
	return out
}

// normalizeAz rewrites the Azure-shaped objects of an inventory document.
// It returns data unchanged when there are none.
func normalizeAz(data []byte) ([]byte, error) {
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		return data, nil // the strict parse reports it
	}
	var doc obj
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil || doc == nil {
		return data, nil
	}
	pips, changed := takePublicIPs(doc)
	each := func(key string, fn func(o obj, where string) (obj, error)) error {
		l, _ := doc[key].([]any)
		for i, v := range l {
			o, ok := v.(obj)
			if !ok || !isAz(o) {
				continue
			}
			n, err := fn(o, fmt.Sprintf("%s[%d]", key, i))
			if err != nil {
				return err
			}
			l[i], changed = n, true
		}
		return nil
	}
	if err := each("virtualNetworks", func(o obj, _ string) (obj, error) { return azVNet(doc, o), nil }); err != nil {
		return nil, err
	}
	if err := each("subnets", func(o obj, _ string) (obj, error) { return azSubnet(o), nil }); err != nil {
		return nil, err
	}
	if err := each("networkSecurityGroups", azNSG); err != nil {
		return nil, err
	}
	if err := each("nics", func(o obj, where string) (obj, error) { return azNIC(o, where, pips) }); err != nil {
		return nil, err
	}
	if err := each("firewalls", func(o obj, where string) (obj, error) {
		subs, _ := doc["subnets"].([]any)
		return azFirewall(o, where, pips, subs)
	}); err != nil {
		return nil, err
	}
	if !changed {
		return data, nil
	}
	return json.Marshal(doc)
}

// takePublicIPs removes the document's publicIPAddresses list (`az network
// public-ip list`), returning each address by lower-cased ID so the NICs'
// references resolve, and whether there was a list.
func takePublicIPs(doc obj) (map[string]any, bool) {
	pips := map[string]any{}
	l, ok := doc["publicIPAddresses"].([]any)
	if !ok {
		return pips, false
	}
	for _, p := range l {
		if po, ok := p.(obj); ok {
			po = flatten(po)
			if a, ok := po["ipAddress"].(string); ok {
				pips[strings.ToLower(refID(po))] = a
			}
		}
	}
	delete(doc, "publicIPAddresses")
	return pips, true
}

// azVNet reshapes an az virtual network. `az network vnet show` embeds the
// subnets: those not yet in doc's subnets list join it.
func azVNet(doc, o obj) obj {
	o = flatten(o)
	out := keep(o, "id")
	if as, ok := o["addressSpace"].(obj); ok {
		out["addressSpace"] = as["addressPrefixes"]
	}
	subs, _ := o["subnets"].([]any)
	for _, s := range subs {
		so, ok := s.(obj)
		if !ok {
			continue
		}
		list, _ := doc["subnets"].([]any)
		id := strings.ToLower(refID(so))
		listed := false
		for _, x := range list {
			if xo, ok := x.(obj); ok && strings.ToLower(refID(xo)) == id {
				listed = true
			}
		}
		if !listed {
			doc["subnets"] = append(list, azSubnet(so))
		}
	}
	return out
}
