package server

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"github.com/drawbridge/drawbridge/internal/access"
	"github.com/drawbridge/drawbridge/internal/api"
	"github.com/drawbridge/drawbridge/internal/audit"
	"github.com/drawbridge/drawbridge/internal/audit/auditkey"
	"github.com/drawbridge/drawbridge/internal/auth"
	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/store/postgres"
)

// Default limits of refused calls (auth.RefusalLimiter): per principal and
// per source address per window. A source gets more than a principal since
// several principals may share it (a NAT, a bastion).
const (
	refusalWindow     = time.Minute
	refusalsPerPrinc  = 30
	refusalsPerSource = 120
)

// Defaults of the audit jobs: how often they run, and when a checkpoint
// is due (so many records, or so long, since the last one).
const (
	auditJobPeriod            = time.Second
	refusalFlushPeriod        = 5 * time.Second
	DefaultCheckpointEvery    = 1000
	DefaultCheckpointInterval = time.Minute
)

// EventCheckpoint is the webhook event of a signed checkpoint; its detail
// is the checkpoint's JSON.
const EventCheckpoint jit.EventKind = "audit.checkpoint"

func defaultRefusalLimiter() *auth.RefusalLimiter {
	return auth.NewRefusalLimiter(refusalWindow, refusalsPerPrinc, refusalsPerSource, 0)
}

// DefaultAuditKeyFile is where the checkpoint key lives when the
// configuration names no file: beside a SQLite database, or in the
// working directory for PostgreSQL.
func DefaultAuditKeyFile(db string) string {
	if postgres.IsDSN(db) {
		return "drawbridge.audit-key"
	}
	return filepath.Clean(db) + ".audit-key"
}

// checkpointer signs the audit log's head when enough records or time
// have passed since the last checkpoint.
type checkpointer struct {
	acc      *access.Store
	key      ed25519.PrivateKey
	every    int64
	interval time.Duration
	hooks    jit.EventSink // may be nil
	log      *slog.Logger

	last audit.Checkpoint // the latest stored (zero: none)
	// stopped is set when the log no longer matches the last checkpoint:
	// signing its head now would vouch for a rewritten log.
	stopped bool
}

// public returns the checkpoint key's public half.
func (c *checkpointer) public() ed25519.PublicKey { return c.key.Public().(ed25519.PublicKey) }

// tick signs the head if a checkpoint is due (force: whenever the head
// moved since the last one, as at shutdown).
func (c *checkpointer) tick(ctx context.Context, now time.Time, force bool) {
	h, err := c.acc.AuditHead(ctx)
	if err != nil || h.Seq == 0 || h.Seq == c.last.Seq && h.Hash == c.last.Hash {
		if err != nil {
			c.log.Error("audit checkpoint: read head", "err", err)
		}
		return
	}
	// Due: the first one at once, then every c.every records or
	// c.interval (a negative c.every: only when forced, at Close).
	if !force && (c.every < 0 || c.last.Seq > 0 && h.Seq-c.last.Seq < c.every && now.Sub(c.last.Time) < c.interval) {
		return
	}
	if c.stopped || !c.stillMatches(ctx) {
		return
	}
	cp := audit.SignCheckpoint(c.key, h.Seq, h.Hash, now)
	if err := c.acc.PutCheckpoint(ctx, cp); err != nil {
		c.log.Error("audit checkpoint: store", "seq", cp.Seq, "err", err)
		return
	}
	c.last = cp
	if c.hooks != nil {
		body, _ := json.Marshal(cp)
		c.hooks.Publish([]jit.Event{{Kind: EventCheckpoint, Time: cp.Time, Principal: jit.SystemPrincipal, Detail: string(body)}})
	}
}

// stillMatches reports whether the record of the last checkpoint is still
// there with the hash it signed (the chain after it was verified when it
// was written, record by record); if not, it logs the tampering once and
// stops signing until an operator looks.
func (c *checkpointer) stillMatches(ctx context.Context) bool {
	if c.last.Seq == 0 {
		return true
	}
	r, ok, err := c.acc.AuditRecord(ctx, c.last.Seq)
	if err != nil {
		c.log.Error("audit checkpoint: read record", "seq", c.last.Seq, "err", err)
		return false
	}
	if ok && r.Hash == c.last.Hash {
		return true
	}
	c.stopped = true
	c.log.Error("the audit log no longer matches its last signed checkpoint: records were edited or deleted; no further checkpoints are signed (run drawbridge audit verify --public-key)", "seq", c.last.Seq)
	return false
}

// startCheckpointer loads (or creates) the key and the latest checkpoint.
func startCheckpointer(ctx context.Context, cfg Config, acc *access.Store, hooks jit.EventSink) (*checkpointer, string, error) {
	path := cfg.AuditKeyFile
	if path == "" {
		path = DefaultAuditKeyFile(cfg.DBPath)
	}
	key, created, err := auditkey.LoadOrCreate(path)
	if err != nil {
		return nil, path, err
	}
	if created {
		cfg.Logger.Info("created the audit checkpoint key; give its public key to whoever verifies the log", "file", path, "public", path+".pub", "keyId", audit.KeyID(key.Public().(ed25519.PublicKey)))
	}
	c := &checkpointer{acc: acc, key: key, every: int64(cfg.CheckpointEvery), interval: cfg.CheckpointInterval, hooks: hooks, log: cfg.Logger}
	if c.every == 0 {
		c.every = DefaultCheckpointEvery
	}
	if c.interval <= 0 {
		c.interval = DefaultCheckpointInterval
	}
	last, ok, err := acc.LatestCheckpoint(ctx)
	if err != nil {
		return nil, path, fmt.Errorf("audit checkpoint: %w", err)
	}
	if ok {
		c.last = last
	}
	return c, path, nil
}

// runAuditJobs writes refused-call summaries and signed checkpoints until
// ctx ends, then both once more (the summaries first, so the last
// checkpoint covers them).
func runAuditJobs(ctx context.Context, wg *sync.WaitGroup, a *api.Server, cp *checkpointer) {
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(auditJobPeriod)
		defer t.Stop()
		var lastFlush time.Time
		for {
			select {
			case <-ctx.Done():
				bg := context.Background()
				a.FlushRefusals(bg, time.Now(), true)
				cp.tick(bg, time.Now(), true)
				return
			case now := <-t.C:
				if now.Sub(lastFlush) >= refusalFlushPeriod {
					a.FlushRefusals(ctx, now, false)
					lastFlush = now
				}
				cp.tick(ctx, now, false)
			}
		}
	}()
}
