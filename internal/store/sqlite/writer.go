package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// maxBatch bounds how many transactions share one commit; it is also how
// many may queue for the writer without their callers blocking on the send.
// (One commit for many transactions is what makes the writer fast enough;
// a buffered queue spares each caller a rendezvous with it.)
const maxBatch = 64

var errStoreClosed = errors.New("sqlite: store is closed")

// txJob is one caller's transaction waiting for the writer.
type txJob struct {
	ctx  context.Context
	fn   func(txn) error
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
// in a savepoint of its own (runJobs). The
// batch's COMMIT is what makes each caller's writes durable, so InTx
// returns only after it. Since transactions already ran one
// at a time on the single connection, callers see the same isolation as
// before; what they share is the cost of the commit (writing the WAL), which
// was a third of a request's time.
func (s *Store) inTx(ctx context.Context, fn func(txn) error) error {
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
	if rerun, again := s.runJobs(batch, all, results, false); again {
		s.runJobs(batch, rerun, results, true)
	}
}

// runJobs runs the jobs of batch named by idx in one SQLite transaction
// and commits them, recording each outcome in results.
//
// The first try runs them without savepoints: a savepoint per job costs
// about a tenth of the writer's time (SQLite copies every page a job
// first changes into the savepoint's journal), and jobs rarely fail after
// writing: most refusals are found before the first write, and a job that
// wrote nothing needs nothing undone. When one does fail after writing,
// runJobs rolls the whole transaction back, keeps that job's failure, and
// returns the jobs to run again (those that had succeeded, then those not
// yet run) with again set; jit.Store and store.ObjectStore allow a backend
// to run fn more than once.
//
// The rerun (savepoints set) is the slower, always-safe path: each job
// runs inside its own savepoint, and one that fails (or panics) is rolled
// back to it and affects no other.
func (s *Store) runJobs(batch []*txJob, idx []int, results []txResult, savepoints bool) (rerun []int, again bool) {
	sqlTx, ok := s.beginBatch(idx, results)
	if !ok {
		return nil, false
	}
	var done []int
	for k, i := range idx {
		t, view := s.startJob(batch[i], &results[i], sqlTx)
		if t == nil {
			continue
		}
		if savepoints {
			if _, err := t.stmt(qSavepoint).ExecContext(noCancel); err != nil {
				results[i].err = fmt.Errorf("sqlite: savepoint: %w", err)
				continue
			}
		}
		results[i] = runJob(view, batch[i])
		if results[i].err != nil || results[i].panic != nil {
			switch {
			case savepoints:
				s.cache.reset() // it holds what the savepoint is about to undo
				if _, err := sqlTx.ExecContext(context.Background(), "ROLLBACK TO job; RELEASE job"); err != nil {
					// The savepoint could not be undone: nothing in this
					// batch can be trusted, so none of it is kept.
					_ = sqlTx.Rollback()
					failAll(idx, results, fmt.Errorf("sqlite: rollback to savepoint: %w", err))
					return nil, false
				}
			case t.wrote:
				_ = sqlTx.Rollback()
				s.cache.reset() // it holds what the rollback undid
				return append(done, idx[k+1:]...), true
			}
			continue
		}
		if savepoints {
			if _, err := t.stmt(qRelease).ExecContext(noCancel); err != nil {
				results[i].err = fmt.Errorf("sqlite: release savepoint: %w", err)
				_ = sqlTx.Rollback()
				s.cache.reset()
				failAll(idx, results, results[i].err)
				return nil, false
			}
		}
		done = append(done, i)
	}
	s.commitBatch(sqlTx, done, results)
	return nil, false
}

// startJob returns the transaction job j runs in, and what j's function
// sees of it: the transaction through the row cache (cachedTx), or as it
// is if the store has no cache. Both are nil, with j's context error as
// its result r, if its caller gave up.
func (s *Store) startJob(j *txJob, r *txResult, sqlTx *sql.Tx) (*tx, txn) {
	if err := j.ctx.Err(); err != nil {
		r.err = err
		return nil, nil
	}
	t := &tx{tx: sqlTx, stmts: s.stmts, memo: s.memo}
	if s.cache == nil {
		return t, t
	}
	return t, &cachedTx{tx: t, c: s.cache}
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
// If it cannot begin, every job of idx gets the error and ok is false.
func (s *Store) beginBatch(idx []int, results []txResult) (sqlTx *sql.Tx, ok bool) {
	sqlTx, err := s.db.BeginTx(context.Background(), nil)
	if err != nil {
		for _, i := range idx {
			results[i].err = fmt.Errorf("sqlite: begin: %w", err)
		}
		return nil, false
	}
	s.cache.sync(sqlTx, s.stmts[qDataVersion])
	return sqlTx, true
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

// runJob runs one caller's fn, turning a panic into a result so the writer
// survives and the caller re-panics in its own goroutine.
func runJob(t txn, j *txJob) (r txResult) {
	defer func() {
		if p := recover(); p != nil {
			r = txResult{panic: p}
		}
	}()
	return txResult{err: j.fn(t)}
}
