package jit

import (
	"context"
	"strings"
	"time"
)

// AuditDrift is the audit operation of a drift repair: someone else changed
// JIT's firewall objects (a host's nftables table, an NSG's JIT rules, a
// permission JIT revoked from a security group) and JIT restored them.
const AuditDrift = "drift"

// EventDrift: a provider or host agent found JIT's firewall objects changed
// by someone else and restored them (Detail says what was found and what
// was restored).
const EventDrift EventKind = "drift"

// DriftRecord is the after state of a drift audit record.
type DriftRecord struct {
	SeenAt   time.Time `json:"seenAt"`
	Found    string    `json:"found"`
	Restored string    `json:"restored"`
	Error    string    `json:"error,omitempty"`
}

// RecordDrift records a repair reported by vmID's agent: one audit record
// (operation "drift", actor from ctx, normally the agent's token) and one
// EventDrift, in one transaction.
func (s *Service) RecordDrift(ctx context.Context, vmID string, d DriftRecord) error {
	actor := ActorFrom(ctx)
	_, _, err := write(ctx, s, nil, func(c *change) (struct{}, error) {
		return struct{}{}, c.driftOn(actor, vmID, d, 0, "")
	})
	return err
}

// driftOn queues the audit record and the event of one drift repair, the
// event naming the port it was on (0: none).
func (c *change) driftOn(actor Actor, vmID string, d DriftRecord, port int, proto string) error {
	detail := "found: " + d.Found + "; restored: " + d.Restored
	if d.Error != "" {
		detail += "; repair failed: " + d.Error
	}
	detail = strings.Join(strings.Fields(detail), " ")
	c.events = append(c.events, Event{Kind: EventDrift, Time: c.now, Principal: actor.Principal, VMID: vmID, Port: port, Protocol: proto, Detail: detail})
	return c.audit(actor, AuditDrift, vmID, detail, nil, d)
}

// providerDriftOn queues the record and event of the repairs one Apply
// reported.
func (c *change) providerDriftOn(vmID string, repairs []DriftRepair, applyErr error) error {
	port, proto := repairs[0].Port, repairs[0].Protocol
	for _, r := range repairs[1:] {
		if r.Port != port || r.Protocol != proto {
			port, proto = 0, ""
		}
	}
	return c.driftOn(Actor{Principal: SystemPrincipal}, vmID, providerDrift(repairs, c.now, applyErr), port, proto)
}

// providerDrift folds the repairs one Apply reported into one record, so a
// resync that restores three rules of a VM writes one audit record and
// sends one event. applyErr is the Apply's failure, if any.
func providerDrift(repairs []DriftRepair, seen time.Time, applyErr error) DriftRecord {
	var found, restored []string
	for _, r := range repairs {
		found = append(found, r.Found)
		restored = append(restored, r.Restored)
	}
	d := DriftRecord{SeenAt: seen, Found: strings.Join(found, "; "), Restored: strings.Join(restored, "; ")}
	if applyErr != nil {
		d.Error = applyErr.Error()
	}
	return d
}

// recordProviderDrift audits the drift an outside provider repaired on a
// VM, as the system principal: the reconcile, not whoever triggered it,
// made the repair.
func (s *Service) recordProviderDrift(ctx context.Context, vmID string, repairs []DriftRepair, applyErr error) error {
	if len(repairs) == 0 {
		return nil
	}
	_, _, err := write(ctx, s, nil, func(c *change) (struct{}, error) {
		return struct{}{}, c.providerDriftOn(vmID, repairs, applyErr)
	})
	return err
}
