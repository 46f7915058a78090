package auditstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/drawbridge/drawbridge/internal/audit"
	"github.com/drawbridge/drawbridge/internal/store"
)

// Object kinds of signed checkpoints: every one, keyed by Key(seq), and
// the latest under latestKey.
const (
	KindCheckpoint       = "audit.checkpoint"
	KindLatestCheckpoint = "audit.checkpoint.latest"
	latestKey            = "latest"
)

// PutCheckpoint stores c, and as the latest if it is newer than the
// stored latest.
func PutCheckpoint(ctx context.Context, objs store.Objects, c audit.Checkpoint) error {
	if err := objs.PutObject(ctx, KindCheckpoint, Key(c.Seq), c); err != nil {
		return fmt.Errorf("audit: store checkpoint %d: %w", c.Seq, err)
	}
	latest, ok, err := LatestCheckpoint(ctx, objs)
	if err != nil || (ok && latest.Seq > c.Seq) {
		return err
	}
	if err := objs.PutObject(ctx, KindLatestCheckpoint, latestKey, c); err != nil {
		return fmt.Errorf("audit: store checkpoint %d: %w", c.Seq, err)
	}
	return nil
}

// LatestCheckpoint returns the newest stored checkpoint; ok false if none.
func LatestCheckpoint(ctx context.Context, objs store.Objects) (c audit.Checkpoint, ok bool, err error) {
	err = objs.GetObject(ctx, KindLatestCheckpoint, latestKey, &c)
	if errors.Is(err, store.ErrNotFound) {
		return c, false, nil
	}
	return c, err == nil, err
}

// Checkpoints returns every stored checkpoint in seq order (one per
// CheckpointEvery records or so: a thousandth of the log's length).
func Checkpoints(ctx context.Context, objs store.Objects) ([]audit.Checkpoint, error) {
	var out []audit.Checkpoint
	err := objs.ListObjects(ctx, KindCheckpoint, func(key string, body []byte) error {
		var c audit.Checkpoint
		if err := json.Unmarshal(body, &c); err != nil {
			return fmt.Errorf("audit: checkpoint %s: %w", key, err)
		}
		out = append(out, c)
		return nil
	})
	return out, err
}

// RecordAt returns the stored record with sequence number seq; ok false
// if there is none.
func RecordAt(ctx context.Context, objs store.Objects, seq int64) (r audit.Record, ok bool, err error) {
	err = recordsAfter(ctx, objs, seq-1, 1, func(key string, body []byte) error {
		if key != Key(seq) {
			return nil
		}
		ok = true
		return json.Unmarshal(body, &r)
	})
	return r, ok, err
}
