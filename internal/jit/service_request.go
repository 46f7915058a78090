package jit

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/drawbridge/drawbridge/internal/audit"
	"github.com/drawbridge/drawbridge/internal/audit/auditstore"
	"github.com/drawbridge/drawbridge/internal/inventory"
	"github.com/drawbridge/drawbridge/internal/store"
)

// Initiate checks a request against the policy and opens one grant per
// requested port. A newer request for the same VM and port ends the older
// grant with NewerRequestInitiated. The caller has already passed RBAC.
//
// If a requested port's policy requires approval, nothing opens: the
// request is stored as pending (its grants have status Pending) until
// Approve, Deny or the approval timeout decides it.
func (s *Service) Initiate(ctx context.Context, actor Actor, policyID string, in InitiateInput) (Request, error) {
	if policyID == "" {
		return Request{}, notFound("", "JIT network access policy name is empty")
	}
	return s.initiate(ctx, actor, policyID, in, nil)
}

// InitiateForVM is Initiate under the JIT policy that covers the first
// virtual machine of in (drawbridge's own request call names a VM, not a
// policy). The policy is looked up in the transaction that stores the
// request, so the request is checked against the policy it is stored
// under; a VM without one is 404 on field "vm".
func (s *Service) InitiateForVM(ctx context.Context, actor Actor, in InitiateInput) (Request, error) {
	return s.initiate(ctx, actor, "", in, nil)
}

