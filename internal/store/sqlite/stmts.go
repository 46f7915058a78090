package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	msqlite "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// noCancel is the context every statement runs with. Statements run to
// completion once started (a caller that gave up is dropped before its
// transaction starts, see startJob): with a context that can be cancelled,
// the driver starts a goroutine per statement to watch it, which measured
// as a tenth of the writer's time.
var noCancel = context.Background()

// stmt returns query's prepared statement bound to this transaction. With
// one connection the statement prepared in Open is reused every time.
// (Binding each statement once per group commit, rather than per use,
// measured within noise and was deleted; BENCHMARKS.md.)
func (t *tx) stmt(query string) *sql.Stmt {
	if !t.wrote && !strings.HasPrefix(query, "SELECT") {
		t.wrote = true
	}
	st, ok := t.stmts[query]
	if !ok {
		// Every query is listed in allQueries; reaching this is a bug.
		panic("sqlite: query not prepared: " + query)
	}
	return t.tx.StmtContext(noCancel, st)
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
