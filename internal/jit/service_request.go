package jit

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/drawbridge/drawbridge/internal/inventory"
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
	return s.initiate(ctx, actor, policyID, in)
}

// InitiateForVM is Initiate under the JIT policy that covers the first
// virtual machine of in (drawbridge's own request call names a VM, not a
// policy). The policy is looked up in the transaction that stores the
// request, so the request is checked against the policy it is stored
// under; a VM without one is 404 on field "vm".
func (s *Service) InitiateForVM(ctx context.Context, actor Actor, in InitiateInput) (Request, error) {
	return s.initiate(ctx, actor, "", in)
}

// initiate is the request path: validate the input, then in one writing
// transaction under the VMs' locks load what it names, plan the grants,
// apply them (or hold the request for approval) and record the result.
// After commit, write reconciles the VMs whose provider lives outside the
// store; a failure there is recorded on the grants and retried by the
// reconcile job, and the request stands.
func (s *Service) initiate(ctx context.Context, actor Actor, policyID string, in InitiateInput) (Request, error) {
	if err := validateInitiate(in); err != nil {
		return Request{}, err
	}
	pi := planInput{in: in, actor: actor, reqID: s.newID(), newID: s.newID}
	req, after, err := write(ctx, s, inputVMKeys(in), func(c *change) (Request, error) {
		return s.openRequest(c, policyID, pi)
	})
	if err != nil || len(after.reconciled) == 0 {
		return req, err
	}
	return s.withCurrentGrants(ctx, req)
}

// openRequest is initiate's transaction: load → plan → apply → record.
func (s *Service) openRequest(c *change, policyID string, pi planInput) (Request, error) {
	pi.now = c.now
	plan, err := s.loadAndPlan(c, policyID, pi)
	if err != nil {
		return Request{}, err
	}
	if len(plan.rules) > 0 {
		return s.holdForApproval(c, pi.actor, plan.req, plan.rules)
	}
	if err := s.applyPlan(c, &plan); err != nil {
		return Request{}, err
	}
	if err := recordSuperseded(c, pi.actor, plan); err != nil {
		return Request{}, err
	}
	if err := c.tx.InsertRequest(c.ctx, plan.req); err != nil {
		return Request{}, err
	}
	return plan.req, recordOpened(c, pi.actor, plan.req, nil)
}

// loadAndPlan reads what pi names under the policy (policyID, or the one
// guarding its first VM) as it is in c, and plans its grants.
func (s *Service) loadAndPlan(c *change, policyID string, pi planInput) (requestPlan, error) {
	t, err := loadRequest(c, policyID, pi.in)
	if err != nil {
		return requestPlan{}, err
	}
	plan, err := planRequest(t, pi)
	plan.rules = approvalRules(t.policy, pi.in)
	return plan, err
}

// validateInitiate checks what a request says without the store.
func validateInitiate(in InitiateInput) error {
	if len(in.VirtualMachines) == 0 {
		return invalid("virtualMachines", "at least one virtual machine is required")
	}
	if len(in.Justification) > 1024 {
		return invalid("justification", "justification is longer than 1024 characters")
	}
	return nil
}

func inputVMKeys(in InitiateInput) []string {
	var out []string
	for _, v := range in.VirtualMachines {
		out = append(out, inventory.Key(v.ID))
	}
	return out
}

// loadRequest reads the policy a request is checked against (policyID, or
// the one guarding its first VM) and each VM it names with its active
// grants, so the stored request is checked against the state it is stored
// with.
func loadRequest(c *change, policyID string, in InitiateInput) (requestTargets, error) {
	var t requestTargets
	var err error
	if policyID == "" { // InitiateForVM
		vmID := in.VirtualMachines[0].ID
		t.policy, err = c.tx.PolicyForVM(c.ctx, vmID)
		err = orNotFound(err, "vm", "virtual machine %s has no JIT policy", vmID)
	} else {
		t.policy, err = c.tx.GetPolicy(c.ctx, policyID)
		err = orNotFound(err, "", "JIT network access policy %s not found", policyID)
	}
	if err != nil {
		return t, err
	}
	seen := map[string]bool{}
	for i, v := range in.VirtualMachines {
		field := fmt.Sprintf("virtualMachines[%d]", i)
		if seen[inventory.Key(v.ID)] {
			return t, invalid(field+".id", "virtual machine %s is listed twice", v.ID)
		}
		seen[inventory.Key(v.ID)] = true
		vp, ok := t.policy.VM(v.ID)
		if !ok {
			return t, invalid(field+".id", "virtual machine %s is not in JIT policy %s", v.ID, t.policy.Name)
		}
		vm, err := inventory.GetVM(c.ctx, c.tx, v.ID)
		if err != nil {
			return t, orNotFound(err, field+".id", "virtual machine %s is not in the inventory", v.ID)
		}
		if len(v.Ports) == 0 {
			return t, invalid(field+".ports", "at least one port is required")
		}
		active, err := c.tx.ListGrants(c.ctx, GrantFilter{VMID: vm.ID, ActiveOnly: true})
		if err != nil {
			return t, err
		}
		t.vms = append(t.vms, vmTarget{vm: vm, policy: vp, active: active})
	}
	return t, nil
}

