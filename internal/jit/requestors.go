package jit

import (
	"context"
	"errors"
)

// requestorsScan bounds how many of a policy's newest requests Requestors
// reads to name the holders of its grants.
const requestorsScan = 500

// Requestors names who asked for each grant's request (by request ID),
// from the newest requests of the grants' policies. A grant whose request
// is older than that scan is left out: the name is a nicety of listings.
func (s *Service) Requestors(ctx context.Context, gs []Grant) (map[string]string, error) {
	want, policies := map[string]bool{}, map[string]bool{}
	for _, g := range gs {
		want[g.RequestID], policies[g.PolicyID] = true, true
	}
	out := map[string]string{}
	for pid := range policies {
		reqs, err := s.ListRequests(ctx, pid, requestorsScan)
		if err != nil {
			return out, err
		}
		for _, rq := range reqs {
			if want[rq.ID] {
				out[rq.ID] = rq.Requestor
			}
		}
	}
	// A request that has not opened (pending, denied, lapsed) is not
	// among its policy's requests: its grants' name comes from its
	// approval record.
	for _, g := range gs {
		if _, ok := out[g.RequestID]; ok || !awaitedApproval(g) {
			continue
		}
		p, err := s.GetPendingRequest(ctx, g.RequestID)
		if errors.Is(err, ErrNotFound) {
			continue
		} else if err != nil {
			return out, err
		}
		out[g.RequestID] = p.Request.Requestor
	}
	return out, nil
}

// awaitedApproval reports whether g belongs to a request that needed
// approval and did not open.
func awaitedApproval(g Grant) bool {
	return g.Status == StatusPending || g.StatusReason == ReasonDenied || g.StatusReason == ReasonApprovalLapsed
}
