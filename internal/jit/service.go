package jit

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/drawbridge/drawbridge/internal/audit"
	"github.com/drawbridge/drawbridge/internal/audit/auditstore"
	"github.com/drawbridge/drawbridge/internal/clock"
	"github.com/drawbridge/drawbridge/internal/inventory"
	"github.com/drawbridge/drawbridge/internal/netrule"
	"github.com/drawbridge/drawbridge/internal/resource"
	"github.com/drawbridge/drawbridge/internal/store"
)

// Service is the JIT service: policies, requests, grants and their expiry.
// Every change to protection or access goes through reconcileVM, which reads
// the desired state from the store and hands it to the VM's provider, so
// repeating any step is harmless and a crash between steps is repaired by the
// next reconcile.
type Service struct {
	store     Store
	providers Providers
	clock     clock.Clock
	newID     func() string

	approvalTimeout time.Duration

	vmLocks keyedMutex
	wake    chan struct{} // nudges the expiry job when an earlier end time appears
	// expiryDeadline is when the sleeping expiry job wakes on its own, in
	// Unix nanoseconds of the service clock; 0 while it is awake and about
	// to read the store. A request only nudges the job when its grants end
	// before that, so requests under load do not each cost the job two
	// store reads.
	expiryDeadline atomic.Int64
	events         *eventLog // nil without Config.Events

	// OnChange, if set, is called after a VM whose provider lives outside
	// the store was reconciled.
	OnChange func(vmID string)
}

// Config wires a Service.
type Config struct {
	Store     Store
	Providers Providers
	Clock     clock.Clock
	NewID     func() string
	// ApprovalTimeout is how long a request needing approval may stay
	// Pending before it lapses (default DefaultApprovalTimeout).
	ApprovalTimeout time.Duration
	// Events, if set, hears about requests and grants (requested,
	// approved, denied, opened, closed) after the change commits.
	Events EventSink
}

// NewService returns a service; call RunExpiry to enforce end times.
func NewService(c Config) *Service {
	s := &Service{store: c.Store, providers: c.Providers, clock: c.Clock, newID: c.NewID, approvalTimeout: c.ApprovalTimeout, wake: make(chan struct{}, 1)}
	if c.Events != nil {
		s.events = &eventLog{sink: c.Events, open: map[Tx]*[]Event{}}
		s.store = eventStore{Store: c.Store, log: s.events}
	}
	return s
}

// Clock returns the service's clock.
func (s *Service) Clock() clock.Clock { return s.clock }

// ---- policies ----

