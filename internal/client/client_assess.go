package client

import (
	"context"
	"net/http"
	"net/url"

	"github.com/drawbridge/drawbridge/internal/api"
)

// Assessment returns the JIT recommendation for the VMs inside scope
// (empty: every VM), with the portal's views and the fix plan.
func (c *Client) Assessment(ctx context.Context, scope string) (api.Assessment, error) {
	var out api.Assessment
	q := url.Values{}
	if scope != "" {
		q.Set("scope", scope)
	}
	err := c.do(ctx, http.MethodGet, "/drawbridge/v1/assessment", q, nil, &out)
	return out, err
}

// FixAssessment enables JIT with the default policy on the unhealthy VMs
// (all of them when req.VMs is empty) and returns what the server did.
func (c *Client) FixAssessment(ctx context.Context, req api.AssessmentFixRequest) (api.AssessmentFixResponse, error) {
	var out api.AssessmentFixResponse
	err := c.do(ctx, http.MethodPost, "/drawbridge/v1/assessment/fix", nil, req, &out)
	return out, err
}
