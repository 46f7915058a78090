// Package sqlite owns drawbridge's embedded persistence: a single SQLite
// file (pure Go driver modernc.org/sqlite, no cgo) holding the generic
// objects, JIT policies, requests, grants and audit records, and the
// schema migrations that create them. *Store implements jit.Store and
// store.ObjectStore.
//
// Writing transactions run one at a time on one connection, several to a
// commit (group commit, writer.go); read-only transactions run beside
// them on a pool of read-only connections, each on a WAL snapshot.
//
// Reading order for a newcomer: queries.go (the SQL), tx*.go (the plain
// SQL path, one file per kind of row), writer.go (group commit). The
// caches sit in front of the plain path as one layer, cache_tx.go, whose
// contract is stated in cache.go; skip both to read the store without them.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	msqlite "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/jsonmemo"
	"github.com/drawbridge/drawbridge/internal/store"
)

// Store is an open SQLite database. It is safe for concurrent use; writing
// transactions run one at a time (see open for why), read-only ones
// (ReadTx, ObjectReadTx) concurrently with them and each other.
type Store struct {
	*pool // the writer's one connection (db) and its statements

	// read is a pool of read-only connections for ReadTx: WAL lets them
	// read a committed snapshot while the writer writes. nil for
	// ":memory:", whose database only the writer's connection can see.
	read *pool
	// scan is the read pool of ScanReadTx (scan.go), without mmap.
	scan *pool

	// memo remembers decoded rows and objects by their bytes (jsonmemo);
	// nil without it (Options.NoDecodeMemo).
	memo *jsonmemo.Memo

	// cache is the writer's row cache (cache.go); only the writer uses it,
	// through cachedTx. nil without it (Options.NoRowCache).
	cache *rowCache

	jobs chan *txJob // transactions waiting for the writer
	// busyNS and jobsRun add up the writer's work (WriterBusy).
	busyNS, jobsRun atomic.Int64
	closed          chan struct{} // closed by Close
	writerDone      chan struct{}
	closeOnce       sync.Once

	checkpointDB   *sql.DB // a second connection that only checkpoints the WAL
	checkpointDone chan struct{}
	// walFrames is the WAL's length in frames at the checkpointer's last
	// look; the writer rewinds the WAL when it passes walRestartAt
	// (walRestartFrames; tests lower it). walRestarts counts rewinds.
	walFrames    atomic.Int64
	walRestartAt int64
	walRestarts  atomic.Int64
}

var (
	_ jit.Store         = (*Store)(nil)
	_ store.ObjectStore = (*Store)(nil)
)

// busyTimeoutMS bounds how long a transaction waits for another process
// (a CLI command next to a running server) that holds the write lock.
const busyTimeoutMS = 10000

// Open opens (creating if needed) the database file at path and brings its
// schema up to date. ":memory:" gives a private in-memory database.
//
// Writes go through one connection, owned by the writer goroutine, which
// runs queued transactions in group commits (Store.writer): SQLite allows one
// writer at a time, so queueing in Go avoids SQLITE_BUSY and its polling
// busy handler, every statement is prepared once, and ":memory:" works
// because there is only one database. Reads in parallel come from the
// separate read-only pool that ReadTx uses (Store.read).
//
// _txlock=immediate makes BEGIN take the write lock at once, so a
// transaction never has to upgrade a read lock to a write lock, which is
// the case SQLite resolves with SQLITE_BUSY instead of waiting. It only
// matters when another process opens the same file.
func Open(ctx context.Context, path string) (*Store, error) {
	return OpenWith(ctx, path, Options{})
}

// Options turn the store's caches off, one switch each, so that a
// benchmark can measure what each is worth (BENCHMARKS.md); the store
// behaves the same either way. The zero value, Open's, has all of them on.
type Options struct {
	NoRowCache   bool // the writer's row cache (cache.go, cache_tx.go)
	NoDecodeMemo bool // the decode memo (internal/jsonmemo)
}

