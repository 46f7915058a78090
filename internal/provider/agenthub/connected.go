package agenthub

import "github.com/drawbridge/drawbridge/internal/inventory"

// Connected reports whether at least one agent is subscribed to the VM's
// desired state right now (the assessment counts such hosts as protected
// on their guarded ports).
func (h *Hub) Connected(vmID string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	v := h.vms[inventory.Key(vmID)]
	return v != nil && len(v.subs) > 0
}
