package jit

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/drawbridge/drawbridge/internal/inventory"
)

// requestTargets is what a request names, as loaded from the store: the
// policy it is checked against and, per requested VM in input order, the
// VM, its part of the policy and its active grants.
type requestTargets struct {
	policy Policy
	vms    []vmTarget
}

type vmTarget struct {
	vm     inventory.VM
	policy VMPolicy
	active []Grant
}

// requestPlan is a request's outcome before anything is written: the
// request with its new grants and, per VM, the grants it supersedes and the
// desired state its provider must reach.
type requestPlan struct {
	req   Request
	vms   []vmPlan
	rules []ApprovalRule // what must approve it first, if anything
}

type vmPlan struct {
	vm         inventory.VM
	superseded []Grant // already ended (NewerRequestInitiated)
	desired    Desired
}

// planInput is what planRequest needs besides the loaded targets.
type planInput struct {
	in     InitiateInput
	actor  Actor
	reqID  string
	now    time.Time
	newID  func() string
	keepID map[string]string // grant IDs to keep, by grantKey; see planRequest
}

// grantKey names a requested port of a VM.
func grantKey(vmID string, port int) string {
	return fmt.Sprintf("%s#%d", inventory.Key(vmID), port)
}

// planRequest checks every requested port against the policy and plans the
// grants: one per port, starting at now, each ending the active grant of
// the same VM and port (NewerRequestInitiated). A grant takes its ID from
// keepID (an approved request keeps the IDs shown while it was pending),
// else from newID. It reads and writes nothing.
func planRequest(t requestTargets, pi planInput) (requestPlan, error) {
	p := requestPlan{req: Request{
		ID:            pi.reqID,
		PolicyID:      t.policy.ID,
		Requestor:     pi.actor.Principal,
		SourceAddress: pi.actor.Address,
		Justification: pi.in.Justification,
		StartTime:     pi.now,
	}}
	for i, v := range pi.in.VirtualMachines {
		target := t.vms[i]
		vp := vmPlan{vm: target.vm, desired: Desired{VMID: target.vm.ID, Guarded: guardedPorts(target.policy)}}
		seenPort := map[int]bool{}
		var grants []Grant
		for j, port := range v.Ports {
			field := fmt.Sprintf("virtualMachines[%d].ports[%d]", i, j)
			g, err := grantFor(field, target.policy, port, pi.actor, pi.now)
			if err != nil {
				return requestPlan{}, err
			}
			if seenPort[port.Number] {
				return requestPlan{}, invalid(field+".number", "port %d is requested twice", port.Number)
			}
			seenPort[port.Number] = true
			g.ID = pi.keepID[grantKey(target.vm.ID, port.Number)]
			if g.ID == "" {
				g.ID = pi.newID()
			}
			g.RequestID, g.PolicyID, g.VMID = pi.reqID, t.policy.ID, target.vm.ID
			grants = append(grants, g)
		}
		for _, old := range target.active {
			if supersededBy(target.policy, grants, old) {
				ended, err := old.End(ReasonNewerRequestInitiated, pi.now)
				if err != nil {
					return requestPlan{}, err
				}
				vp.superseded = append(vp.superseded, ended)
			} else if old.IsActive(pi.now) {
				vp.desired.Grants = append(vp.desired.Grants, desiredGrant(old))
			}
		}
		for _, g := range grants {
			vp.desired.Grants = append(vp.desired.Grants, desiredGrant(g))
		}
		p.req.Grants = append(p.req.Grants, grants...)
		p.vms = append(p.vms, vp)
	}
	return p, nil
}

// grantFor validates one requested port against the VM's policy.
func grantFor(field string, vp VMPolicy, port InitiatePort, actor Actor, now time.Time) (Grant, error) {
	pp, ok := vp.Port(port.Number)
	if !ok {
		return Grant{}, invalid(field+".number", "port %d is not in the JIT policy of %s", port.Number, vp.ID)
	}
	srcText := port.AllowedSourceAddressPrefix
	srcField := field + ".allowedSourceAddressPrefix"
	if srcText == "" {
		if actor.Address == "" {
			return Grant{}, invalid(srcField, "no source given and the caller's address is unknown")
		}
		srcText = actor.Address
	}
	src, err := ParseSource(srcText)
	if err != nil {
		return Grant{}, invalid(srcField, "%v", err)
	}
	if !slices.ContainsFunc(pp.AllowedSources(), func(a Source) bool { return a.Contains(src) }) {
		return Grant{}, forbidden(srcField, "source %s is not within the allowed source prefixes of port %d (%s)",
			src, port.Number, strings.Join(joinOne(pp.AllowedSourceAddressPrefix, pp.AllowedSourceAddressPrefixes), ", "))
	}
	end := port.EndTimeUtc
	switch {
	case !end.IsZero() && port.Duration != "":
		return Grant{}, invalid(field+".duration", "give endTimeUtc or duration, not both")
	case port.Duration != "":
		d, err := parseRequestDuration(port.Duration)
		if err != nil {
			return Grant{}, invalid(field+".duration", "%v", err)
		}
		end = now.Add(d)
	case end.IsZero():
		return Grant{}, invalid(field+".endTimeUtc", "endTimeUtc (or duration) is required")
	}
	end = end.UTC()
	if end.Sub(now) < MinRequestDuration {
		return Grant{}, invalid(field+".endTimeUtc", "end time %s is not at least %s in the future", end.Format(time.RFC3339Nano), MinRequestDuration)
	}
	if maxD := pp.MaxDuration(); end.Sub(now) > maxD {
		if port.Duration != "" {
			return Grant{}, invalid(field+".duration", "duration %s is more than the policy's maximum %s", quoteBounded(port.Duration), pp.MaxRequestAccessDuration)
		}
		return Grant{}, invalid(field+".endTimeUtc", "end time %s is more than the policy's maximum %s from now", end.Format(time.RFC3339), pp.MaxRequestAccessDuration)
	}
	return Grant{
		Port:         port.Number,
		Protocol:     string(pp.Protocol),
		Source:       src,
		StartTime:    now,
		EndTime:      end,
		Status:       StatusInitiated,
		StatusReason: ReasonUserRequested,
	}, nil
}