// OpenWith is Open with options.
func OpenWith(ctx context.Context, path string, o Options) (*Store, error) {
	if path == "" {
		return nil, errors.New("sqlite: empty database path")
	}
	if strings.ContainsAny(path, "?#") {
		return nil, fmt.Errorf("sqlite: database path %q must not contain '?' or '#'", path)
	}
	q := connOptions()
	// The writer never checkpoints: a checkpoint copies the WAL into the
	// database file and fsyncs it, milliseconds that would land on whichever
	// request's commit crossed the threshold. A second connection does it in
	// the background instead (checkpointer), which WAL allows concurrently
	// with the writer.
	writerQ := q
	if path != ":memory:" {
		writerQ = withPragma(q, "wal_autocheckpoint(0)")
		if err := restrictFiles(path); err != nil {
			return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
		}
	}
	db, err := sql.Open("sqlite", path+"?"+writerQ.Encode())
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	db.SetConnMaxLifetime(0)
	db.SetConnMaxIdleTime(0)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	if err := migrate(ctx, db); err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlite: %s: %w", path, err)
	}
	w, err := newPool(ctx, db)
	if err != nil {
		return nil, fmt.Errorf("sqlite: %s: %w", path, err)
	}
	s := &Store{pool: w, walRestartAt: walRestartFrames, jobs: make(chan *txJob, maxBatch), closed: make(chan struct{}), writerDone: make(chan struct{})}
	if !o.NoRowCache {
		s.cache = newRowCache()
	}
	if !o.NoDecodeMemo {
		s.memo = jsonmemo.New()
	}
	go s.writer()
	if path != ":memory:" {
		if s.read, err = openReadOnly(ctx, path, "read pool", withPragma(q, "query_only(1)"), readConns); err != nil {
			s.Close()
			return nil, err
		}
		if s.scan, err = openScanPool(ctx, path, q); err != nil {
			s.Close()
			return nil, err
		}
		ck, err := sql.Open("sqlite", path+"?"+q.Encode())
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("sqlite: open checkpointer for %s: %w", path, err)
		}
		ck.SetMaxOpenConns(1)
		s.checkpointDB = ck
		s.checkpointDone = make(chan struct{})
		go s.checkpointer()
	}
	if err := jit.UpgradeApprovals(ctx, s); err != nil {
		s.Close()
		return nil, fmt.Errorf("sqlite: %s: %w", path, err)
	}
	return s, nil
}

// connOptions are the connection options every connection starts from.
func connOptions() url.Values {
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeoutMS))
	q.Add("_pragma", "foreign_keys(1)")
	// WAL lets readers in other processes (backups, the CLI) proceed while
	// the server writes. synchronous=NORMAL in WAL mode does not fsync on
	// every commit, only at checkpoints: a committed transaction survives a
	// crash of the process (including kill -9), because its pages are in
	// the WAL file in the OS page cache; only a power loss or kernel crash
	// can lose the last few commits, and never corrupts the database.
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Add("_pragma", "mmap_size(268435456)")
	// 4 MiB of page cache: the hot pages fit (the writer keeps the rows it
	// rereads in its own cache), and SQLite walks the whole cache's hash
	// table at the end of every write transaction, so a larger cache costs
	// every commit (64 MiB measured 5% of the writer's time; 8 MiB gave
	// about 10% fewer requests/s than 4 MiB, over 3,000 and 10,000
	// requests, see BENCHMARKS.md).
	q.Add("_pragma", "cache_size(-4096)")
	// Savepoints (a group commit's fallback, runJobs) and
	// multi-row statements write the pages they change to a statement
	// journal; keep it in memory, not a temp file.
	q.Add("_pragma", "temp_store(MEMORY)")
	q.Add("_pragma", fmt.Sprintf("journal_size_limit(%d)", walLimitBytes))
	q.Set("_txlock", "immediate")
	return q
}

// withPragma returns a copy of the connection options q with one pragma
// more; q and its slices are left as they were (the writer, read pool and
// checkpointer each add their own to the same base).
func withPragma(q url.Values, pragma string) url.Values {
	out := make(url.Values, len(q))
	for k, v := range q {
		out[k] = slices.Clone(v)
	}
	out.Add("_pragma", pragma)
	return out
}

// readConns is the size of the read pool: enough for the API's concurrent
// reads on a small machine; more only queue on the CPU.
const readConns = 4

// pool is a database handle with every query the store runs prepared on
// it; stmts is read-only once prepared.
type pool struct {
	db    *sql.DB
	stmts map[string]*sql.Stmt
}

// newPool prepares every query on db, closing db if that fails.
func newPool(ctx context.Context, db *sql.DB) (*pool, error) {
	p := &pool{db: db, stmts: map[string]*sql.Stmt{}}
	if err := prepareAll(ctx, db, p.stmts); err != nil {
		p.close()
		return nil, err
	}
	return p, nil
}

