package jit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/drawbridge/drawbridge/internal/store"
)

// Object kinds in which drawbridge kept requests that needed approval
// before they became request and grant rows: pending ones, and decided
// ones. Only UpgradeApprovalObjects reads them.
const (
	legacyKindPending = "jit.pending"
	legacyKindDecided = "jit.decided"
)

// UpgradeApprovals runs UpgradeApprovalObjects on st if it holds any
// approval objects of older versions. It looks first in a read
// transaction, so that opening a store without any (every store written
// by this version) writes nothing.
func UpgradeApprovals(ctx context.Context, st Store) error {
	found := false
	err := st.ReadTx(ctx, func(tx Tx) error {
		found = false
		for _, kind := range []string{legacyKindPending, legacyKindDecided} {
			err := tx.ListObjects(ctx, kind, func(string, []byte) error { found = true; return nil })
			if err != nil || found {
				return err
			}
		}
		return nil
	})
	if err != nil || !found {
		return err
	}
	return st.InTx(ctx, func(tx Tx) error {
		_, err := UpgradeApprovalObjects(ctx, tx)
		return err
	})
}

// UpgradeApprovalObjects moves the requests that needed approval out of
// the objects older drawbridge kept them in and onto request and grant
// rows with approval records, so that an upgraded server keeps its pending
// requests and shows its decided ones. A request still pending or denied
// or lapsed gets its row and grant rows as the object had them (Pending;
// Revoked with reason Denied or ApprovalLapsed); an approved one already
// has its rows (inserted when it opened) and gets its approval record. The
// objects are deleted, so a second run finds nothing to do. Stores run it
// (through UpgradeApprovals) once migrated, when they open; it returns how
// many requests it moved.
func UpgradeApprovalObjects(ctx context.Context, tx Tx) (int, error) {
	n := 0
	for _, kind := range []string{legacyKindPending, legacyKindDecided} {
		var ps []PendingRequest
		err := tx.ListObjects(ctx, kind, func(key string, body []byte) error {
			var p PendingRequest
			if err := json.Unmarshal(body, &p); err != nil {
				return fmt.Errorf("%s %s: %w", kind, key, err)
			}
			if p.Request.ID != key {
				return fmt.Errorf("%s %s holds request %q", kind, key, p.Request.ID)
			}
			ps = append(ps, p)
			return nil
		})
		if err != nil {
			return n, fmt.Errorf("upgrade approvals: %w", err)
		}
		for _, p := range ps {
			if err := upgradeApproval(ctx, tx, p); err != nil {
				return n, fmt.Errorf("upgrade approvals: request %s: %w", p.Request.ID, err)
			}
			if err := tx.DeleteObject(ctx, kind, p.Request.ID); err != nil {
				return n, err
			}
			n++
		}
	}
	return n, nil
}

func upgradeApproval(ctx context.Context, tx Tx, p PendingRequest) error {
	err := tx.PutApproval(ctx, p.Request.ID, p.ApprovalRecord)
	if !errors.Is(err, store.ErrNotFound) {
		return err // approved: its rows are there already
	}
	if p.State == ApprovalApproved {
		// Approved without a request row of that ID: its grants (if any)
		// live under other IDs, so only the record is kept.
		p.Request.Grants = nil
	}
	if err := tx.InsertRequest(ctx, p.Request); err != nil {
		return err
	}
	return tx.PutApproval(ctx, p.Request.ID, p.ApprovalRecord)
}
