package client

import (
	"context"
	"net/http"
	"net/url"
)

// SyncInventory applies a discovered inventory (JSON) and removes the VMs
// of provider under the resource ID prefix scope that it lacks (deleted in
// the cloud). The counts include "removed".
func (c *Client) SyncInventory(ctx context.Context, doc []byte, provider, scope string) (map[string]int, error) {
	out := map[string]int{}
	q := url.Values{"prune": {provider}, "scope": {scope}}
	err := c.do(ctx, http.MethodPost, "/drawbridge/v1/inventory", q, doc, &out)
	return out, err
}