// close closes p's statements and connections; nil is closed already.
func (p *pool) close() error {
	if p == nil {
		return nil
	}
	for _, st := range p.stmts {
		st.Close()
	}
	return p.db.Close()
}

// openReadOnly opens a pool of conns connections to path with options
// opts, which carry query_only: any write attempted through them fails.
func openReadOnly(ctx context.Context, path, what string, opts url.Values, conns int) (*pool, error) {
	db, err := sql.Open("sqlite", path+"?"+opts.Encode())
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s for %s: %w", what, path, err)
	}
	db.SetMaxOpenConns(conns)
	db.SetMaxIdleConns(conns)
	db.SetConnMaxLifetime(0)
	db.SetConnMaxIdleTime(0)
	p, err := newPool(ctx, db)
	if err != nil {
		return nil, fmt.Errorf("sqlite: %s for %s: %w", what, path, err)
	}
	return p, nil
}

// Close closes the database. Transactions in progress finish first.
func (s *Store) Close() error {
	s.closeOnce.Do(func() { close(s.closed) })
	<-s.writerDone
	var ckErr error
	if s.checkpointDB != nil {
		<-s.checkpointDone
		ckErr = s.checkpointDB.Close()
	}
	return errors.Join(s.pool.close(), ckErr, s.read.close(), s.scan.close())
}

// InTx runs fn in one transaction and commits if fn returns nil; otherwise
// (or if fn panics) nothing fn wrote is kept. Transactions are serialised,
// so calling InTx or ObjectTx again from inside fn deadlocks.
func (s *Store) InTx(ctx context.Context, fn func(jit.Tx) error) error {
	return s.inTx(ctx, func(t txn) error { return fn(t) })
}

// ObjectTx is InTx for callers that only need the object storage.
func (s *Store) ObjectTx(ctx context.Context, fn func(store.Objects) error) error {
	return s.inTx(ctx, func(t txn) error { return fn(t) })
}

// ReadTx runs fn in a read-only transaction (jit.Store.ReadTx) on the read
// pool, concurrently with the writer and other readers: fn sees the
// snapshot committed when its first statement ran. Writes fail
// (query_only) and the transaction always rolls back. For ":memory:" it
// runs on the writer like InTx, but still keeps nothing fn wrote.
func (s *Store) ReadTx(ctx context.Context, fn func(jit.Tx) error) error {
	return s.readTx(ctx, func(t txn) error { return fn(t) })
}

// ObjectReadTx is ReadTx for callers that only read objects.
func (s *Store) ObjectReadTx(ctx context.Context, fn func(store.Objects) error) error {
	return s.readTx(ctx, func(t txn) error { return fn(t) })
}

// errReadOnly rolls back a read transaction run on the writer.
var errReadOnly = errors.New("sqlite: read-only transaction")

func (s *Store) readTx(ctx context.Context, fn func(txn) error) error {
	if s.read == nil {
		var fnErr error
		err := s.inTx(ctx, func(t txn) error {
			fnErr = fn(t)
			return errReadOnly
		})
		if errors.Is(err, errReadOnly) {
			return fnErr
		}
		return err
	}
	return s.readOn(ctx, s.read, fn)
}

// readOn runs fn in a read-only transaction on a connection of p.
func (s *Store) readOn(ctx context.Context, p *pool, fn func(txn) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	// Deferred BEGIN: the snapshot starts at the first read, and a read
	// never takes the write lock.
	sqlTx, err := p.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("sqlite: begin read: %w", err)
	}
	defer sqlTx.Rollback()
	err = fn(&tx{tx: sqlTx, stmts: p.stmts, memo: s.memo})
	var se *msqlite.Error
	if errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_READONLY {
		return fmt.Errorf("%w: %w", store.ErrReadOnly, err)
	}
	return err
}

// WriterBusy reports how long the writer has spent running transactions
// (their functions, savepoints and commits) and how many it has run. The
// writer is serial, so busy/jobs is what one transaction costs it, and
// jobs/busy bounds how many per second the store can write.
func (s *Store) WriterBusy() (busy time.Duration, jobs int64) {
	return time.Duration(s.busyNS.Load()), s.jobsRun.Load()
}