// PutPolicy creates or replaces a policy and enables JIT on its VMs' ports.
// VMs or ports dropped from the policy have JIT disabled and their grants end
// with PolicyRemoved. If a provider cannot protect a VM, nothing is stored.
func (s *Service) PutPolicy(ctx context.Context, p Policy) (Policy, error) {
	p, err := NormalizePolicy(p)
	if err != nil {
		return Policy{}, err
	}
	id, err := resource.Parse(p.ID)
	if err != nil {
		return Policy{}, invalid("id", "%v", err)
	}
	if !strings.EqualFold(id.Name(), p.Name) {
		return Policy{}, invalid("name", "name %q does not match the policy ID %s", p.Name, p.ID)
	}
	now := s.clock.Now().UTC()
	actor := ActorFrom(ctx)

	var old Policy
	var hadOld bool
	vms := map[string]inventory.VM{}
	err = s.store.InTx(ctx, func(tx Tx) error {
		old, hadOld = Policy{}, false // fn may run more than once
		clear(vms)
		o, err := tx.GetPolicy(ctx, p.ID)
		switch {
		case err == nil:
			old, hadOld = o, true
		case !errors.Is(err, store.ErrNotFound):
			return err
		}
		for i, v := range p.VirtualMachines {
			vm, err := tx.GetVM(ctx, v.ID)
			if errors.Is(err, store.ErrNotFound) {
				return notFound(fmt.Sprintf("properties.virtualMachines[%d].id", i), "virtual machine %s is not in the inventory", v.ID)
			} else if err != nil {
				return err
			}
			other, err := tx.PolicyForVM(ctx, v.ID)
			if err == nil && !strings.EqualFold(other.ID, p.ID) {
				return conflict(fmt.Sprintf("properties.virtualMachines[%d].id", i), "virtual machine %s is already guarded by policy %s", v.ID, other.ID)
			} else if err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
			vms[inventory.Key(v.ID)] = vm
		}
		return nil
	})
	if err != nil {
		return Policy{}, err
	}

	// Ask each provider first: a VM it cannot protect fails the whole call.
	for i, v := range p.VirtualMachines {
		vm := vms[inventory.Key(v.ID)]
		prov, err := s.providerFor(vm)
		if err != nil {
			return Policy{}, conflict(fmt.Sprintf("properties.virtualMachines[%d].id", i), "%v", err)
		}
		if _, inTx := prov.(TxProvider); inTx {
			continue // checked by applying inside the writing transaction
		}
		d := Desired{VMID: vm.ID, Guarded: guardedPorts(v)}
		if err := prov.Check(ctx, vm, d); err != nil {
			return Policy{}, conflict(fmt.Sprintf("properties.virtualMachines[%d].id", i), "cannot enable JIT on %s: %v", v.ID, err)
		}
	}

	if hadOld {
		p.CreatedAt = old.CreatedAt
	} else {
		p.CreatedAt = now
	}
	p.UpdatedAt = now
	p.ProvisioningState = ProvisioningSucceeded
	p.ProvisioningError = ""
	if p.Kind == "" {
		p.Kind = "Basic"
	}

	affected := map[string]string{} // key -> VM ID
	for _, v := range p.VirtualMachines {
		affected[inventory.Key(v.ID)] = v.ID
	}
	for _, v := range old.VirtualMachines {
		affected[inventory.Key(v.ID)] = v.ID
	}
	unlock := s.lockVMs(keys(affected))
	var later []string
	err = s.store.InTx(ctx, func(tx Tx) error {
		if err := tx.PutPolicy(ctx, p); err != nil {
			return err
		}
		// End grants on ports that are no longer guarded.
		for _, vmID := range affected {
			grants, err := tx.ListGrants(ctx, GrantFilter{VMID: vmID, ActiveOnly: true})
			if err != nil {
				return err
			}
			vp, inPolicy := p.VM(vmID)
			for _, g := range grants {
				if inPolicy {
					if _, ok := vp.Port(g.Port); ok {
						continue
					}
				}
				if _, err := s.endGrant(ctx, tx, actor, g, ReasonPolicyRemoved, now); err != nil {
					return err
				}
			}
		}
		var before any
		if hadOld {
			before = old
		}
		if err := s.auditTx(ctx, tx, actor, AuditPolicyPut, p.ID, "", before, p, now); err != nil {
			return err
		}
		// Providers that keep their state in the store change with the
		// policy, in this transaction: a failure leaves nothing behind.
		var err error
		later, err = s.applyAllInTx(ctx, tx, sortedValues(affected), now, func(vmID string) string {
			for i, v := range p.VirtualMachines {
				if strings.EqualFold(v.ID, vmID) {
					return fmt.Sprintf("properties.virtualMachines[%d].id", i)
				}
			}
			return "properties.virtualMachines"
		})
		return err
	})
	unlock()
	if err != nil {
		return Policy{}, err
	}
	var failures []string
	for _, vmID := range later {
		if err := s.ReconcileVM(ctx, vmID); err != nil {
			failures = append(failures, err.Error())
		}
	}
	if len(failures) > 0 {
		p.ProvisioningState = ProvisioningFailed
		p.ProvisioningError = strings.Join(failures, "; ")
		_ = s.store.InTx(ctx, func(tx Tx) error { return tx.PutPolicy(ctx, p) })
	}
	return p, nil
}

// GetPolicy returns a policy by ID.
func (s *Service) GetPolicy(ctx context.Context, id string) (Policy, error) {
	p, err := readTx(ctx, s.store, func(tx Tx) (Policy, error) { return tx.GetPolicy(ctx, id) })
	if errors.Is(err, store.ErrNotFound) {
		return Policy{}, notFound("", "JIT network access policy %s not found", id)
	}
	return p, err
}

// ListPolicies returns the policies inside scope ("/" for all), optionally in one location.
func (s *Service) ListPolicies(ctx context.Context, scope, location string) ([]Policy, error) {
	return readTx(ctx, s.store, func(tx Tx) ([]Policy, error) { return tx.ListPolicies(ctx, scope, location) })
}