func (s *Service) initiate(ctx context.Context, actor Actor, policyID string, in InitiateInput, step *approvalStep) (Request, error) {
	now := s.clock.Now().UTC()
	if len(in.VirtualMachines) == 0 {
		return Request{}, invalid("virtualMachines", "at least one virtual machine is required")
	}
	if len(in.Justification) > 1024 {
		return Request{}, invalid("justification", "justification is longer than 1024 characters")
	}
	req := Request{
		ID:            s.newID(),
		PolicyID:      policyID,
		Requestor:     actor.Principal,
		SourceAddress: actor.Address,
		Justification: in.Justification,
		StartTime:     now,
	}
	if step != nil {
		req.ID = step.id
	}

	var vmKeys []string
	for _, v := range in.VirtualMachines {
		vmKeys = append(vmKeys, inventory.Key(v.ID))
	}
	unlock := s.lockVMs(vmKeys)
	defer unlock()

	// prepare validates the request and builds its grants inside the
	// writing transaction, so the stored request is checked against the
	// state it is stored with.
	type vmPlan struct {
		vm         inventory.VM
		superseded []Grant
		desired    Desired
	}
	var policy Policy
	prepare := func(tx Tx) ([]Grant, []vmPlan, error) {
		// Replicas racing on the same VM and port: the later one waits
		// here and then sees (and supersedes) the earlier one's grant.
		var ids []string
		for _, v := range in.VirtualMachines {
			ids = append(ids, v.ID)
		}
		if err := tx.LockVMs(ctx, ids); err != nil {
			return nil, nil, err
		}
		// Time is read after the lock, so a request that waited for a
		// racing one starts after it and supersedes it in time order too.
		now = s.clock.Now().UTC()
		req.StartTime = now
		var err error
		if policyID == "" { // InitiateForVM
			vmID := in.VirtualMachines[0].ID
			policy, err = tx.PolicyForVM(ctx, vmID)
			if errors.Is(err, store.ErrNotFound) {
				return nil, nil, notFound("vm", "virtual machine %s has no JIT policy", vmID)
			}
		} else {
			policy, err = tx.GetPolicy(ctx, policyID)
			if errors.Is(err, store.ErrNotFound) {
				return nil, nil, notFound("", "JIT network access policy %s not found", policyID)
			}
		}
		if err != nil {
			return nil, nil, err
		}
		req.PolicyID = policy.ID
		var grants []Grant
		var plans []vmPlan
		seenVM := map[string]bool{}
		for i, v := range in.VirtualMachines {
			vf := fmt.Sprintf("virtualMachines[%d]", i)
			if seenVM[inventory.Key(v.ID)] {
				return nil, nil, invalid(vf+".id", "virtual machine %s is listed twice", v.ID)
			}
			seenVM[inventory.Key(v.ID)] = true
			vp, ok := policy.VM(v.ID)
			if !ok {
				return nil, nil, invalid(vf+".id", "virtual machine %s is not in JIT policy %s", v.ID, policy.Name)
			}
			vm, err := tx.GetVM(ctx, v.ID)
			if errors.Is(err, store.ErrNotFound) {
				return nil, nil, notFound(vf+".id", "virtual machine %s is not in the inventory", v.ID)
			} else if err != nil {
				return nil, nil, err
			}
			if len(v.Ports) == 0 {
				return nil, nil, invalid(vf+".ports", "at least one port is required")
			}
			active, err := tx.ListGrants(ctx, GrantFilter{VMID: vm.ID, ActiveOnly: true})
			if err != nil {
				return nil, nil, err
			}
			plan := vmPlan{vm: vm, desired: Desired{VMID: vm.ID, Guarded: guardedPorts(vp)}}
			seenPort := map[int]bool{}
			var newGrants []Grant
			for j, port := range v.Ports {
				pf := fmt.Sprintf("%s.ports[%d]", vf, j)
				g, err := s.grantFor(pf, vp, port, actor, now)
				if err != nil {
					return nil, nil, err
				}
				if seenPort[port.Number] {
					return nil, nil, invalid(pf+".number", "port %d is requested twice", port.Number)
				}
				seenPort[port.Number] = true
				g.ID = s.newID()
				g.RequestID = req.ID
				g.PolicyID = policy.ID
				g.VMID = vm.ID
				newGrants = append(newGrants, g)
			}
			for _, old := range active {
				if seenPort[old.Port] {
					ended, err := old.End(ReasonNewerRequestInitiated, now)
					if err != nil {
						return nil, nil, err
					}
					plan.superseded = append(plan.superseded, ended)
					continue
				}
				if old.IsActive(now) {
					plan.desired.Grants = append(plan.desired.Grants, desiredGrant(old))
				}
			}
			for _, g := range newGrants {
				plan.desired.Grants = append(plan.desired.Grants, desiredGrant(g))
			}
			grants = append(grants, newGrants...)
			plans = append(plans, plan)
		}
		return grants, plans, nil
	}

	var later []string
	pending := false
	err := s.store.InTx(ctx, func(tx Tx) error {
		pending = false
		grants, plans, err := prepare(tx)
		if err != nil {
			return err
		}
		if step == nil {
			if rules := approvalRules(policy, in); len(rules) > 0 {
				pending = true
				req.Grants = grants
				return s.holdForApproval(ctx, tx, actor, &req, rules, in.Justification, now)
			}
		}
		// Providers outside the store are asked first (Check); those
		// inside it apply here, in this transaction, from the desired
		// state prepare computed, so a failure leaves nothing behind.
		later = nil
		for i, plan := range plans {
			field := fmt.Sprintf("virtualMachines[%d].id", i)
			prov, err := s.providerFor(plan.vm)
			if err != nil {
				return conflict(field, "%v", err)
			}
			txp, ok := prov.(TxProvider)
			if !ok {
				if err := prov.Check(ctx, plan.vm, plan.desired); err != nil {
					return conflict(field, "cannot open access on %s: %v", plan.vm.ID, err)
				}
				later = append(later, plan.vm.ID)
				continue
			}
			obs, err := txp.ApplyTx(ctx, tx, plan.vm, plan.desired)
			if err != nil {
				return conflict(field, "cannot open access on %s: %v", plan.vm.ID, err)
			}
			enforced := map[string]bool{}
			for _, id := range obs.Enforced {
				enforced[id] = true
			}
			for j := range grants {
				if enforced[grants[j].ID] {
					grants[j].Applied, grants[j].AppliedAt = true, now
				}
			}
		}
		// The superseded grants' records and the request's are appended
		// together at the end, in this order.
		var recs []audit.Record
		for _, plan := range plans {
			for _, g := range plan.superseded {
				if err := tx.UpdateGrant(ctx, g); err != nil {
					return err
				}
				before := g
				before.Status, before.StatusReason, before.EndedAt = StatusInitiated, ReasonUserRequested, time.Time{}
				rec, err := s.grantEndRecord(tx, actor, before, g, now)
				if err != nil {
					return err
				}
				recs = append(recs, rec)
			}
		}
		req.Grants = grants
		if step != nil {
			// finish audits the approval: keep the log order
			// (superseded grants first) by appending theirs now.
			if _, err := auditstore.AppendAll(ctx, tx, recs); err != nil {
				return err
			}
			recs = nil
			if err := step.finish(tx, now); err != nil {
				return err
			}
		}
		if err := tx.InsertRequest(ctx, req); err != nil {
			return err
		}
		if step == nil {
			s.events.addGrants(tx, EventRequested, actor, actor.Principal, req.Grants, "", req.Justification, now)
		} else {
			s.events.addGrants(tx, EventApproved, step.approver, actor.Principal, req.Grants, "", "", now)
		}
		s.events.addGrants(tx, EventOpened, actor, actor.Principal, req.Grants, ReasonUserRequested, "", now)
		return s.auditRequestAfter(ctx, tx, recs, actor, AuditInitiate, req, now)
	})
	if err != nil {
		return Request{}, err
	}
	unlock()
	if pending {
		s.nudgeExpiry(time.Time{})
		return req, nil
	}
	s.nudgeExpiry(earliestEnd(req.Grants))
	if len(later) == 0 {
		return req, nil
	}
	for _, vmID := range later {
		// A provider failure is recorded on the grants and retried by the
		// reconcile job; the request itself stands.
		_ = s.ReconcileVM(ctx, vmID)
	}
	err = s.store.InTx(ctx, func(tx Tx) error {
		for i, g := range req.Grants {
			cur, err := tx.GetGrant(ctx, g.ID)
			if err != nil {
				return err
			}
			req.Grants[i] = cur
		}
		return nil
	})
	return req, err
}

