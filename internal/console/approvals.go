package console

import (
	"net/http"
	"strings"
	"time"

	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/rbac"
)

type approvalRow struct {
	ID, VM, Requestor, Source, Justification string
	Ports                                    []int
	Age                                      time.Duration
	Approvers                                []string
	Approvals                                []string
	CanDecide                                bool
	WhyNot                                   string
}

// approvalsPage is the queue of requests waiting for approval that the
// user may see, with approve / deny for those they may decide. Their own
// requests are listed as impossible to approve.
func (c *Console) approvalsPage(w http.ResponseWriter, r *http.Request, u *user) {
	ps, err := c.cfg.Service.ListPendingRequests(r.Context())
	if err != nil {
		c.fail(w, r, err)
		return
	}
	now := c.cfg.Service.Clock().Now()
	var rows []approvalRow
	for _, p := range ps {
		vms := requestVMs(p.Request)
		if !c.mayAll(u, rbac.OpGrantsList, vms) && !c.mayAll(u, rbac.OpApprove, vms) {
			continue
		}
		row := approvalRow{ID: p.Request.ID, Requestor: p.Request.Requestor, Justification: p.Request.Justification, Age: now.Sub(p.Request.StartTime)}
		if len(vms) > 0 {
			row.VM = vms[0]
		}
		for _, g := range p.Request.Grants {
			row.Ports = append(row.Ports, g.Port)
			row.Source = g.Source.String()
		}
		for _, rule := range p.Rules {
			row.Approvers = append(row.Approvers, rule.Approvers)
		}
		for _, a := range p.Approvals {
			row.Approvals = append(row.Approvals, a.Principal)
		}
		row.CanDecide, row.WhyNot = c.canDecide(u, p, vms)
		rows = append(rows, row)
	}
	c.render(w, r, http.StatusOK, "approvals", page{Title: "Approvals", Data: rows})
}

// canDecide mirrors the service's checks so that what cannot succeed is not
// offered; Approve and Deny check again.
func (c *Console) canDecide(u *user, p jit.PendingRequest, vms []string) (bool, string) {
	if strings.EqualFold(p.Request.Requestor, u.principal.Name) {
		return false, "This is your own request: someone else must approve it."
	}
	if !c.mayAll(u, rbac.OpApprove, vms) {
		return false, "You may not approve requests for this virtual machine."
	}
	for _, rule := range p.Rules {
		for _, g := range u.principal.Groups {
			if strings.EqualFold(g, rule.Approvers) {
				return true, ""
			}
		}
	}
	return false, "Only members of the approver group may decide."
}

func requestVMs(rq jit.Request) []string {
	seen := map[string]bool{}
	var out []string
	for _, g := range rq.Grants {
		if k := strings.ToLower(g.VMID); !seen[k] {
			seen[k] = true
			out = append(out, g.VMID)
		}
	}
	return out
}

func (c *Console) mayAll(u *user, op rbac.Operation, targets []string) bool {
	for _, t := range targets {
		if !c.may(u, op, t) {
			return false
		}
	}
	return len(targets) > 0
}

// decision loads the pending request and checks approve on each VM, as
// the API's pendingFor does.
func (c *Console) decision(w http.ResponseWriter, r *http.Request, u *user) (jit.PendingRequest, bool) {
	p, err := c.cfg.Service.GetPendingRequest(r.Context(), r.PathValue("id"))
	if err != nil {
		c.fail(w, r, err)
		return p, false
	}
	for _, vm := range requestVMs(p.Request) {
		if !c.may(u, rbac.OpApprove, vm) {
			c.fail(w, r, denied(rbac.OpApprove, vm))
			return p, false
		}
	}
	return p, true
}

func (c *Console) approve(w http.ResponseWriter, r *http.Request, u *user) {
	if _, ok := c.decision(w, r, u); !ok {
		return
	}
	p, opened, err := c.cfg.Service.Approve(r.Context(), c.actor(u, r), r.PathValue("id"))
	if err != nil {
		c.fail(w, r, err)
		return
	}
	msg := "Approved the request of " + p.Request.Requestor + "."
	if opened.ID != "" {
		msg += " Access is open."
	}
	redirect(w, r, Prefix+"approvals", msg)
}

func (c *Console) deny(w http.ResponseWriter, r *http.Request, u *user) {
	if _, ok := c.decision(w, r, u); !ok {
		return
	}
	p, err := c.cfg.Service.Deny(r.Context(), c.actor(u, r), r.PathValue("id"), strings.TrimSpace(r.PostFormValue("reason")))
	if err != nil {
		c.fail(w, r, err)
		return
	}
	redirect(w, r, Prefix+"approvals", "Denied the request of "+p.Request.Requestor+".")
}
