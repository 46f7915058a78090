package sqlite

// rowCache holds the bodies of rows the writer has read or written, so that
// a transaction reading what an earlier one wrote (the audit log's head, a
// VM's NSG and policy, the grant a request supersedes) does not go back to
// SQLite for it. Only the writer goroutine uses it.
//
// It is exact because every write to a cached row goes through the writer's
// own statements, which update it in the same step. It is dropped whole when
// that may not hold: a transaction rolled back to its savepoint (its writes
// are undone but were cached), a batch that did not commit, or another
// connection (another process on the same file) having committed, which
// SQLite reports through PRAGMA data_version.
type rowCache struct {
	rows        map[rowKey]cachedRow
	dataVersion int64
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

func newRowCache() *rowCache { return &rowCache{rows: map[rowKey]cachedRow{}} }

func (c *rowCache) get(table byte, kind, key string) (cachedRow, bool) {
	if c == nil {
		return cachedRow{}, false
	}
	r, ok := c.rows[rowKey{table, kind, key}]
	return r, ok
}

// put records a row's body as just read or written. body must not be
// modified afterwards, by the caller or by anyone it is handed to.
func (c *rowCache) put(table byte, kind, key string, body []byte) {
	if c == nil {
		return
	}
	if len(c.rows) >= maxCachedRows {
		clear(c.rows)
	}
	c.rows[rowKey{table, kind, key}] = cachedRow{body: body, present: true}
}

// absent records that a row does not exist (read as missing, or deleted).
func (c *rowCache) absent(table byte, kind, key string) {
	if c == nil {
		return
	}
	if len(c.rows) >= maxCachedRows {
		clear(c.rows)
	}
	c.rows[rowKey{table, kind, key}] = cachedRow{}
}

func (c *rowCache) reset() {
	if c != nil {
		clear(c.rows)
	}
}
