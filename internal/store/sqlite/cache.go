package sqlite

import (
	"database/sql"
	"slices"

	"github.com/drawbridge/drawbridge/internal/jit"
)

// The store's caches, all of them, and what each may serve stale. A
// newcomer can skip this file and cache_tx.go: tx (tx*.go) is the whole
// SQL path, and the caches only ever answer what it would.
//
//   - rowCache (below), read and filled only through cachedTx
//     (cache_tx.go), the writer's view of each transaction: rows the
//     writer read or wrote (objects, policies, grants), which policy
//     covers each VM, each VM's active grants decoded, the audit head,
//     and the ids of keys in key_ids. Never stale for the writer: every
//     write goes through cachedTx, which updates the cache in the same step, and the cache is dropped
//     whole when that may not hold: a write that failed part-way
//     (cachedTx.failed), a batch or savepoint rolled back or a commit that
//     failed (writer.go), and another connection having committed (sync,
//     from PRAGMA data_version at the start of each batch). Read-pool
//     transactions never see it. Options.NoRowCache turns it off.
//   - Store.memo (internal/jsonmemo): decoded values by type and exact
//     bytes. Never stale, whoever reads: changed bytes are a miss. Shared
//     by the writer, the read pool and the simulated network
//     (store.RawObjects.Memo). Options.NoDecodeMemo turns it off.
//
// Nothing else in the store, and nothing process-wide, caches data. Each
// was measured against its absence (BENCHMARKS.md, "Tuning behind one
// seam"); the ones that did not pay 5% were deleted.

// rowCache holds the bodies of rows the writer has read or written, so that
// a transaction reading what an earlier one wrote (the audit log's head, a
// VM's NSG and policy, the grant a request supersedes) does not go back to
// SQLite for it. Only the writer goroutine uses it. A store without one
// has a nil *rowCache, on which only sync and reset (the writer's calls)
// may be called; the rest are called through cachedTx, which has one.
type rowCache struct {
	rows map[rowKey]cachedRow
	// policyOf maps a VM key to the key of the policy covering it (""
	// for none), as read from policy_vms. Writing any policy clears it.
	policyOf map[string]string
	// active maps a VM key to its active grants (status 'Initiated'), in
	// ListGrants' order and decoded, for the VMs looked up since the cache
	// was last dropped. cachedTx's InsertRequest and UpdateGrant keep it
	// exact. Decoded, because every request and agent report reads all of
	// a VM's active grants: thousands on a host shared by many sources.
	active map[string][]activeRef
	// head is the audit log's head, if read or written since the cache
	// was last dropped.
	head *cachedHead
	// dataVersion is PRAGMA data_version at the last sync.
	dataVersion int64
	// keyIDs maps keys to their ids in key_ids, as read or added.
	keyIDs map[string]int64
}

// sync drops the cache if a connection other than the writer committed
// since the writer's last look: another process writing the same file.
// It runs at the start of each batch, which holds the write lock from
// there to its commit, so nothing else can commit in between.
func (c *rowCache) sync(sqlTx *sql.Tx, dataVersion *sql.Stmt) {
	if c == nil {
		return
	}
	var v int64
	if err := sqlTx.StmtContext(noCancel, dataVersion).QueryRowContext(noCancel).Scan(&v); err != nil {
		c.reset()
		c.dataVersion = -1
		return
	}
	if v != c.dataVersion {
		c.reset()
		c.dataVersion = v
	}
}

type cachedHead struct {
	seq  int64
	hash string
}

// activeRef is one active grant of a VM, with what ListGrants orders by.
// grant is a value without shared memory (jit.Grant has no slice, map or
// pointer), so handing out copies of it is safe.
type activeRef struct {
	id        string
	start     int64 // start_time
	requestID string
	idx       int
	grant     jit.Grant
}

// before reports whether a comes before b in ListGrants' order:
// start_time DESC, request_id DESC, idx.
func (a activeRef) before(b activeRef) bool {
	if a.start != b.start {
		return a.start > b.start
	}
	if a.requestID != b.requestID {
		return a.requestID > b.requestID
	}
	return a.idx < b.idx
}

// Tables whose rows the cache holds, by primary key.
const (
	tableObjects  = 'o' // (kind, key)
	tablePolicies = 'p' // key
	tableGrants   = 'g' // id
)

type rowKey struct {
	table     byte
	kind, key string
}

// cachedRow is a row's body as stored, or a row known not to exist.
type cachedRow struct {
	body    []byte
	present bool
}

// maxCachedRows bounds the cache's memory (bodies are around a kilobyte);
// past it the cache starts again empty.
const maxCachedRows = 20000

func newRowCache() *rowCache {
	return &rowCache{rows: map[rowKey]cachedRow{}, policyOf: map[string]string{}, active: map[string][]activeRef{}, keyIDs: map[string]int64{}}
}

// setBounded sets m[k] to v, first emptying m if it is full.
func setBounded[K comparable, V any](m map[K]V, k K, v V) {
	if len(m) >= maxCachedRows {
		clear(m)
	}
	m[k] = v
}

func (c *rowCache) get(table byte, kind, key string) (cachedRow, bool) {
	r, ok := c.rows[rowKey{table, kind, key}]
	return r, ok
}

// put records a row's body as just read or written. body must not be
// modified afterwards, by the caller or by anyone it is handed to.
func (c *rowCache) put(table byte, kind, key string, body []byte) {
	setBounded(c.rows, rowKey{table, kind, key}, cachedRow{body: body, present: true})
}

// absent records that a row does not exist (read as missing, or deleted).
func (c *rowCache) absent(table byte, kind, key string) {
	setBounded(c.rows, rowKey{table, kind, key}, cachedRow{})
}

func (c *rowCache) reset() {
	if c != nil {
		clear(c.rows)
		clear(c.policyOf)
		clear(c.active)
		clear(c.keyIDs)
		c.head = nil
	}
}

// setActiveGrants records a VM's active grants as just read, in order.
func (c *rowCache) setActiveGrants(vmKey string, refs []activeRef) {
	if len(c.active) >= maxCachedRows {
		clear(c.active)
		clear(c.keyIDs)
	}
	c.active[vmKey] = refs
}

// grantActivated records that a grant of the VM became active (inserted
// with status 'Initiated'), if the VM's list is cached.
func (c *rowCache) grantActivated(vmKey string, r activeRef) {
	refs, ok := c.active[vmKey]
	if !ok {
		return
	}
	i := 0
	for i < len(refs) && refs[i].before(r) {
		i++
	}
	c.active[vmKey] = slices.Insert(refs, i, r)
}

// grantChanged records the new state of a grant of the VM that stays
// active.
func (c *rowCache) grantChanged(vmKey string, g jit.Grant) {
	refs, ok := c.active[vmKey]
	if !ok {
		return
	}
	for i := range refs {
		if refs[i].id == g.ID {
			refs[i].grant = g
			return
		}
	}
	delete(c.active, vmKey) // not where it should be: read again
}

// grantEnded records that a grant of the VM is no longer active.
func (c *rowCache) grantEnded(vmKey, id string) {
	refs, ok := c.active[vmKey]
	if !ok {
		return
	}
	c.active[vmKey] = slices.DeleteFunc(refs, func(r activeRef) bool { return r.id == id })
}

// forgetActive drops a VM's cached list (it changed in a way the cache
// does not follow); the next lookup reads it again.
func (c *rowCache) forgetActive(vmKey string) { delete(c.active, vmKey) }

// policiesChanged forgets every VM's policy: a policy was written or
// deleted, which changes policy_vms.
func (c *rowCache) policiesChanged() { clear(c.policyOf) }
