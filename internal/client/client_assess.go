package client

import (
	"context"
	"fmt"
	"net/http"
	"net/url"

	"github.com/drawbridge/drawbridge/internal/api"
)

// Assessment returns the JIT recommendation for the VMs inside scope
// (empty: every VM), with the portal's views and the fix plan: every page
// of it, following nextLink (the summary comes whole with each page).
func (c *Client) Assessment(ctx context.Context, scope string) (api.Assessment, error) {
	const path = "/drawbridge/v1/assessment"
	var out api.Assessment
	q := url.Values{}
	if scope != "" {
		q.Set("scope", scope)
	}
	for n := 0; ; n++ {
		if n == maxPages {
			return out, fmt.Errorf("GET %s: more than %d pages; giving up", path, maxPages)
		}
		var page api.Assessment
		if err := c.do(ctx, http.MethodGet, path, q, nil, &page); err != nil {
			return out, err
		}
		if n == 0 {
			out = page
		} else {
			out.Results = append(out.Results, page.Results...)
			out.Views.Configured = append(out.Views.Configured, page.Views.Configured...)
			out.Views.NotConfigured = append(out.Views.NotConfigured, page.Views.NotConfigured...)
			out.Views.Unsupported = append(out.Views.Unsupported, page.Views.Unsupported...)
			out.Fix.VirtualMachines = append(out.Fix.VirtualMachines, page.Fix.VirtualMachines...)
		}
		out.NextLink = ""
		if page.NextLink == "" {
			return out, nil
		}
		u, err := url.Parse(page.NextLink)
		if err != nil || u.Path != path {
			return out, fmt.Errorf("GET %s: the server's nextLink %.200q is not a next page of it", path, page.NextLink)
		}
		q = u.Query()
	}
}

// FixAssessment enables JIT with the default policy on the unhealthy VMs
// (all of them when req.VMs is empty) and returns what the server did.
func (c *Client) FixAssessment(ctx context.Context, req api.AssessmentFixRequest) (api.AssessmentFixResponse, error) {
	var out api.AssessmentFixResponse
	err := c.do(ctx, http.MethodPost, "/drawbridge/v1/assessment/fix", nil, req, &out)
	return out, err
}
