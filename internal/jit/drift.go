package jit

import (
	"context"
	"strings"
	"time"
)

// AuditDrift is the audit operation of a repair a host agent reported:
// someone else changed the host's JIT firewall and the agent restored it.
const AuditDrift = "drift"

// EventDrift: a host agent found its firewall changed by someone else and
// restored it (Detail says what was found and what was restored).
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
	detail := "found: " + d.Found + "; restored: " + d.Restored
	if d.Error != "" {
		detail += "; repair failed: " + d.Error
	}
	detail = strings.Join(strings.Fields(detail), " ")
	_, _, err := write(ctx, s, nil, func(c *change) (struct{}, error) {
		c.events = append(c.events, Event{Kind: EventDrift, Time: c.now, Principal: actor.Principal, VMID: vmID, Detail: detail})
		return struct{}{}, c.audit(actor, AuditDrift, vmID, detail, nil, d)
	})
	return err
}
