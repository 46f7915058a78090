// Package conformance owns the conformance suite for security-group
// providers (the simulated provider's AWS half and the aws provider through
// the EC2 wire simulator): enable → grant → expiry → disable leaves every
// group and ENI exactly as before, with faults, drift and interrupted
// changes. A provider's test supplies a Factory that builds the world of a
// Spec; the suite only uses the World interface.
package conformance

import (
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/drawbridge/drawbridge/internal/inventory"
	"github.com/drawbridge/drawbridge/internal/jit"
)

// Rule is one ingress rule with one CIDR source (v4 or v6).
type Rule struct {
	Proto    string // "tcp", "udp", "icmp", "icmpv6", "-1" or a protocol number
	From, To int    // -1 where the protocol has no ports
	CIDR     string
	Desc     string
}

func (r Rule) String() string {
	return r.Proto + " " + strconv.Itoa(r.From) + "-" + strconv.Itoa(r.To) + " " + r.CIDR + " [" + r.Desc + "]"
}

// Group is a user security group of the starting world.
type Group struct {
	ID    string
	Rules []Rule
}

// ENI is a network interface with its groups.
type ENI struct {
	ID     string
	Groups []string
}

// VM is an instance and its ENIs (primary first).
type VM struct {
	Name string
	ENIs []string
}

// Spec is the starting world. Every group is in one VPC.
type Spec struct {
	Groups []Group
	ENIs   []ENI
	VMs    []VM
}

// State is every group's rules (sorted) and every ENI's groups.
type State struct {
	Groups map[string][]string
	ENIs   map[string][]string
	rules  map[string][]Rule
}

// NewState builds a State from rules by group and groups by ENI.
func NewState(groups map[string][]Rule, enis map[string][]string) State {
	s := State{Groups: map[string][]string{}, ENIs: map[string][]string{}, rules: map[string][]Rule{}}
	for id, rs := range groups {
		var ss []string
		for _, r := range rs {
			ss = append(ss, r.String())
		}
		slices.Sort(ss)
		s.Groups[id], s.rules[id] = ss, slices.Clone(rs)
	}
	for id, gs := range enis {
		s.ENIs[id] = slices.Clone(gs)
	}
	return s
}

// World is one provider's environment for a Spec.
type World interface {
	Provider() jit.Provider
	VM(name string) inventory.VM
	State(t *testing.T) State
	// AddRule edits a group behind drawbridge's back (drift).
	AddRule(t *testing.T, groupID string, r Rule)
	// Faults turns injected faults (throttling, 500s, delayed
	// consistency) on or off; a world without faults ignores it.
	Faults(on bool)
	// NoRoom reports whether err is the provider's "no free slot" error.
	NoRoom(err error) bool
}

// Factory builds a fresh world.
type Factory func(t *testing.T, spec Spec) World

// Allows reports whether the ENIs' groups let src in on (proto, port).
func (s State) Allows(enis []string, src string, proto string, port int) bool {
	a := netip.MustParseAddr(src)
	for _, e := range enis {
		for _, g := range s.ENIs[e] {
			for _, r := range s.rules[g] {
				pr, err := netip.ParsePrefix(r.CIDR)
				if err != nil || !pr.Contains(a) {
					continue
				}
				switch {
				case r.Proto == "-1":
					return true
				case !strings.EqualFold(r.Proto, proto):
					continue
				case proto != "tcp" && proto != "udp":
					return true
				case port >= r.From && port <= r.To:
					return true
				}
			}
		}
	}
	return false
}

// Diff describes how two states differ ("" if they are equal).
func Diff(a, b State) string {
	var out []string
	for id, rs := range a.Groups {
		if o, ok := b.Groups[id]; !ok {
			out = append(out, "group "+id+" gone")
		} else if !slices.Equal(rs, o) {
			out = append(out, "group "+id+" rules: "+strings.Join(rs, "; ")+"  →  "+strings.Join(o, "; "))
		}
	}
	for id := range b.Groups {
		if _, ok := a.Groups[id]; !ok {
			out = append(out, "group "+id+" new")
		}
	}
	for id, gs := range a.ENIs {
		if !slices.Equal(gs, b.ENIs[id]) {
			out = append(out, "eni "+id+": "+strings.Join(gs, ",")+" → "+strings.Join(b.ENIs[id], ","))
		}
	}
	slices.Sort(out)
	return strings.Join(out, "\n")
}
