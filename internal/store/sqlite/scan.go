package sqlite

import (
	"context"
	"net/url"
	"strings"

	"github.com/drawbridge/drawbridge/internal/store"
)

// scanConns is the size of the scan pool: exports and verifies of the
// whole audit log are rare; a third one waits for a connection.
const scanConns = 2

// openScanPool opens the read-only connections ScanReadTx uses. They do
// not memory-map the database (mmap_size 0 in place of the base
// options' own): a scan reads each page once, so a map gains
// nothing, and through the mapped read pool an export of a million audit
// records left up to mmap_size (256 MiB) of the file mapped per connection
// in the server's RSS. Pages come through SQLite's page cache instead,
// bounded by cache_size.
func openScanPool(ctx context.Context, path string, q url.Values) (*pool, error) {
	opts := withPragma(q, "query_only(1)")
	for i, p := range opts["_pragma"] {
		if strings.HasPrefix(p, "mmap_size(") {
			opts["_pragma"][i] = "mmap_size(0)"
		}
	}
	return openReadOnly(ctx, path, "scan pool", opts, scanConns)
}

// ScanReadTx implements store.ScanReader: ObjectReadTx on the scan pool.
func (s *Store) ScanReadTx(ctx context.Context, fn func(store.Objects) error) error {
	if s.scan == nil {
		return s.ObjectReadTx(ctx, fn)
	}
	return s.readOn(ctx, s.scan, func(t txn) error { return fn(t) })
}
