package netrule

import (
	"fmt"
	"net/netip"
)

// Env is what the address-dependent service tags mean on a VM's inbound
// path: VirtualNetwork is the virtual network's address space (Azure also
// adds peered and on-premises ranges; the caller passes whatever it knows),
// and the internet is every public address outside it (see InternetSet).
type Env struct {
	vnet     AddressSet
	internet AddressSet
	alb      AddressSet
	defaults []compiledRule // Azure's default inbound rules, compiled once
}

// NewEnv builds the tag meanings for a virtual network with the given
// address space. It does the set arithmetic once, so callers that evaluate
// many VMs of one network should build it once and reuse it.
func NewEnv(virtualNetwork ...netip.Prefix) Env {
	v := PrefixesSet(virtualNetwork...)
	return Env{vnet: v, internet: InternetSet(v), alb: AddrSet(AzureLoadBalancerAddress()), defaults: compileDefaults()}
}

// VirtualNetwork returns the set the VirtualNetwork tag stands for.
func (e Env) VirtualNetwork() AddressSet { return e.vnet }

// Internet returns the set the Internet tag stands for.
func (e Env) Internet() AddressSet { return e.internet }

// Source is where a new inbound connection may come from: a set of
// addresses. A query asks whether ANY address of the set gets through, which
// is what "reachable from the internet" means.
type Source struct {
	Set   AddressSet
	Label string // for messages: "Internet", or the address
}

// InternetSource is "any public address" in this environment.
func (e Env) InternetSource() Source { return Source{Set: e.internet, Label: TagInternet} }

// AddressSource is one specific source address.
func AddressSource(a netip.Addr) Source { return Source{Set: AddrSet(a), Label: a.Unmap().String()} }

// Query asks whether a new inbound connection is allowed to Destination
// (the VM's private address; Azure evaluates NSGs after translating public
// addresses) on Port over Protocol from Source. Protocol "*" asks about TCP
// and UDP and answers for the first that is allowed. Source ports are not
// part of the query: a connection may use any source port, so a rule limited
// to some source ports allows some connections but denies only some.
type Query struct {
	Destination netip.Addr
	Port        int
	Protocol    Protocol
	Source      Source
}

// RuleRef names the rule that decided a verdict, in words an operator can
// find in the portal or the API.
type RuleRef struct {
	// Group is the NSG's or the security group's ID.
	Group string `json:"group"`
	// Rule is the NSG rule name, or "IpPermissions[i]" for a security group.
	Rule     string `json:"rule"`
	Priority int    `json:"priority,omitempty"`
	Access   Access `json:"access"`
	// Default marks one of Azure's default rules (65000+).
	Default bool `json:"default,omitempty"`
	// Source is the source prefix or tag of the rule that matched, as written.
	Source   string `json:"source,omitempty"`
	Protocol string `json:"protocol,omitempty"`
	Ports    string `json:"ports,omitempty"`
}

func (r RuleRef) String() string {
	if r.Priority != 0 {
		return fmt.Sprintf("%s rule %s (priority %d, %s from %s)", r.Group, r.Rule, r.Priority, r.Access, r.Source)
	}
	return fmt.Sprintf("%s %s (%s %s from %s)", r.Group, r.Rule, r.Protocol, r.Ports, r.Source)
}

// Verdict answers a Query.
type Verdict struct {
	Allowed bool `json:"allowed"`
	// Protocol is the protocol the answer is for (TCP or UDP when the query
	// asked for "*").
	Protocol Protocol `json:"protocol"`
	// Example is a source address for which the verdict holds.
	Example netip.Addr `json:"example,omitzero"`
	// Rules are the deciding rules for Example along the path. Allowed on
	// Azure: the allowing rule of each NSG, subnet first (a level without an
	// NSG allows and has no entry). Denied on Azure: the allowing rules up to
	// the NSG that denied, then its denying rule. On AWS: the permission that
	// allows, or nothing (no permission allows: the implicit deny).
	Rules []RuleRef `json:"rules,omitempty"`
}

// Deciding returns the last deciding rule (the one that exposes or blocks),
// or the zero RuleRef.
func (v Verdict) Deciding() RuleRef {
	if len(v.Rules) == 0 {
		return RuleRef{}
	}
	return v.Rules[len(v.Rules)-1]
}