// DeletePolicy disables JIT on every VM of the policy (restoring the rules
// JIT set aside), ends its active grants with PolicyRemoved and deletes it.
func (s *Service) DeletePolicy(ctx context.Context, id string) error {
	now := s.clock.Now().UTC()
	actor := ActorFrom(ctx)
	p, err := s.GetPolicy(ctx, id)
	if err != nil {
		return err
	}
	var vmIDs []string
	for _, v := range p.VirtualMachines {
		vmIDs = append(vmIDs, v.ID)
	}
	unlock := s.lockVMs(lowerAll(vmIDs))
	var later []string
	err = s.store.InTx(ctx, func(tx Tx) error {
		for _, vmID := range vmIDs {
			grants, err := tx.ListGrants(ctx, GrantFilter{VMID: vmID, ActiveOnly: true})
			if err != nil {
				return err
			}
			for _, g := range grants {
				if _, err := s.endGrant(ctx, tx, actor, g, ReasonPolicyRemoved, now); err != nil {
					return err
				}
			}
		}
		if err := tx.DeletePolicy(ctx, p.ID); err != nil {
			return err
		}
		if err := s.auditTx(ctx, tx, actor, AuditPolicyDelete, p.ID, "", p, nil, now); err != nil {
			return err
		}
		// Restoring the rules JIT set aside must succeed, or the policy
		// stays: a deleted policy is never reconciled again.
		var err error
		later, err = s.applyAllInTx(ctx, tx, vmIDs, now, func(string) string { return "" })
		return err
	})
	unlock()
	if err != nil {
		return err
	}
	var errs []error
	for _, vmID := range later {
		if err := s.ReconcileVM(ctx, vmID); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// ---- requests ----

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

// Revoke ends an active grant early (UserRequested) and closes it on the firewall.
func (s *Service) Revoke(ctx context.Context, actor Actor, grantID string) (Grant, error) {
	now := s.clock.Now().UTC()
	var g Grant
	var later []string
	err := s.store.InTx(ctx, func(tx Tx) error {
		var err error
		g, err = tx.GetGrant(ctx, grantID)
		if errors.Is(err, store.ErrNotFound) {
			return notFound("grantId", "grant %s not found", grantID)
		} else if err != nil {
			return err
		}
		if g.Status != StatusInitiated {
			return conflict("grantId", "grant %s is already %s (%s)", grantID, g.Status, g.StatusReason)
		}
		if g, err = s.endGrant(ctx, tx, actor, g, ReasonUserRequested, now); err != nil {
			return err
		}
		// A firewall failure does not undo the revoke: it is recorded and
		// the reconcile job retries until the firewall closes.
		later, err = s.applyAllInTx(ctx, tx, []string{g.VMID}, now, nil)
		return err
	})
	if err != nil {
		return Grant{}, err
	}
	for _, vmID := range later {
		if err := s.ReconcileVM(ctx, vmID); err != nil {
			return g, err
		}
	}
	return g, nil
}

// ---- expiry ----

// expireBatch bounds one expiry transaction.
const expireBatch = 500

// ExpireDue ends every Initiated grant whose end time has passed (reason
// Expired) and removes it from the firewall. It returns how many it ended.
// For providers in the store the status change and the firewall change
// commit together; a provider failure is recorded and retried, never a
// reason to keep a grant open.
func (s *Service) ExpireDue(ctx context.Context) (int, error) {
	total := 0
	if _, err := s.LapseDue(ctx); err != nil {
		return 0, err
	}
	for {
		now := s.clock.Now().UTC()
		var later []string
		n := 0
		err := s.store.InTx(ctx, func(tx Tx) error {
			due, err := tx.DueGrants(ctx, now, expireBatch)
			if err != nil {
				return err
			}
			n = len(due)
			vms := map[string]string{}
			for _, g := range due {
				if _, err := s.endGrant(ctx, tx, Actor{Principal: SystemPrincipal}, g, ReasonExpired, now); err != nil {
					return err
				}
				vms[inventory.Key(g.VMID)] = g.VMID
			}
			later, err = s.applyAllInTx(ctx, tx, sortedValues(vms), now, nil)
			return err
		})
		if err != nil {
			return total, err
		}
		total += n
		var errs []error
		for _, vmID := range later {
			if err := s.ReconcileVM(ctx, vmID); err != nil {
				errs = append(errs, err)
			}
		}
		if n < expireBatch {
			return total, errors.Join(errs...)
		}
	}
}

// earliestEnd returns the earliest end time of gs (zero if gs is empty).
func earliestEnd(gs []Grant) time.Time {
	var t time.Time
	for _, g := range gs {
		if t.IsZero() || g.EndTime.Before(t) {
			t = g.EndTime
		}
	}
	return t
}

// NextEndTime returns the earliest end time of an active grant.
func (s *Service) NextEndTime(ctx context.Context) (time.Time, bool, error) {
	var t time.Time
	var ok bool
	err := s.store.ReadTx(ctx, func(tx Tx) error {
		var err error
		t, ok, err = tx.NextEndTime(ctx)
		return err
	})
	if err != nil {
		return t, ok, err
	}
	// Pending requests lapse on the same schedule.
	lapse, lok, err := s.nextLapse(ctx)
	if lok && (!ok || lapse.Before(t)) {
		t, ok = lapse, true
	}
	return t, ok, err
}

// nudgeExpiry wakes the expiry job if something ends at end, earlier than
// the job's own deadline (a zero end always wakes it). The job clears its
// deadline before reading the store, so a change committed after that read
// always finds the deadline either 0 or one computed without it, and wakes
// the job if it ends first.
func (s *Service) nudgeExpiry(end time.Time) {
	if d := s.expiryDeadline.Load(); d != 0 && !end.IsZero() && end.UnixNano() >= d {
		return
	}
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// ---- reconcile ----

// DesiredFor computes the desired firewall state of a VM from the store: the
// ports its policy guards and its grants that are active now.
func (s *Service) DesiredFor(ctx context.Context, vmID string) (inventory.VM, Desired, []Grant, error) {
	var vm inventory.VM
	var d Desired
	var active []Grant
	err := s.store.ReadTx(ctx, func(tx Tx) error {
		var err error
		vm, d, active, err = desiredInTx(ctx, tx, vmID, s.clock.Now().UTC())
		return err
	})
	return vm, d, active, err
}

func desiredInTx(ctx context.Context, tx Tx, vmID string, now time.Time) (inventory.VM, Desired, []Grant, error) {
	vm, err := tx.GetVM(ctx, vmID)
	if err != nil {
		return vm, Desired{}, nil, err
	}
	d := Desired{VMID: vm.ID}
	p, err := tx.PolicyForVM(ctx, vm.ID)
	switch {
	case err == nil:
		if vp, ok := p.VM(vm.ID); ok {
			d.Guarded = guardedPorts(vp)
		}
	case !errors.Is(err, store.ErrNotFound):
		return vm, d, nil, err
	}
	grants, err := tx.ListGrants(ctx, GrantFilter{VMID: vm.ID, ActiveOnly: true})
	if err != nil {
		return vm, d, nil, err
	}
	var active []Grant
	for _, g := range grants {
		if g.IsActive(now) {
			active = append(active, g)
		}
	}
	// Oldest first so providers see a stable order.
	sort.Slice(active, func(i, j int) bool { return active[i].ID < active[j].ID })
	for _, g := range active {
		d.Grants = append(d.Grants, desiredGrant(g))
	}
	return vm, d, active, nil
}

// applyAllInTx reconciles the VMs whose provider keeps its state in the
// store, inside tx, and returns the others for the caller to reconcile
// after commit. With fieldFor set, a provider failure aborts the
// transaction as a conflict naming fieldFor(vmID); without it, the failure
// is recorded on the VM's grants and the transaction goes on.
func (s *Service) applyAllInTx(ctx context.Context, tx Tx, vmIDs []string, now time.Time, fieldFor func(vmID string) string) ([]string, error) {
	var later []string
	for _, vmID := range vmIDs {
		vm, desired, active, err := desiredInTx(ctx, tx, vmID, now)
		if errors.Is(err, store.ErrNotFound) {
			continue // left the inventory: nothing to enforce
		} else if err != nil {
			return nil, err
		}
		prov, err := s.providerFor(vm)
		if err != nil {
			if fieldFor != nil {
				return nil, conflict(fieldFor(vmID), "%v", err)
			}
			later = append(later, vm.ID) // ReconcileVM reports it
			continue
		}
		txp, ok := prov.(TxProvider)
		if !ok {
			later = append(later, vm.ID)
			continue
		}
		obs, applyErr := txp.ApplyTx(ctx, tx, vm, desired)
		if applyErr != nil {
			if fieldFor != nil {
				return nil, conflict(fieldFor(vmID), "cannot apply JIT on %s: %v", vm.ID, applyErr)
			}
			applyErr = fmt.Errorf("apply on %s: %w", vm.ID, applyErr)
		}
		if err := recordObserved(ctx, tx, active, obs, applyErr, now); err != nil {
			return nil, err
		}
	}
	return later, nil
}

// recordObserved updates the apply bookkeeping of a VM's active grants in tx.
func recordObserved(ctx context.Context, tx Tx, active []Grant, obs Observed, applyErr error, now time.Time) error {
	for _, g := range observedChanges(active, obs, applyErr, now) {
		if err := tx.UpdateGrant(ctx, g); err != nil {
			return err
		}
	}
	return nil
}

// observedChanges returns the active grants whose apply bookkeeping changes
// given what the provider observed (or the error it failed with).
func observedChanges(active []Grant, obs Observed, applyErr error, now time.Time) []Grant {
	enforced := map[string]bool{}
	for _, id := range obs.Enforced {
		enforced[id] = true
	}
	var changed []Grant
	for _, g := range active {
		ng := g
		switch {
		case applyErr != nil:
			ng.ProviderError = applyErr.Error()
		case enforced[g.ID]:
			ng.ProviderError = ""
			if !ng.Applied {
				ng.Applied, ng.AppliedAt = true, now
			}
		default:
			ng.ProviderError = ""
		}
		if ng.Applied != g.Applied || ng.ProviderError != g.ProviderError {
			changed = append(changed, ng)
		}
	}
	return changed
}

// ReconcileVM makes the VM's firewall match the store. It is safe to call at
// any time, any number of times. Grants the provider confirms are marked
// applied; a provider failure is recorded on the VM's active grants.
func (s *Service) ReconcileVM(ctx context.Context, vmID string) error {
	unlock := s.lockVMs([]string{inventory.Key(vmID)})
	defer unlock()
	var later []string
	var applyErr error
	var outside *outsideState
	err := s.store.InTx(ctx, func(tx Tx) error {
		now := s.clock.Now().UTC()
		var err error
		outside, applyErr = nil, nil // fn may run more than once
		later, err = s.applyAllInTx(ctx, tx, []string{vmID}, now, nil)
		if err != nil {
			return err
		}
		if len(later) > 0 {
			// Read what the outside provider needs in this transaction,
			// not in another one after it: one store round trip less on
			// the path from a request to an open port.
			vm, desired, active, err := desiredInTx(ctx, tx, vmID, now)
			if err == nil {
				outside = &outsideState{vm, desired, active}
			} else if !errors.Is(err, store.ErrNotFound) {
				return err
			}
		}
		if len(later) == 0 {
			// Report a failure recorded in the transaction to the caller.
			grants, err := tx.ListGrants(ctx, GrantFilter{VMID: vmID, ActiveOnly: true})
			if err != nil {
				return err
			}
			for _, g := range grants {
				if g.ProviderError != "" {
					applyErr = errors.New(g.ProviderError)
					break
				}
			}
		}
		return nil
	})
	if err != nil || len(later) == 0 || outside == nil {
		return errors.Join(err, applyErr)
	}
	return s.reconcileOutside(ctx, *outside)
}

// outsideState is what reconcileOutside applies: a VM, its desired state
// and its active grants, read in one transaction under the VM's lock.
type outsideState struct {
	vm      inventory.VM
	desired Desired
	active  []Grant
}

// reconcileOutside reconciles a VM whose provider lives outside the store:
// apply the desired state read under the VM's lock, then record what the
// provider reported.
func (s *Service) reconcileOutside(ctx context.Context, o outsideState) error {
	vm, desired, active := o.vm, o.desired, o.active
	prov, err := s.providerFor(vm)
	if err != nil {
		return err
	}
	obs, applyErr := prov.Apply(ctx, vm, desired)
	if s.OnChange != nil {
		s.OnChange(vm.ID)
	}
	if applyErr != nil {
		applyErr = fmt.Errorf("apply on %s: %w", vm.ID, applyErr)
	}
	changed := observedChanges(active, obs, applyErr, s.clock.Now().UTC())
	if len(changed) > 0 {
		if err := s.updateGrants(ctx, changed); err != nil {
			return errors.Join(applyErr, err)
		}
	}
	return applyErr
}

// ReportObserved records what an asynchronous provider (an agent) says its
// firewall enforces for a VM: those grants become applied.
func (s *Service) ReportObserved(ctx context.Context, vmID string, enforced []string, providerErr string) error {
	_, _, active, err := s.DesiredFor(ctx, vmID)
	if err != nil {
		return err
	}
	now := s.clock.Now().UTC()
	in := map[string]bool{}
	for _, id := range enforced {
		in[id] = true
	}
	var changed []Grant
	for _, g := range active {
		ng := g
		ng.Applied = in[g.ID]
		if ng.Applied && !g.Applied {
			ng.AppliedAt = now
		}
		ng.ProviderError = providerErr
		if ng.Applied != g.Applied || ng.ProviderError != g.ProviderError {
			changed = append(changed, ng)
		}
	}
	return s.updateGrants(ctx, changed)
}

func (s *Service) updateGrants(ctx context.Context, gs []Grant) error {
	if len(gs) == 0 {
		return nil
	}
	return s.store.InTx(ctx, func(tx Tx) error {
		for _, g := range gs {
			cur, err := tx.GetGrant(ctx, g.ID)
			if err != nil {
				return err
			}
			// Only the apply bookkeeping changes here; a concurrent end of
			// the grant wins.
			if cur.Status != g.Status {
				continue
			}
			cur.Applied, cur.AppliedAt, cur.ProviderError = g.Applied, g.AppliedAt, g.ProviderError
			if err := tx.UpdateGrant(ctx, cur); err != nil {
				return err
			}
		}
		return nil
	})
}

// ReconcileAll reconciles every VM that has a policy or an active grant, and
// returns the VMs that failed.
func (s *Service) ReconcileAll(ctx context.Context) (map[string]error, error) {
	vms := map[string]string{}
	err := s.store.ReadTx(ctx, func(tx Tx) error {
		clear(vms) // fn may run more than once
		ps, err := tx.ListPolicies(ctx, "/", "")
		if err != nil {
			return err
		}
		for _, p := range ps {
			for _, v := range p.VirtualMachines {
				vms[inventory.Key(v.ID)] = v.ID
			}
		}
		gs, err := tx.ListGrants(ctx, GrantFilter{ActiveOnly: true})
		if err != nil {
			return err
		}
		for _, g := range gs {
			vms[inventory.Key(g.VMID)] = g.VMID
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	failed := map[string]error{}
	for _, vmID := range sortedValues(vms) {
		if err := s.ReconcileVM(ctx, vmID); err != nil {
			failed[vmID] = err
		}
	}
	return failed, nil
}

// ---- inventory ----

// ListVMs returns the inventory's VMs in ID order.
func (s *Service) ListVMs(ctx context.Context) ([]inventory.VM, error) {
	var inv inventory.Inventory
	err := s.store.ReadTx(ctx, func(tx Tx) error {
		var err error
		inv, err = inventory.LoadAll(ctx, tx)
		return err
	})
	return inv.VMs, err
}

// GetVM returns one VM.
func (s *Service) GetVM(ctx context.Context, id string) (inventory.VM, error) {
	vm, err := readTx(ctx, s.store, func(tx Tx) (inventory.VM, error) { return tx.GetVM(ctx, id) })
	if errors.Is(err, store.ErrNotFound) {
		return vm, notFound("", "virtual machine %s not found", id)
	}
	return vm, err
}

// ApplyInventory validates an inventory document and stores all of it in one
// transaction (nothing of an invalid document is stored), then reconciles
// the VMs JIT guards so their firewalls carry JIT's rules again.
func (s *Service) ApplyInventory(ctx context.Context, inv inventory.Inventory) error {
	if err := inventory.Validate(inv); err != nil {
		return &FieldError{Kind: ErrInvalid, Reason: err.Error()}
	}
	err := s.store.InTx(ctx, func(tx Tx) error {
		if err := inventory.Save(ctx, tx, inv); err != nil {
			return err
		}
		return s.auditTx(ctx, tx, ActorFrom(ctx), AuditInventoryApply, "/",
			fmt.Sprintf("%d VMs, %d NSGs, %d security groups", len(inv.VMs), len(inv.NSGs), len(inv.SecurityGroups)), nil, nil, s.clock.Now().UTC())
	})
	if err != nil {
		return err
	}
	_, err = s.ReconcileAll(ctx)
	return err
}

// ---- helpers ----

func (s *Service) providerFor(vm inventory.VM) (Provider, error) {
	p, ok := s.providers.For(vm.Provider)
	if !ok {
		return nil, fmt.Errorf("virtual machine %s uses provider %q, which this server does not run", vm.ID, vm.Provider)
	}
	return p, nil
}

func guardedPorts(vp VMPolicy) []GuardedPort {
	out := make([]GuardedPort, 0, len(vp.Ports))
	for _, p := range vp.Ports {
		out = append(out, GuardedPort{Port: p.Number, Protocol: p.Protocol})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Port < out[j].Port })
	return out
}

func desiredGrant(g Grant) DesiredGrant {
	return DesiredGrant{GrantID: g.ID, Port: g.Port, Protocol: netrule.Protocol(g.Protocol), Source: g.Source, End: g.EndTime}
}

func requestVMs(r Request) []string {
	seen := map[string]string{}
	for _, g := range r.Grants {
		seen[inventory.Key(g.VMID)] = g.VMID
	}
	return sortedValues(seen)
}

func keys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

func sortedValues(m map[string]string) []string {
	ks := keys(m)
	sort.Strings(ks)
	out := make([]string, len(ks))
	for i, k := range ks {
		out[i] = m[k]
	}
	return out
}

func lowerAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = inventory.Key(s)
	}
	return out
}

// keyedMutex serialises work per VM inside one process, so that reading the
// desired state and applying it cannot interleave with another change to
// the same VM. Locks are taken in sorted order to avoid deadlock.
type keyedMutex struct {
	mu    sync.Mutex
	locks map[string]*refLock
}

type refLock struct {
	sync.Mutex
	refs int
}

func (k *keyedMutex) lockVMs(keys []string) func() {
	ks := append([]string(nil), keys...)
	sort.Strings(ks)
	ks = dedupe(ks)
	var held []*refLock
	for _, key := range ks {
		k.mu.Lock()
		if k.locks == nil {
			k.locks = map[string]*refLock{}
		}
		l := k.locks[key]
		if l == nil {
			l = &refLock{}
			k.locks[key] = l
		}
		l.refs++
		k.mu.Unlock()
		l.Lock()
		held = append(held, l)
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			for i := len(held) - 1; i >= 0; i-- {
				held[i].Unlock()
				k.mu.Lock()
				held[i].refs--
				if held[i].refs == 0 {
					delete(k.locks, ks[i])
				}
				k.mu.Unlock()
			}
		})
	}
}

func (s *Service) lockVMs(keys []string) func() { return s.vmLocks.lockVMs(keys) }

func dedupe(sorted []string) []string {
	out := sorted[:0]
	for i, s := range sorted {
		if i == 0 || s != sorted[i-1] {
			out = append(out, s)
		}
	}
	return out
}

// PolicyForVM returns the policy that guards a VM.
func (s *Service) PolicyForVM(ctx context.Context, vmID string) (Policy, error) {
	p, err := readTx(ctx, s.store, func(tx Tx) (Policy, error) { return tx.PolicyForVM(ctx, vmID) })
	if errors.Is(err, store.ErrNotFound) {
		return p, notFound("vm", "virtual machine %s has no JIT policy", vmID)
	}
	return p, err
}

// GetGrant returns one grant.
func (s *Service) GetGrant(ctx context.Context, id string) (Grant, error) {
	g, err := readTx(ctx, s.store, func(tx Tx) (Grant, error) { return tx.GetGrant(ctx, id) })
	if errors.Is(err, store.ErrNotFound) {
		return g, notFound("grantId", "grant %s not found", id)
	}
	return g, err
}

// readTx runs one read in its own read-only transaction and returns its result.
func readTx[T any](ctx context.Context, st Store, read func(Tx) (T, error)) (T, error) {
	var out T
	err := st.ReadTx(ctx, func(tx Tx) error {
		var err error
		out, err = read(tx)
		return err
	})
	return out, err
}
