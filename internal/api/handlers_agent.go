package api

import (
	"context"
	"encoding/json"
	"github.com/drawbridge/drawbridge/internal/auth"
	"net/http"
	"time"

	"github.com/drawbridge/drawbridge/internal/provider/agenthub"
	"github.com/drawbridge/drawbridge/internal/rbac"
)

// Agents is the server side of the host agents (agenthub.Hub).
type Agents interface {
	Subscribe(ctx context.Context, vmID string) (*agenthub.Subscription, error)
	Report(ctx context.Context, r agenthub.Report) error
}

// AgentHeartbeat is how often an idle agent stream carries a heartbeat line.
// Agents treat three missed heartbeats as a dead connection.
var AgentHeartbeat = 10 * time.Second

func (s *Server) agentRoutes() {
	if s.cfg.Agents == nil {
		return
	}
	s.mux.HandleFunc("GET /drawbridge/v1/agent/stream", s.agentStream)
	s.mux.HandleFunc("POST /drawbridge/v1/agent/report", s.agentReport)
}

// agentStream is GET /drawbridge/v1/agent/stream?vm=ID: a long-lived
// NDJSON stream (application/x-ndjson), one JSON object per line. The first
// line is the VM's full snapshot (agenthub.Snapshot, "type":"snapshot");
// every change sends a new full snapshot; an idle stream gets a
// {"type":"heartbeat"} line every AgentHeartbeat.
func (s *Server) agentStream(w http.ResponseWriter, r *http.Request) {
	principal, _, ok := s.caller(w, r)
	if !ok {
		return
	}
	vmID := r.URL.Query().Get("vm")
	if vmID == "" {
		writeError(w, http.StatusBadRequest, "BadRequest", "vm", "the vm query parameter is required")
		return
	}
	if !s.authorize(w, principal, rbac.OpVMRead, vmID) {
		return
	}
	vm, err := s.cfg.Service.GetVM(r.Context(), vmID)
	if err != nil {
		s.writeServiceError(w, r, err)
		return
	}
	sub, err := s.cfg.Agents.Subscribe(r.Context(), vm.ID)
	if err != nil {
		s.writeServiceError(w, r, err)
		return
	}
	defer sub.Close()
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	send := func(v any) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(AgentHeartbeat))
		if err := enc.Encode(v); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	if !send(agenthub.Heartbeat{Type: "heartbeat", Time: time.Now().UTC()}) {
		return
	}
	tick := time.NewTicker(AgentHeartbeat)
	defer tick.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-sub.Closed():
			return
		case <-sub.Changed():
			if snap, ok := sub.Next(); ok {
				if !send(snap) {
					return
				}
				tick.Reset(AgentHeartbeat)
			}
		case <-tick.C:
			if !send(agenthub.Heartbeat{Type: "heartbeat", Time: time.Now().UTC()}) {
				return
			}
		}
	}
}

// agentReport is POST /drawbridge/v1/agent/report with an agenthub.Report:
// the agent enforces these grant IDs for this desired version (and the
// error, if applying failed). Answers 204.
func (s *Server) agentReport(w http.ResponseWriter, r *http.Request) {
	principal, _, ok := s.caller(w, r)
	if !ok {
		return
	}
	var rep agenthub.Report
	if !decode(w, r, &rep) {
		return
	}
	if rep.VM == "" {
		writeError(w, http.StatusBadRequest, "BadRequest", "vm", "vm is required")
		return
	}
	if !s.authorize(w, principal, rbac.OpVMRead, rep.VM) || !s.agentOnly(w, r) {
		return
	}
	vm, err := s.cfg.Service.GetVM(r.Context(), rep.VM)
	if err != nil {
		s.writeServiceError(w, r, err)
		return
	}
	rep.VM = vm.ID
	if err := s.cfg.Agents.Report(r.Context(), rep); err != nil {
		s.writeServiceError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// agentOnly refuses a report from anything but an agent token (which
// authorize has already held to its own VM): a report says what the host
// enforces and may carry a drift record for the audit log, so a user who
// may merely read the VM must not be able to make one up. Without
// authentication (--insecure-no-auth) there are no tokens to tell apart.
func (s *Server) agentOnly(w http.ResponseWriter, r *http.Request) bool {
	if _, ok := s.cfg.Authenticator.(IdentityAuthenticator); !ok {
		return true
	}
	if info, _ := r.Context().Value(identityKey{}).(*reqInfo); info != nil {
		if tok := info.identity.Token; tok != nil && tok.Kind == auth.KindAgent {
			return true
		}
	}
	writeError(w, http.StatusForbidden, "AuthorizationFailed", "", "only the VM's agent token may report for it (drawbridge token create --agent-vm VM)")
	return false
}
