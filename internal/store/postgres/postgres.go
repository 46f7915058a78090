// Package postgres is drawbridge's shared persistence for several server
// replicas: the same tables and semantics as the SQLite store, on
// PostgreSQL through pgx v5 (pgxpool). *Store implements jit.Store and
// store.ObjectStore and passes the same conformance suite (storetest).
//
// Concurrency across replicas:
//   - writing transactions take turns: each first takes one cluster-wide
//     advisory lock (the writer lock, before BEGIN so its snapshot is taken
//     after the wait). Every write appends to the audit chain and so
//     updates its head, so two writers could never both commit anyway;
//     letting them run side by side only turned the loser's work into a
//     serialisation failure, a backoff and a retry, and under load made
//     latency unpredictable (expiry up to 3 s late in the kill-a-replica
//     test, now under 15 ms, with twice the requests accepted);
//   - every transaction runs at SERIALIZABLE all the same; one that fails
//     with a serialisation failure or a deadlock is rolled back and fn runs
//     again (bounded, with jittered backoff), so callers never see them;
//   - except read-only ones (ReadTx, ObjectReadTx): READ ONLY at REPEATABLE
//     READ, one snapshot for the whole transaction, which takes no
//     predicate locks and never makes a writer fail to serialise; the
//     server refuses any write in it, so nothing fn does is kept;
//   - DueGrants claims its rows with FOR UPDATE SKIP LOCKED, so replicas
//     expiring at the same moment take disjoint grants; a replica that dies
//     holding a claim releases it when its connection drops.
//
// A database that cannot be reached, or a connection lost mid-transaction,
// gives errors wrapping store.ErrUnavailable; the pool reconnects by itself
// when the database is back.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/store"
)

// Store is an open PostgreSQL database, safe for concurrent use.
type Store struct {
	pool *pgxpool.Pool

	// Retries counts transaction attempts that were rolled back and run
	// again (serialisation failures, deadlocks, a connection that broke
	// before anything was sent); for tests and benchmarks.
	retries atomic.Int64
}

var (
	_ jit.Store         = (*Store)(nil)
	_ store.ObjectStore = (*Store)(nil)
)

// maxAttempts bounds how often one InTx runs fn. Conflicts between a few
// replicas on one VM resolve in a handful of attempts; this many means
// something is wrong, and the caller gets the error.
const maxAttempts = 40

// writerLockKey is the advisory lock every writing transaction holds, from
// before its BEGIN to after its end (see the package doc and inTx).
const writerLockKey = 0x6472617772657479 // "drawrety"

// connectTimeout bounds Open's first contact with the database.
const connectTimeout = 10 * time.Second

// IsDSN reports whether s names a PostgreSQL database (postgres:// or
// postgresql:// URL) rather than a SQLite file.
func IsDSN(s string) bool {
	l := strings.ToLower(s)
	return strings.HasPrefix(l, "postgres://") || strings.HasPrefix(l, "postgresql://")
}

// Open connects to the database named by dsn (a postgres:// URL or a
// key=value connection string; pool_max_conns and the other pgxpool
// parameters are honoured) and brings its schema up to date. A database
// that cannot be reached is an error naming the host, never a hang:
// Open gives up after connectTimeout unless ctx ends first.
func Open(ctx context.Context, dsn string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgx's parse errors can echo the DSN; do not print passwords.
		return nil, fmt.Errorf("postgres: invalid connection string: %v", redact(err.Error(), dsn))
	}
	if !strings.Contains(dsn, "pool_max_conns") {
		cfg.MaxConns = 16
	}
	if cfg.ConnConfig.ConnectTimeout == 0 || cfg.ConnConfig.ConnectTimeout > connectTimeout {
		cfg.ConnConfig.ConnectTimeout = connectTimeout
	}
	where := fmt.Sprintf("%s:%d/%s", cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.Database)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: %s: %w", where, err)
	}
	pctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	if err := pool.Ping(pctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: cannot reach database %s: %w: %v", where, store.ErrUnavailable, err)
	}
	if err := migrate(pctx, pool); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: %s: %w", where, err)
	}
	s := &Store{pool: pool}
	if err := jit.UpgradeApprovals(pctx, s); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: %s: %w", where, err)
	}
	return s, nil
}

func redact(msg, dsn string) string {
	if i := strings.Index(dsn, "://"); i >= 0 {
		if at := strings.LastIndex(dsn, "@"); at > i {
			if colon := strings.Index(dsn[i+3:at], ":"); colon >= 0 {
				pw := dsn[i+3+colon+1 : at]
				if pw != "" {
					msg = strings.ReplaceAll(msg, pw, "xxxxx")
				}
			}
		}
	}
	return msg
}

// Close closes every connection. Transactions in progress finish first.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

// Pool returns the connection pool (for LISTEN/NOTIFY and tests).
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Retries returns how many transaction attempts were rolled back and retried.
func (s *Store) Retries() int64 { return s.retries.Load() }

// InTx runs fn in one SERIALIZABLE transaction and commits if fn returns
// nil; otherwise (or if fn panics) nothing fn wrote is kept. fn may run more
// than once: on a serialisation failure or deadlock the attempt is rolled
// back and fn runs again, so fn must not have effects outside the
// transaction that a second run would repeat.
func (s *Store) InTx(ctx context.Context, fn func(jit.Tx) error) error {
	return s.inTx(ctx, false, func(t *tx) error { return fn(t) })
}

