package access

import (
	"context"
	"crypto/ed25519"

	"github.com/drawbridge/drawbridge/internal/audit"
	"github.com/drawbridge/drawbridge/internal/audit/auditstore"
	"github.com/drawbridge/drawbridge/internal/store"
)

// AuditPage returns one page of the records matching f from cur (nil: the
// first page) and the cursor of the next (nil at the end), in one read
// transaction (auditstore.Page) meant for long scans (store.ScanReadTx).
func (s *Store) AuditPage(ctx context.Context, f auditstore.Filter, cur *auditstore.Cursor, size int) ([]audit.Record, *auditstore.Cursor, error) {
	var out []audit.Record
	var next *auditstore.Cursor
	err := store.ScanReadTx(ctx, s.st, func(o store.Objects) error {
		var err error
		out, next, err = auditstore.Page(ctx, o, f, cur, size)
		return err
	})
	return out, next, err
}

// AuditNewest returns the newest size records matching f up to seq upTo
// (0: the head), newest first, and the bound of the older page
// (auditstore.NewestPage). It scans the log, so it reads on the store's
// scan path (store.ScanReadTx).
func (s *Store) AuditNewest(ctx context.Context, f auditstore.Filter, upTo int64, size int) ([]audit.Record, int64, error) {
	var out []audit.Record
	var older int64
	err := store.ScanReadTx(ctx, s.st, func(o store.Objects) error {
		var err error
		out, older, err = auditstore.NewestPage(ctx, o, f, upTo, size)
		return err
	})
	return out, older, err
}

// AuditHead returns the audit log's head.
func (s *Store) AuditHead(ctx context.Context) (auditstore.Head, error) {
	var h auditstore.Head
	err := s.st.ObjectReadTx(ctx, func(o store.Objects) error {
		var err error
		h, err = auditstore.ReadHead(ctx, o)
		return err
	})
	return h, err
}

// PutCheckpoint stores a signed checkpoint of the log.
func (s *Store) PutCheckpoint(ctx context.Context, c audit.Checkpoint) error {
	return s.st.ObjectTx(ctx, func(o store.Objects) error { return auditstore.PutCheckpoint(ctx, o, c) })
}

// LatestCheckpoint returns the newest signed checkpoint; ok false if none.
func (s *Store) LatestCheckpoint(ctx context.Context) (c audit.Checkpoint, ok bool, err error) {
	err = s.st.ObjectReadTx(ctx, func(o store.Objects) error {
		var err error
		c, ok, err = auditstore.LatestCheckpoint(ctx, o)
		return err
	})
	return c, ok, err
}

// Checkpoints returns every signed checkpoint in seq order.
func (s *Store) Checkpoints(ctx context.Context) ([]audit.Checkpoint, error) {
	var out []audit.Checkpoint
	err := s.st.ObjectReadTx(ctx, func(o store.Objects) error {
		var err error
		out, err = auditstore.Checkpoints(ctx, o)
		return err
	})
	return out, err
}

// AuditRecord returns the audit record with sequence number seq; ok false
// if there is none.
func (s *Store) AuditRecord(ctx context.Context, seq int64) (r audit.Record, ok bool, err error) {
	err = s.st.ObjectReadTx(ctx, func(o store.Objects) error {
		var err error
		r, ok, err = auditstore.RecordAt(ctx, o, seq)
		return err
	})
	return r, ok, err
}

// VerifyAuditWithKey checks the whole stored log and, with pub, every
// signed checkpoint against it (auditstore.VerifyWithKey).
func (s *Store) VerifyAuditWithKey(ctx context.Context, pub ed25519.PublicKey) (auditstore.Report, error) {
	var rep auditstore.Report
	err := store.ScanReadTx(ctx, s.st, func(o store.Objects) error {
		var err error
		rep, err = auditstore.VerifyWithKey(ctx, o, pub)
		return err
	})
	return rep, err
}