// applyPlan hands each VM's desired state to its provider. Providers in the
// store apply here, in the transaction, and the grants they enforce are
// marked applied; the others are asked whether they would accept it
// (Check) and reconciled after commit. A refusal fails the request, so
// nothing is left behind.
func (s *Service) applyPlan(c *change, plan *requestPlan) error {
	for i, vp := range plan.vms {
		field := fmt.Sprintf("virtualMachines[%d].id", i)
		prov, err := s.providerFor(vp.vm)
		if err != nil {
			return conflict(field, "%v", err)
		}
		txp, ok := prov.(TxProvider)
		if !ok {
			if err := prov.Check(c.ctx, vp.vm, vp.desired); err != nil {
				return conflict(field, "cannot open access on %s: %v", vp.vm.ID, err)
			}
			c.later = append(c.later, vp.vm.ID)
			continue
		}
		obs, err := txp.ApplyTx(c.ctx, c.tx, vp.vm, vp.desired)
		if err != nil {
			return conflict(field, "cannot open access on %s: %v", vp.vm.ID, err)
		}
		for j, g := range plan.req.Grants {
			if slices.Contains(obs.Enforced, g.ID) {
				plan.req.Grants[j].Applied, plan.req.Grants[j].AppliedAt = true, c.now
				plan.req.Grants[j].ConnectTo = obs.ConnectTo[g.ID]
			}
		}
	}
	return nil
}

// recordSuperseded stores the grants plan ends and queues their records.
func recordSuperseded(c *change, actor Actor, plan requestPlan) error {
	for _, vp := range plan.vms {
		for _, g := range vp.superseded {
			if err := c.tx.UpdateGrant(c.ctx, g); err != nil {
				return err
			}
			before := g
			before.Status, before.StatusReason, before.EndedAt = StatusInitiated, ReasonUserRequested, time.Time{}
			if err := recordGrantEnd(c, actor, before, g); err != nil {
				return err
			}
		}
	}
	return nil
}

// recordOpened queues the events and records of an opened request, stored
// already; approver is who gave the last approval, if it needed any.
func recordOpened(c *change, actor Actor, req Request, approver *Actor) error {
	if approver == nil {
		c.grantEvents(EventRequested, actor, actor.Principal, req.Grants, "", req.Justification)
	} else {
		c.grantEvents(EventApproved, *approver, actor.Principal, req.Grants, "", "")
	}
	c.grantEvents(EventOpened, actor, actor.Principal, req.Grants, ReasonUserRequested, "")
	c.wakeExpiry(earliestEnd(req.Grants))
	return recordRequest(c, actor, AuditInitiate, req)
}

// withCurrentGrants returns req with its grants as stored now (after the
// reconciles that followed its commit).
func (s *Service) withCurrentGrants(ctx context.Context, req Request) (Request, error) {
	grants, err := readTx(ctx, s.store, func(tx Tx) ([]Grant, error) {
		out := make([]Grant, len(req.Grants))
		for i, g := range req.Grants {
			cur, err := tx.GetGrant(ctx, g.ID)
			if err != nil {
				return nil, err
			}
			out[i] = cur
		}
		return out, nil
	})
	if err != nil {
		return req, err
	}
	req.Grants = grants
	return req, nil
}

// GetRequest returns one of a policy's requests with its grants (the web
// console's request status page).
func (s *Service) GetRequest(ctx context.Context, requestID, policyID string) (Request, error) {
	return readTx(ctx, s.store, func(tx Tx) (Request, error) {
		rs, err := tx.ListRequests(ctx, policyID, 0)
		if err != nil {
			return Request{}, err
		}
		if i := slices.IndexFunc(rs, func(r Request) bool { return r.ID == requestID }); i >= 0 {
			return rs[i], nil
		}
		return Request{}, notFound("", "request %s not found", requestID)
	})
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
	return g, orNotFound(err, "grantId", "grant %s not found", id)
}
