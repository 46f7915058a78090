package client

import (
	"context"
	"fmt"
	"net/url"

	"github.com/drawbridge/drawbridge/internal/api"
)

// maxPages bounds how many nextLinks one listing follows (a server that
// always answers a nextLink would otherwise keep the client forever):
// 10 million items at the default page size.
const maxPages = 10000

// eachPage GETs path with query and calls fn with each page's items,
// following nextLink until there is none. Only a nextLink's path and
// query are used, sent to this client's server: a link naming another
// host never receives the token, and one for another path is refused.
func eachPage[T any](c *Client, ctx context.Context, path string, query url.Values, fn func([]T) error) error {
	for n := 0; ; n++ {
		if n == maxPages {
			return fmt.Errorf("GET %s: more than %d pages; giving up", path, maxPages)
		}
		var page api.ListResponse[T]
		if err := c.do(ctx, "GET", path, query, nil, &page); err != nil {
			return err
		}
		if err := fn(page.Value); err != nil {
			return err
		}
		if page.NextLink == "" {
			return nil
		}
		u, err := url.Parse(page.NextLink)
		if err != nil || u.Path != path {
			return fmt.Errorf("GET %s: the server's nextLink %.200q is not a next page of it", path, page.NextLink)
		}
		query = u.Query()
	}
}

// allPages collects every page of a listing.
func allPages[T any](c *Client, ctx context.Context, path string, query url.Values) ([]T, error) {
	var out []T
	err := eachPage(c, ctx, path, query, func(page []T) error {
		out = append(out, page...)
		return nil
	})
	return out, err
}
