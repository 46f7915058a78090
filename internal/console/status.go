package console

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/rbac"
)

func urlq(s string) string { return url.QueryEscape(s) }

// requestState is what the status page and its poll show of one request.
type requestState struct {
	ID        string `json:"id"`
	PolicyID  string `json:"policyId"`
	VM        string `json:"vm"`
	Requestor string `json:"requestor"`
	// State: Pending (waiting for approvers), Active (a grant is open),
	// Ended, Denied or Lapsed.
	State     string       `json:"state"`
	Reason    string       `json:"reason,omitempty"`
	Approvers []string     `json:"approvers,omitempty"`
	Grants    []grantState `json:"grants"`
	Now       time.Time    `json:"now"`
}

type grantState struct {
	ID        string    `json:"id"`
	Port      int       `json:"port"`
	Protocol  string    `json:"protocol"`
	Source    string    `json:"source"`
	Status    string    `json:"status"`
	Reason    string    `json:"reason"`
	EndTime   time.Time `json:"endTime"`
	Remaining int       `json:"remainingSeconds"`
	Applied   bool      `json:"applied"`
	Error     string    `json:"providerError,omitempty"`
	CanRevoke bool      `json:"canRevoke"`
	// ConnectTo: where to connect while in force, if not the VM (a
	// firewall's DNAT listener).
	ConnectTo string `json:"connectTo,omitempty"`
}

// loadRequest finds a request: opened (stored under its policy) or one
// that needed approval (pending or decided). The requester always sees
// their own; others need grants.list on the VM.
func (c *Console) loadRequest(ctx context.Context, u *user, id, policyID string) (requestState, error) {
	now := c.cfg.Service.Clock().Now().UTC()
	st := requestState{ID: id, PolicyID: policyID, Now: now}
	var req jit.Request
	var err error
	if policyID != "" {
		req, err = c.cfg.Service.GetRequest(ctx, id, policyID)
	}
	if policyID == "" || errors.Is(err, jit.ErrNotFound) {
		p, perr := c.cfg.Service.GetPendingRequest(ctx, id)
		if perr != nil {
			return st, perr
		}
		req, err = p.Request, nil
		st.State, st.Reason = p.State, p.Reason
		for _, r := range p.Rules {
			st.Approvers = append(st.Approvers, r.Approvers)
		}
		if p.State == jit.ApprovalApproved && policyID != "" {
			// Opened: its grants live under the policy now.
			if opened, oerr := c.cfg.Service.GetRequest(ctx, id, req.PolicyID); oerr == nil {
				req, st.State = opened, ""
			}
		}
	}
	if err != nil {
		return st, err
	}
	st.Requestor, st.PolicyID = req.Requestor, req.PolicyID
	if len(req.Grants) > 0 {
		st.VM = req.Grants[0].VMID
	}
	if !strings.EqualFold(req.Requestor, u.principal.Name) && !c.may(u, rbac.OpGrantsList, st.VM) {
		return st, denied(rbac.OpGrantsList, st.VM)
	}
	mayRevoke := st.VM != "" && c.may(u, rbac.OpRevoke, st.VM)
	active := false
	for _, g := range req.Grants {
		gs := grantState{ID: g.ID, Port: g.Port, Protocol: g.Protocol, Source: g.Source.String(), Status: string(g.Status),
			Reason: string(g.StatusReason), EndTime: g.EndTime, Applied: g.Applied, Error: g.ProviderError}
		if g.Status == jit.StatusInitiated && now.Before(g.EndTime) {
			active = true
			gs.Remaining = int(g.EndTime.Sub(now).Seconds())
			gs.CanRevoke = mayRevoke
			if g.ConnectTo.IsValid() {
				gs.ConnectTo = g.ConnectTo.String()
			}
		}
		st.Grants = append(st.Grants, gs)
	}
	if st.State == "" || st.State == jit.ApprovalApproved {
		st.State = "Ended"
		if active {
			st.State = "Active"
		}
	}
	return st, nil
}

func (c *Console) requestStatusPage(w http.ResponseWriter, r *http.Request, u *user) {
	st, err := c.loadRequest(r.Context(), u, r.PathValue("id"), r.URL.Query().Get("policy"))
	if err != nil {
		c.fail(w, r, err)
		return
	}
	c.render(w, r, http.StatusOK, "status", page{Title: "Request " + st.State, Active: "access", Data: st})
}

// requestStatusJSON is what the status page polls every second, so the
// countdown, the approval and "applied on the firewall" update without a
// reload.
func (c *Console) requestStatusJSON(w http.ResponseWriter, r *http.Request, u *user) {
	st, err := c.loadRequest(r.Context(), u, r.PathValue("id"), r.URL.Query().Get("policy"))
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if err != nil {
		w.WriteHeader(statusOf(err))
		_ = json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
		return
	}
	_ = json.NewEncoder(w).Encode(st)
}

// revoke ends a grant early, as POST /drawbridge/v1/grants/{id}/revoke.
func (c *Console) revoke(w http.ResponseWriter, r *http.Request, u *user) {
	g, err := c.cfg.Service.GetGrant(r.Context(), r.PathValue("id"))
	if err != nil {
		c.fail(w, r, err)
		return
	}
	if !c.may(u, rbac.OpRevoke, g.VMID) {
		c.fail(w, r, denied(rbac.OpRevoke, g.VMID))
		return
	}
	g, err = c.cfg.Service.Revoke(r.Context(), c.actor(u, r), g.ID)
	if err != nil && g.ID == "" {
		c.fail(w, r, err)
		return
	}
	back := safeNext(r.PostFormValue("next"))
	redirect(w, r, back, "Revoked port "+strconv.Itoa(g.Port)+" on "+vmNameOf(g.VMID)+".")
}
