// Package sqlite owns drawbridge's embedded persistence: a single SQLite
// file (pure Go driver modernc.org/sqlite, no cgo) holding the generic
// objects, JIT policies, requests, grants and audit records, and the
// schema migrations that create them. *Store implements jit.Store and
// store.ObjectStore.
//
// Writing transactions run one at a time on one connection, several to a
// commit (group commit, sqlite.go), with a cache of the rows the writer
// has seen (cache.go); read-only transactions run beside them on a pool of
// read-only connections, each on a WAL snapshot.
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
	db *sql.DB

	// stmts holds every query prepared once in Open; read-only afterwards.
	stmts map[string]*sql.Stmt

	// readDB is a pool of read-only connections for ReadTx: WAL lets them
	// read a committed snapshot while the writer writes. nil for
	// ":memory:", whose database only the writer's connection can see.
	readDB    *sql.DB
	readStmts map[string]*sql.Stmt
	// scanDB is the read pool of ScanReadTx (scan.go), without mmap.
	scanDB    *sql.DB
	scanStmts map[string]*sql.Stmt

	// memo remembers decoded rows and objects by their bytes (jsonmemo).
	memo *jsonmemo.Memo

	// cache is the writer's row cache (cache.go); only the writer uses it.
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

	tune tuning
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
// separate read-only pool that ReadTx uses (openReadPool).
//
// _txlock=immediate makes BEGIN take the write lock at once, so a
// transaction never has to upgrade a read lock to a write lock, which is
// the case SQLite resolves with SQLITE_BUSY instead of waiting. It only
// matters when another process opens the same file.
func Open(ctx context.Context, path string) (*Store, error) {
	if path == "" {
		return nil, errors.New("sqlite: empty database path")
	}
	if strings.ContainsAny(path, "?#") {
		return nil, fmt.Errorf("sqlite: database path %q must not contain '?' or '#'", path)
	}
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
	// Savepoints (a group commit's fallback, runWithSavepoints) and
	// multi-row statements write the pages they change to a statement
	// journal; keep it in memory, not a temp file.
	q.Add("_pragma", "temp_store(MEMORY)")
	q.Add("_pragma", fmt.Sprintf("journal_size_limit(%d)", walLimitBytes))
	q.Set("_txlock", "immediate")
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
	s := &Store{db: db, stmts: map[string]*sql.Stmt{}, cache: newRowCache(), memo: jsonmemo.New(), walRestartAt: walRestartFrames, jobs: make(chan *txJob, maxBatch), closed: make(chan struct{}), writerDone: make(chan struct{})}
	s.tune = tuningFromEnv()
	if s.tune.noDecodeMemo {
		s.memo = nil
	}
	if err := prepareAll(ctx, s.db, s.stmts); err != nil {
		for _, st := range s.stmts {
			st.Close()
		}
		db.Close()
		return nil, fmt.Errorf("sqlite: %s: %w", path, err)
	}
	go s.writer()
	if path != ":memory:" {
		if err := s.openReadPool(ctx, path, q); err != nil {
			s.Close()
			return nil, err
		}
		if err := s.openScanPool(ctx, path, q); err != nil {
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
	return s, nil
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

// openReadPool opens the read-only connections ReadTx uses.
// query_only makes any write attempted through them fail.
func (s *Store) openReadPool(ctx context.Context, path string, q url.Values) error {
	rdb, err := sql.Open("sqlite", path+"?"+withPragma(q, "query_only(1)").Encode())
	if err != nil {
		return fmt.Errorf("sqlite: open read pool for %s: %w", path, err)
	}
	rdb.SetMaxOpenConns(readConns)
	rdb.SetMaxIdleConns(readConns)
	rdb.SetConnMaxLifetime(0)
	rdb.SetConnMaxIdleTime(0)
	stmts := map[string]*sql.Stmt{}
	if err := prepareAll(ctx, rdb, stmts); err != nil {
		for _, st := range stmts {
			st.Close()
		}
		rdb.Close()
		return fmt.Errorf("sqlite: read pool for %s: %w", path, err)
	}
	s.readDB, s.readStmts = rdb, stmts
	return nil
}

// checkpointInterval is how often the background checkpointer folds the
// WAL into the database file.
const checkpointInterval = 250 * time.Millisecond

// checkpointer runs PASSIVE checkpoints until the store closes. PASSIVE
// never waits for the writer and never blocks it; it copies what it can.
func (s *Store) checkpointer() {
	defer close(s.checkpointDone)
	t := time.NewTicker(checkpointInterval)
	defer t.Stop()
	for {
		select {
		case <-s.closed:
			// Leave the WAL small for the next start.
			_, _ = s.checkpointDB.Exec("PRAGMA wal_checkpoint(PASSIVE)")
			return
		case <-t.C:
			var busy, frames, done int64
			if err := s.checkpointDB.QueryRow("PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &frames, &done); err == nil && frames >= 0 {
				s.walFrames.Store(frames)
			}
		}
	}
}

// walRestartFrames is the WAL length (64 MiB of 4 KiB pages) past which the
// writer rewinds it. PASSIVE checkpoints copy the WAL into the database but
// never rewind it: SQLite starts the WAL over only when a write begins with
// every frame copied and no reader on it, which under steady load never
// happens, so the file grew without bound (420 MB after 5,000 requests),
// and with it the cost of every write (extending the file) and read
// (searching the WAL index).
const walRestartFrames = 16384

// walLimitBytes is journal_size_limit: a rewound WAL file is truncated to it.
const walLimitBytes = walRestartFrames * 4096

// maybeRestartWAL rewinds a long WAL between batches: RESTART copies what
// the background checkpointer has not yet, waits for readers to move to
// the new snapshot, and starts the WAL over. It waits at most
// restartWaitMS for readers (a long read, such as an assessment of a big
// inventory, must not hold up writes): if they are not done by then, the
// checkpoint is only PASSIVE, and the next try waits for the checkpointer's
// next report, so a reader that stays costs the writer at most one short
// wait per checkpointInterval.
func (s *Store) maybeRestartWAL() {
	if s.walFrames.Load() < s.walRestartAt {
		return
	}
	if _, err := s.db.ExecContext(noCancel, fmt.Sprintf("PRAGMA busy_timeout = %d", restartWaitMS)); err != nil {
		return
	}
	var busy, frames, done int64
	err := s.db.QueryRowContext(noCancel, "PRAGMA wal_checkpoint(RESTART)").Scan(&busy, &frames, &done)
	_, _ = s.db.ExecContext(noCancel, fmt.Sprintf("PRAGMA busy_timeout = %d", busyTimeoutMS))
	s.walFrames.Store(0)
	if err == nil && busy == 0 {
		s.walRestarts.Add(1)
	}
}

// restartWaitMS bounds how long maybeRestartWAL holds up the writer.
const restartWaitMS = 10

// Close closes the database. Transactions in progress finish first.
func (s *Store) Close() error {
	s.closeOnce.Do(func() { close(s.closed) })
	<-s.writerDone
	var ckErr error
	if s.checkpointDB != nil {
		<-s.checkpointDone
		ckErr = s.checkpointDB.Close()
	}
	for _, st := range s.stmts {
		st.Close()
	}
	var readErr error
	if s.readDB != nil {
		for _, st := range s.readStmts {
			st.Close()
		}
		readErr = s.readDB.Close()
	}
	return errors.Join(s.db.Close(), ckErr, readErr, s.closeScanPool())
}

// InTx runs fn in one transaction and commits if fn returns nil; otherwise
// (or if fn panics) nothing fn wrote is kept. Transactions are serialised,
// so calling InTx or ObjectTx again from inside fn deadlocks.
func (s *Store) InTx(ctx context.Context, fn func(jit.Tx) error) error {
	return s.inTx(ctx, func(t *tx) error { return fn(t) })
}

// ObjectTx is InTx for callers that only need the object storage.
func (s *Store) ObjectTx(ctx context.Context, fn func(store.Objects) error) error {
	return s.inTx(ctx, func(t *tx) error { return fn(t) })
}

// ReadTx runs fn in a read-only transaction (jit.Store.ReadTx) on the read
// pool, concurrently with the writer and other readers: fn sees the
// snapshot committed when its first statement ran. Writes fail
// (query_only) and the transaction always rolls back. For ":memory:" it
// runs on the writer like InTx, but still keeps nothing fn wrote.
func (s *Store) ReadTx(ctx context.Context, fn func(jit.Tx) error) error {
	return s.readTx(ctx, func(t *tx) error { return fn(t) })
}

// ObjectReadTx is ReadTx for callers that only read objects.
func (s *Store) ObjectReadTx(ctx context.Context, fn func(store.Objects) error) error {
	return s.readTx(ctx, func(t *tx) error { return fn(t) })
}

// errReadOnly rolls back a read transaction run on the writer.
var errReadOnly = errors.New("sqlite: read-only transaction")

func (s *Store) readTx(ctx context.Context, fn func(*tx) error) error {
	if s.readDB == nil {
		var fnErr error
		err := s.inTx(ctx, func(t *tx) error {
			fnErr = fn(t)
			return errReadOnly
		})
		if errors.Is(err, errReadOnly) {
			return fnErr
		}
		return err
	}
	return s.readOn(ctx, s.readDB, s.readStmts, fn)
}

// readOn runs fn in a read-only transaction on a connection of pool db,
// whose prepared statements are stmts.
func (s *Store) readOn(ctx context.Context, db *sql.DB, stmts map[string]*sql.Stmt, fn func(*tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	// Deferred BEGIN: the snapshot starts at the first read, and a read
	// never takes the write lock.
	sqlTx, err := db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("sqlite: begin read: %w", err)
	}
	defer sqlTx.Rollback()
	err = fn(&tx{tx: sqlTx, stmts: stmts, memo: s.memo, tune: s.tune})
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

// maxBatch bounds how many transactions share one commit; it is also how
// many may queue for the writer without their callers blocking on the send.
// (One commit for many transactions is what makes the writer fast enough;
// a buffered queue spares each caller a rendezvous with it.)
const maxBatch = 64

var errStoreClosed = errors.New("sqlite: store is closed")

// txJob is one caller's transaction waiting for the writer.
type txJob struct {
	ctx  context.Context
	fn   func(*tx) error
	done chan txResult
}

type txResult struct {
	err   error
	panic any
}

// inTx hands fn to the writer goroutine and waits for its outcome.
//
// Group commit: the writer runs every transaction queued at the moment in one
// SQLite transaction and commits once. A caller's fn that fails (or
// panics) affects no other: if it wrote nothing there is nothing to undo,
// and if it did, the batch is rolled back and the others run again, each
// in a savepoint of its own (runOptimistic, runWithSavepoints). The
// batch's COMMIT is what makes each caller's writes durable, so InTx
// returns only after it. Since transactions already ran one
// at a time on the single connection, callers see the same isolation as
// before; what they share is the cost of the commit (writing the WAL), which
// was a third of a request's time.
func (s *Store) inTx(ctx context.Context, fn func(*tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	j := &txJob{ctx: ctx, fn: fn, done: make(chan txResult, 1)}
	select {
	case s.jobs <- j:
	case <-s.closed:
		return errStoreClosed
	}
	var r txResult
	select {
	case r = <-j.done:
	case <-s.writerDone:
		// The writer answers every job it took before it stopped; one
		// queued after its last look is answered here.
		select {
		case r = <-j.done:
		default:
			return errStoreClosed
		}
	}
	if r.panic != nil {
		panic(r.panic)
	}
	return r.err
}

// writer runs queued transactions in batches until the store closes.
func (s *Store) writer() {
	defer close(s.writerDone)
	for {
		var first *txJob
		select {
		case first = <-s.jobs:
		case <-s.closed:
			// Refuse what is still queued rather than leave it waiting.
			for {
				select {
				case j := <-s.jobs:
					j.done <- txResult{err: errStoreClosed}
				default:
					return
				}
			}
		}
		batch := []*txJob{first}
	drain:
		for len(batch) < maxBatch {
			select {
			case j := <-s.jobs:
				batch = append(batch, j)
			default:
				break drain
			}
		}
		start := time.Now()
		s.runBatch(batch)
		s.busyNS.Add(int64(time.Since(start)))
		s.jobsRun.Add(int64(len(batch)))
		s.maybeRestartWAL()
	}
}

func (s *Store) runBatch(batch []*txJob) {
	results := make([]txResult, len(batch))
	defer func() {
		for i, j := range batch {
			j.done <- results[i]
		}
	}()
	all := make([]int, len(batch))
	for i := range all {
		all[i] = i
	}
	if s.tune.noOptimistic {
		s.runWithSavepoints(batch, all, results)
	} else if rerun, again := s.runOptimistic(batch, all, results); again {
		s.runWithSavepoints(batch, rerun, results)
	}
}

// runOptimistic runs the jobs of batch named by idx in one SQLite
// transaction without savepoints and commits them, recording each outcome
// in results. A savepoint per job costs about a tenth of the writer's time
// (SQLite copies every page a job first changes into the savepoint's
// journal), and jobs rarely fail after writing: most refusals are found
// before the first write, and a job that wrote nothing needs nothing
// undone. When one does fail after writing, runOptimistic rolls the whole
// transaction back, keeps that job's failure, and returns the jobs to run
// again (those that had succeeded, then those not yet run) with again set;
// jit.Store and store.ObjectStore allow a backend to run fn more than once.
// The audit log's head, which every audited change rewrites, is written
// once, before the commit.
func (s *Store) runOptimistic(batch []*txJob, idx []int, results []txResult) (rerun []int, again bool) {
	sqlTx, bound, ok := s.beginBatch(idx, results)
	if !ok {
		return nil, false
	}
	var done []int
	headDirty := false
	for k, i := range idx {
		t := s.startJob(batch[i], &results[i], sqlTx, bound)
		if t == nil {
			continue
		}
		if !s.tune.noHeadDefer && !s.tune.noRowCache {
			t.headDirty = &headDirty
		}
		results[i] = runJob(t, batch[i])
		if results[i].err == nil && results[i].panic == nil {
			done = append(done, i)
			continue
		}
		if t.wrote {
			_ = sqlTx.Rollback()
			s.cache.reset() // it holds what the rollback undid
			return append(done, idx[k+1:]...), true
		}
	}
	if headDirty {
		// The cache holds the head the batch's last audited transaction
		// set (nothing resets it without returning above).
		h, _ := s.cache.auditHead()
		if _, err := sqlTx.StmtContext(noCancel, s.stmts[qSetHead]).ExecContext(noCancel, h.seq, h.hash); err != nil {
			_ = sqlTx.Rollback()
			s.cache.reset()
			for _, i := range done {
				results[i].err = fmt.Errorf("sqlite: write audit head: %w", err)
			}
			return nil, false
		}
	}
	s.commitBatch(sqlTx, done, results)
	return nil, false
}

// runWithSavepoints runs the jobs of batch named by idx in one SQLite
// transaction, each inside its own savepoint, and commits them, recording
// each outcome in results: a job that fails (or panics) is rolled back to
// its savepoint and affects no other. It is the slower, always-safe path
// that runOptimistic falls back to.
func (s *Store) runWithSavepoints(batch []*txJob, idx []int, results []txResult) {
	sqlTx, bound, ok := s.beginBatch(idx, results)
	if !ok {
		return
	}
	var done []int
	for _, i := range idx {
		t := s.startJob(batch[i], &results[i], sqlTx, bound)
		if t == nil {
			continue
		}
		if _, err := t.stmt(qSavepoint).ExecContext(noCancel); err != nil {
			results[i].err = fmt.Errorf("sqlite: savepoint: %w", err)
			continue
		}
		results[i] = runJob(t, batch[i])
		if results[i].err != nil || results[i].panic != nil {
			s.cache.reset() // it holds what the savepoint is about to undo
			if _, err := sqlTx.ExecContext(context.Background(), "ROLLBACK TO job; RELEASE job"); err != nil {
				// The savepoint could not be undone: nothing in this batch
				// can be trusted, so none of it is kept.
				_ = sqlTx.Rollback()
				failAll(idx, results, fmt.Errorf("sqlite: rollback to savepoint: %w", err))
				return
			}
			continue
		}
		if _, err := t.stmt(qRelease).ExecContext(noCancel); err != nil {
			results[i].err = fmt.Errorf("sqlite: release savepoint: %w", err)
			_ = sqlTx.Rollback()
			s.cache.reset()
			failAll(idx, results, results[i].err)
			return
		}
		done = append(done, i)
	}
	s.commitBatch(sqlTx, done, results)
}

// startJob returns the transaction job j runs in, or nil, with j's context
// error as its result r, if its caller gave up.
func (s *Store) startJob(j *txJob, r *txResult, sqlTx *sql.Tx, bound map[string]*sql.Stmt) *tx {
	if err := j.ctx.Err(); err != nil {
		r.err = err
		return nil
	}
	t := &tx{tx: sqlTx, stmts: s.stmts, bound: bound, cache: s.cache, memo: s.memo, tune: s.tune}
	if s.tune.noRowCache {
		t.cache = nil
	}
	if s.tune.noBoundStmts {
		t.bound = nil
	}
	return t
}

// failAll gives err to every job of idx that has not failed already, run
// or not: their batch was rolled back.
func failAll(idx []int, results []txResult, err error) {
	for _, k := range idx {
		if results[k].err == nil && results[k].panic == nil {
			results[k].err = err
		}
	}
}

// beginBatch starts a batch's SQLite transaction. It is not bound to any
// one caller's context: a caller giving up must not roll back the others.
// bound holds the batch's statements, bound to its transaction once:
// binding (Tx.StmtContext) locks, allocates and registers a statement each
// time, which measured as much as running a small one.
// If it cannot begin, every job of idx gets the error and ok is false.
func (s *Store) beginBatch(idx []int, results []txResult) (sqlTx *sql.Tx, bound map[string]*sql.Stmt, ok bool) {
	sqlTx, err := s.db.BeginTx(context.Background(), nil)
	if err != nil {
		for _, i := range idx {
			results[i].err = fmt.Errorf("sqlite: begin: %w", err)
		}
		return nil, nil, false
	}
	s.checkDataVersion(sqlTx)
	return sqlTx, map[string]*sql.Stmt{}, true
}

// commitBatch commits sqlTx, which holds the writes of the jobs done, or
// rolls it back if there are none; a failed commit fails each of them.
func (s *Store) commitBatch(sqlTx *sql.Tx, done []int, results []txResult) {
	if len(done) == 0 {
		_ = sqlTx.Rollback()
		return
	}
	if err := sqlTx.Commit(); err != nil {
		s.cache.reset()
		for _, i := range done {
			results[i].err = fmt.Errorf("sqlite: commit: %w", err)
		}
	}
}

// checkDataVersion drops the row cache if a connection other than the
// writer committed since the writer's last look: another process writing
// the same file. The batch holds the write lock from here to its commit, so
// nothing else can commit in between.
func (s *Store) checkDataVersion(sqlTx *sql.Tx) {
	var v int64
	if err := sqlTx.StmtContext(noCancel, s.stmts[qDataVersion]).QueryRowContext(noCancel).Scan(&v); err != nil {
		s.cache.reset()
		s.cache.dataVersion = -1
		return
	}
	if v != s.cache.dataVersion {
		s.cache.reset()
		s.cache.dataVersion = v
	}
}

// runJob runs one caller's fn, turning a panic into a result so the writer
// survives and the caller re-panics in its own goroutine.
func runJob(t *tx, j *txJob) (r txResult) {
	defer func() {
		if p := recover(); p != nil {
			r = txResult{panic: p}
		}
	}()
	return txResult{err: j.fn(t)}
}

// noCancel is the context every statement runs with. Statements run to
// completion once started (a caller that gave up is dropped before its
// transaction starts, see startJob): with a context that can be cancelled,
// the driver starts a goroutine per statement to watch it, which measured
// as a tenth of the writer's time.
var noCancel = context.Background()

// stmt returns query's prepared statement bound to this transaction. With
// one connection the statement prepared in Open is reused every time.
func (t *tx) stmt(query string) *sql.Stmt {
	if !t.wrote && !strings.HasPrefix(query, "SELECT") {
		t.wrote = true
	}
	if st, ok := t.bound[query]; ok {
		return st
	}
	st, ok := t.stmts[query]
	if !ok {
		// Every query is listed in allQueries; reaching this is a bug.
		panic("sqlite: query not prepared: " + query)
	}
	st = t.tx.StmtContext(noCancel, st)
	if t.bound != nil {
		t.bound[query] = st
	}
	return st
}

// prepareAll prepares every query the store runs on db into stmts. For the
// writer it must happen before any transaction: db.Prepare needs a free
// connection, and with one connection a running transaction holds it.
func prepareAll(ctx context.Context, db *sql.DB, stmts map[string]*sql.Stmt) error {
	for _, q := range allQueries() {
		st, err := db.PrepareContext(ctx, q)
		if err != nil {
			return fmt.Errorf("prepare %q: %w", q, err)
		}
		stmts[q] = st
	}
	return nil
}

// isConstraint reports whether err is a uniqueness or foreign-key violation.
func isConstraint(err error) bool {
	var se *msqlite.Error
	return errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_CONSTRAINT
}
