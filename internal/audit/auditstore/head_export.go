package auditstore

import (
	"context"

	"github.com/drawbridge/drawbridge/internal/store"
)

// ReadHead returns the log's head (sequence number and hash of the last
// record; zero for an empty log), for metrics and status pages.
func ReadHead(ctx context.Context, objs store.Objects) (Head, error) { return readHead(ctx, objs) }
