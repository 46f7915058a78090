package console

import (
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/rbac"
)

// myRequestsShown bounds the My access page.
const myRequestsShown = 50

type myRequest struct {
	ID, PolicyID, VM, State string
	Start                   time.Time
	Ports                   []int
	Active                  []grantState
}

type myAccessData struct {
	Requests []myRequest
}

// myAccessPage lists the user's own requests, newest first: pending ones
// and those opened under each policy, with revoke for open grants.
func (c *Console) myAccessPage(w http.ResponseWriter, r *http.Request, u *user) {
	ctx := r.Context()
	svc := c.cfg.Service
	now := svc.Clock().Now()
	mine := func(who string) bool { return strings.EqualFold(who, u.principal.Name) }
	var out []myRequest
	pending, err := svc.ListPendingRequests(ctx)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	for _, p := range pending {
		if mine(p.Request.Requestor) {
			out = append(out, summarize(p.Request, "Pending", now, false))
		}
	}
	policies, err := svc.ListPolicies(ctx, "/", "")
	if err != nil {
		c.fail(w, r, err)
		return
	}
	for _, p := range policies {
		reqs, err := svc.ListRequests(ctx, p.ID, 0)
		if err != nil {
			c.fail(w, r, err)
			return
		}
		for _, rq := range reqs {
			if mine(rq.Requestor) {
				vm := ""
				if len(rq.Grants) > 0 {
					vm = rq.Grants[0].VMID
				}
				out = append(out, summarize(rq, "", now, vm != "" && c.may(u, rbac.OpRevoke, vm)))
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Start.After(out[j].Start) })
	if len(out) > myRequestsShown {
		out = out[:myRequestsShown]
	}
	c.render(w, r, http.StatusOK, "access", page{Title: "My access", Data: myAccessData{Requests: out}})
}

func summarize(rq jit.Request, state string, now time.Time, mayRevoke bool) myRequest {
	m := myRequest{ID: rq.ID, PolicyID: rq.PolicyID, State: state, Start: rq.StartTime}
	for _, g := range rq.Grants {
		m.VM = g.VMID
		m.Ports = append(m.Ports, g.Port)
		if g.Status == jit.StatusInitiated && now.Before(g.EndTime) {
			m.Active = append(m.Active, grantState{ID: g.ID, Port: g.Port, Protocol: g.Protocol, Source: g.Source.String(),
				EndTime: g.EndTime, Remaining: int(g.EndTime.Sub(now).Seconds()), Applied: g.Applied, CanRevoke: mayRevoke})
		}
	}
	if m.State == "" {
		m.State = "Ended"
		if len(m.Active) > 0 {
			m.State = "Active"
		}
	}
	return m
}
