package sim

import (
	"fmt"
	"strconv"

	"github.com/drawbridge/drawbridge/internal/netrule"
)

// place returns the priority for the JIT rule named name, which must lie in
// (lo, hi): its current priority if it has one there that no other inbound
// rule uses, else pick(free), where free lists the unused inbound priorities
// in (lo, preferHi) or, when that is empty, in (lo, hi).
//
// preferHi is where a deny rule would stop being "right after the covering
// rules" (the next user rule). Past it the rule sits among user rules that
// do not cover its port, which changes nothing about what traffic it
// matches first; so when there is no room before the next user rule, the
// rule goes further down rather than failing.
func place(nsg *netrule.NSG, name string, lo, hi int, pick func([]int) (int, error), preferHi int) (int, error) {
	used := map[int]int{}
	cur := 0
	for _, r := range nsg.SecurityRules {
		if r.Direction != netrule.Inbound {
			continue
		}
		used[r.Priority]++
		if r.Name == name {
			cur = r.Priority
		}
	}
	if cur > lo && cur < hi && used[cur] == 1 {
		return cur, nil
	}
	if cur != 0 {
		used[cur]-- // the rule moves: its old slot is free
	}
	free := func(top int) []int {
		var out []int
		for p := max(lo+1, netrule.MinPriority); p < min(top, hi) && p <= netrule.MaxPriority; p++ {
			if used[p] == 0 {
				out = append(out, p)
			}
		}
		return out
	}
	f := free(preferHi)
	if len(f) == 0 {
		f = free(hi)
	}
	return pick(f)
}

// after says where a rule must go, for errors: after rule loName, or
// anywhere in the priority range when no user rule covers the port.
func after(lo int, loName string) string {
	if loName == "" {
		return "in " + strconv.Itoa(netrule.MinPriority) + "-" + strconv.Itoa(netrule.MaxPriority)
	}
	return fmt.Sprintf("after rule %s (priority %d)", loName, lo)
}

// coveringMax returns the highest priority number (and name) among the
// user's inbound rules that can match traffic to port/proto, or
// MinPriority-1 and "" if none does.
func coveringMax(nsg *netrule.NSG, port int, proto netrule.Protocol) (int, string, error) {
	lo, name := netrule.MinPriority-1, ""
	for i, r := range nsg.SecurityRules {
		if r.Direction != netrule.Inbound || isJITRule(r) {
			continue
		}
		ok, err := covers(r, port, proto)
		if err != nil {
			return 0, "", fmt.Errorf("NSG %s: securityRules[%d] (%s): %w", nsg.Name, i, r.Name, err)
		}
		if ok && r.Priority > lo {
			lo, name = r.Priority, r.Name
		}
	}
	return lo, name, nil
}

// covers reports whether the rule's protocol and destination ports overlap
// the port. Addresses are not compared: a user rule on the port, for any
// source or destination, keeps priority over JIT's deny, as in Defender.
func covers(r netrule.SecurityRule, port int, proto netrule.Protocol) (bool, error) {
	if !r.Protocol.Overlaps(proto) {
		return false, nil
	}
	ports := r.DestinationPorts()
	if len(ports) == 0 {
		return false, fmt.Errorf("destinationPortRange is empty")
	}
	ranges, err := netrule.ParsePortRanges(ports)
	if err != nil {
		return false, fmt.Errorf("destinationPortRange: %w", err)
	}
	for _, pr := range ranges {
		if pr.Contains(port) {
			return true, nil
		}
	}
	return false, nil
}

// nextUserRule is the priority of the first user inbound rule after lo, or
// MaxPriority+1.
func nextUserRule(nsg *netrule.NSG, lo int) int {
	next := netrule.MaxPriority + 1
	for _, r := range nsg.SecurityRules {
		if r.Direction == netrule.Inbound && !isJITRule(r) && r.Priority > lo && r.Priority < next {
			next = r.Priority
		}
	}
	return next
}

// upsert replaces the rule of the same name or appends it.
func upsert(nsg *netrule.NSG, r netrule.SecurityRule) {
	for i := range nsg.SecurityRules {
		if nsg.SecurityRules[i].Name == r.Name {
			nsg.SecurityRules[i] = r
			return
		}
	}
	nsg.SecurityRules = append(nsg.SecurityRules, r)
}
