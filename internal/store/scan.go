package store

import "context"

// ScanReader is implemented by backends that read long sequential scans
// (exporting or verifying the whole audit log) on their own connections:
// ScanReadTx is ObjectReadTx with the same guarantees, but the pages it
// reads do not stay in the memory of the connections that serve requests.
// SQLite's read connections memory-map the database, and a scan of a
// large log through them maps (and counts in the server's RSS) up to
// mmap_size per connection; its scan connections do not map.
type ScanReader interface {
	ScanReadTx(ctx context.Context, fn func(Objects) error) error
}

// ScanReadTx runs fn in a read-only transaction meant for a long scan:
// st's ScanReadTx if it has one, else its ObjectReadTx.
func ScanReadTx(ctx context.Context, st ObjectStore, fn func(Objects) error) error {
	if sr, ok := st.(ScanReader); ok {
		return sr.ScanReadTx(ctx, fn)
	}
	return st.ObjectReadTx(ctx, fn)
}
