package postgres

import "github.com/jackc/pgx/v5"

// rows adapts pgx's rows to jitrows.Rows: errors reading them are the
// transaction's (t.fail), as every other read's are.
type rows struct {
	pgx.Rows
	t    *tx
	what string
}

func (t *tx) rows(r pgx.Rows, what string) rows { return rows{r, t, what} }

func (r rows) Scan(dest ...any) error { return r.failed(r.Rows.Scan(dest...)) }
func (r rows) Err() error             { return r.failed(r.Rows.Err()) }
func (r rows) Close() error           { r.Rows.Close(); return nil }

func (r rows) failed(err error) error {
	if err != nil {
		return r.t.fail(r.what, err)
	}
	return nil
}