// ObjectTx is InTx for callers that only need the object storage.
func (s *Store) ObjectTx(ctx context.Context, fn func(store.Objects) error) error {
	return s.inTx(ctx, false, func(t *tx) error { return fn(t) })
}

// ReadTx runs fn in one READ ONLY transaction at REPEATABLE READ: every
// statement sees the snapshot taken at the first, and it runs side by
// side with any other transaction (it waits for no lock a writer holds).
// A write fails with an error wrapping store.ErrReadOnly (the
// server refuses writes), so nothing fn does is kept. fn may run again on a
// new connection if the first one broke, as with InTx.
func (s *Store) ReadTx(ctx context.Context, fn func(jit.Tx) error) error {
	return s.inTx(ctx, true, func(t *tx) error { return fn(t) })
}

// ObjectReadTx is ReadTx for callers that only read objects.
func (s *Store) ObjectReadTx(ctx context.Context, fn func(store.Objects) error) error {
	return s.inTx(ctx, true, func(t *tx) error { return fn(t) })
}

func (s *Store) inTx(ctx context.Context, readOnly bool, fn func(*tx) error) error {
	backoff := time.Millisecond
	reconnects := 0
	for attempt := 1; ; attempt++ {
		err, retry := s.attempt(ctx, fn, readOnly)
		if err == nil {
			return nil
		}
		if retry && errors.Is(err, store.ErrUnavailable) {
			// A connection that broke (say the pool held one the server
			// had closed) is worth one more try on a new connection; a
			// database that is down fails fast with ErrUnavailable.
			reconnects++
			retry = reconnects <= 1
		}
		if !retry || attempt >= maxAttempts || ctx.Err() != nil {
			return err
		}
		s.retries.Add(1)
		// Full jitter: replicas that collided do not collide again in step.
		d := time.Duration(rand.Int64N(int64(backoff))) + 100*time.Microsecond
		backoff = min(backoff*2, 100*time.Millisecond)
		timer := time.NewTimer(d)
		select {
		case <-ctx.Done():
			timer.Stop()
			return err
		case <-timer.C:
		}
	}
}

// attempt runs fn once. It returns fn's (or the database's) error and
// whether running fn again may succeed.
func (s *Store) attempt(ctx context.Context, fn func(*tx) error, readOnly bool) (err error, retry bool) {
	if err := ctx.Err(); err != nil {
		return err, false
	}
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return err, false
		}
		return unavailable("connect", err), false
	}
	t := &tx{conn: conn, readOnly: readOnly}
	if !readOnly {
		// Writers take turns on every attempt (see the package doc); a
		// read-only transaction never queues here. Before BEGIN, so the
		// snapshot is taken after the wait.
		if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, int64(writerLockKey)); err != nil {
			t.fail("writer lock", err)
			t.finish(false)
			if t.broken {
				return unavailable("writer lock", err), false
			}
			return err, isRetryable(err)
		}
	}
	done := false
	defer func() {
		if !done {
			// fn panicked: roll back, then let the panic go on.
			t.finish(false)
		}
	}()
	ferr := fn(t)
	if ferr == nil && t.dbErr != nil {
		// fn went on past a failed statement (and returned nil): the
		// transaction was aborted at that statement, so nothing after it
		// ran and nothing of it can commit.
		ferr = fmt.Errorf("postgres: transaction aborted: %w", readOnlyErr(t.dbErr))
	}
	if ferr == nil {
		// A READ ONLY transaction cannot have written anything (the
		// server refuses it), so ending it with COMMIT keeps nothing; it
		// keeps pg_stat_database's rollback count a count of failures.
		ferr = t.commit(ctx)
	}
	done = true
	t.finish(ferr == nil)
	if ferr == nil {
		return nil, false
	}
	// The first database error decides: once a statement fails the
	// transaction is aborted, and whatever fn made of that error (it may
	// have wrapped it as a conflict or dropped it) is a consequence.
	dbErr := t.dbErr
	if dbErr == nil {
		return ferr, false
	}
	switch {
	case isRetryable(dbErr):
		return ferr, true
	case t.broken:
		// The server rolls back a transaction whose connection drops, so
		// fn may run again on a new connection unless COMMIT was sent:
		// a broken COMMIT has an unknown outcome.
		return unavailable(t.phase, dbErr), !t.commitSent
	}
	return ferr, false
}

func unavailable(what string, err error) error {
	return fmt.Errorf("postgres: %s: %w: %v", what, store.ErrUnavailable, err)
}

// isRetryable: serialization_failure and deadlock_detected.
func isRetryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40001" || pe.Code == "40P01")
}

// readOnlyErr makes read_only_sql_transaction (a write in ReadTx) an
// error that also wraps store.ErrReadOnly; other errors are returned as is.
func readOnlyErr(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "25006" {
		return fmt.Errorf("%w: %w", store.ErrReadOnly, err)
	}
	return err
}

// isUnavailableCode: connection exceptions, the server shutting down or
// starting, too many connections.
func isUnavailableCode(err error) bool {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return false
	}
	return strings.HasPrefix(pe.Code, "08") || pe.Code == "57P01" || pe.Code == "57P02" || pe.Code == "57P03" || pe.Code == "53300"
}