// grantFor validates one requested port against the VM's policy.
func (s *Service) grantFor(field string, vp VMPolicy, port InitiatePort, actor Actor, now time.Time) (Grant, error) {
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
	allowed := false
	for _, a := range pp.AllowedSources() {
		if a.Contains(src) {
			allowed = true
			break
		}
	}
	if !allowed {
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
	if !end.After(now) {
		return Grant{}, invalid(field+".endTimeUtc", "end time %s is not in the future", end.Format(time.RFC3339))
	}
	if maxD := pp.MaxDuration(); end.Sub(now) > maxD {
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

// parseRequestDuration accepts ISO 8601 (PT1H) and Go syntax (90s, 1h30m).
func parseRequestDuration(s string) (time.Duration, error) {
	if strings.HasPrefix(strings.ToUpper(s), "P") {
		return ParseISODuration(s)
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration (PT1H, 90s, 1h30m)", s)
	}
	if d <= 0 {
		return 0, fmt.Errorf("duration %s is not positive", s)
	}
	return d, nil
}

// GetRequest returns a request with its grants.
func (s *Service) GetRequest(ctx context.Context, requestID, policyID string) (Request, error) {
	var out Request
	err := s.store.ReadTx(ctx, func(tx Tx) error {
		rs, err := tx.ListRequests(ctx, policyID, 0)
		if err != nil {
			return err
		}
		for _, r := range rs {
			if r.ID == requestID {
				out = r
				return nil
			}
		}
		return notFound("", "request %s not found", requestID)
	})
	return out, err
}

// ListRequests returns a policy's requests, newest first (limit 0 = all).
func (s *Service) ListRequests(ctx context.Context, policyID string, limit int) ([]Request, error) {
	return readTx(ctx, s.store, func(tx Tx) ([]Request, error) { return tx.ListRequests(ctx, policyID, limit) })
}

// ListGrants returns grants matching f, newest first.
func (s *Service) ListGrants(ctx context.Context, f GrantFilter) ([]Grant, error) {
	return readTx(ctx, s.store, func(tx Tx) ([]Grant, error) { return tx.ListGrants(ctx, f) })
}

// GetGrant returns one grant.
func (s *Service) GetGrant(ctx context.Context, id string) (Grant, error) {
	g, err := readTx(ctx, s.store, func(tx Tx) (Grant, error) { return tx.GetGrant(ctx, id) })
	if errors.Is(err, store.ErrNotFound) {
		return g, notFound("grantId", "grant %s not found", id)
	}
	return g, err
}
