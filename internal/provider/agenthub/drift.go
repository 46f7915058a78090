package agenthub

import (
	"context"
	"time"

	"github.com/drawbridge/drawbridge/internal/inventory"
)

// Drift is an agent's account of one repair: someone else changed or
// removed the drawbridge table (`nft flush ruleset`, a restart of
// nftables.service, `nft delete table inet drawbridge`) and the agent put
// it back.
type Drift struct {
	// Time is when the agent saw the change.
	Time time.Time `json:"time"`
	// Found says what changed (the kernel's notifications and who made
	// them) and what the table held before the repair.
	Found string `json:"found"`
	// Restored says what the agent put back.
	Restored string `json:"restored"`
	// Error is set if the repair failed (the agent keeps retrying).
	Error string `json:"error,omitempty"`
}

// DriftRecorder records a repair an agent reported, normally
// jit.Service.RecordDrift (an audit record and a webhook event).
type DriftRecorder func(ctx context.Context, vmID string, d Drift) error

// SetDriftRecorder sets the function that records agents' drift reports.
// Call before serving.
func (h *Hub) SetDriftRecorder(r DriftRecorder) { h.drift = r }

// recordDrift passes the report's drift, if any, to the DriftRecorder. A
// drift is a fact whatever the report's version, so stale reports still
// record it.
func (h *Hub) recordDrift(ctx context.Context, r Report) error {
	if r.Drift == nil || h.drift == nil {
		return nil
	}
	h.mu.Lock()
	if v := h.vms[inventory.Key(r.VM)]; v != nil {
		v.drifts++
	}
	h.mu.Unlock()
	return h.drift(ctx, r.VM, *r.Drift)
}

// Drifts returns how many repairs the VM's agents reported to this process.
func (h *Hub) Drifts(vmID string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	if v := h.vms[inventory.Key(vmID)]; v != nil {
		return v.drifts
	}
	return 0
}
