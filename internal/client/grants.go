package client

import (
	"context"
	"net/url"

	"github.com/drawbridge/drawbridge/internal/api"
)

// GrantViews is Grants with who asked for each grant.
func (c *Client) GrantViews(ctx context.Context, vmID string, activeOnly bool) ([]api.GrantView, error) {
	q := url.Values{}
	if vmID != "" {
		q.Set("vm", vmID)
	}
	if activeOnly {
		q.Set("active", "true")
	}
	return allPages[api.GrantView](c, ctx, "/drawbridge/v1/grants", q)
}
