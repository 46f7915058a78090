package postgres

import (
	"context"
	"errors"
	"io"
	"net"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// One attempt's transaction on a pooled connection: lazy BEGIN, COMMIT,
// and how a broken connection or a failed statement is reported.

// tx is one attempt's transaction. BEGIN is sent lazily, at the first
// statement.
type tx struct {
	conn *pgxpool.Conn
	tx   pgx.Tx
	// readOnly: BEGIN READ ONLY at REPEATABLE READ (ReadTx). Otherwise
	// advisory locks were taken on the connection outside the transaction
	// (the writer lock) and must be released after it.
	readOnly bool
	// dbErr is the first error the database (or the connection) returned.
	dbErr      error
	broken     bool // dbErr means the connection is gone
	phase      string
	commitSent bool
}

// connBroken reports whether err means the connection is gone or the
// server is not serving.
func (t *tx) connBroken(err error) bool {
	if isUnavailableCode(err) {
		return true
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return false
	}
	var ne net.Error
	return t.conn.Conn().IsClosed() || errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

// fail records err as the transaction's database error (the first one wins).
func (t *tx) fail(phase string, err error) error {
	broken := t.connBroken(err)
	if t.dbErr == nil {
		t.dbErr, t.phase, t.broken = err, phase, broken
	}
	if broken {
		return unavailable(phase, err)
	}
	return readOnlyErr(err)
}

// begin sends BEGIN if it has not been sent yet.
func (t *tx) begin(ctx context.Context) (pgx.Tx, error) {
	if t.tx != nil {
		return t.tx, nil
	}
	if t.dbErr != nil {
		return nil, t.dbErr
	}
	opts := pgx.TxOptions{IsoLevel: pgx.Serializable}
	if t.readOnly {
		opts = pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}
	}
	ptx, err := t.conn.BeginTx(ctx, opts)
	if err != nil {
		return nil, t.fail("begin", err)
	}
	t.tx = ptx
	return ptx, nil
}

func (t *tx) commit(ctx context.Context) error {
	if t.tx == nil {
		return nil // nothing ran
	}
	t.commitSent = true
	if err := t.tx.Commit(ctx); err != nil {
		return t.fail("commit", err)
	}
	t.tx = nil
	return nil
}

// finish rolls back what is still open, releases session advisory locks
// and returns the connection to the pool (or destroys it if its state is
// unknown).
func (t *tx) finish(committed bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	healthy := !t.conn.Conn().IsClosed()
	if t.tx != nil {
		if err := t.tx.Rollback(ctx); err != nil && !errors.Is(err, pgx.ErrTxClosed) {
			healthy = false
		}
		t.tx = nil
	}
	if !t.readOnly && healthy {
		if _, err := t.conn.Exec(ctx, `SELECT pg_advisory_unlock_all()`); err != nil {
			healthy = false
		}
	}
	if !healthy || (!t.readOnly && t.conn.Conn().IsClosed()) {
		// Closing the connection is what releases its locks on the server.
		t.conn.Conn().Close(ctx)
	}
	t.conn.Release()
}

// query runs a statement that returns rows inside the transaction.
func (t *tx) query(ctx context.Context, what, sql string, args ...any) (pgx.Rows, error) {
	ptx, err := t.begin(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := ptx.Query(ctx, sql, args...)
	if err != nil {
		return nil, t.fail(what, err)
	}
	return rows, nil
}

// exec runs a statement without result rows and returns the rows affected.
func (t *tx) exec(ctx context.Context, what, sql string, args ...any) (int64, error) {
	ptx, err := t.begin(ctx)
	if err != nil {
		return 0, err
	}
	tag, err := ptx.Exec(ctx, sql, args...)
	if err != nil {
		return 0, t.fail(what, err)
	}
	return tag.RowsAffected(), nil
}

// queryRow scans one row; pgx.ErrNoRows is returned as is (not recorded).
func (t *tx) queryRow(ctx context.Context, what, sql string, args []any, dest ...any) error {
	ptx, err := t.begin(ctx)
	if err != nil {
		return err
	}
	err = ptx.QueryRow(ctx, sql, args...).Scan(dest...)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return t.fail(what, err)
	}
	return err
}
