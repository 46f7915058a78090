package client

import (
	"context"
	"crypto/ed25519"
	"fmt"

	"github.com/drawbridge/drawbridge/internal/audit"
	"github.com/drawbridge/drawbridge/internal/audit/auditstore"
)

// VerifyCheckpoints reads the whole log a page at a time, checks its hash
// chain here (not trusting the server's verdict) and checks it against
// every checkpoint, whose signatures must verify under pub. A failure is
// recorded in rep (OK false); the error is for what stopped the check
// itself.
func (c *Client) VerifyCheckpoints(ctx context.Context, pub ed25519.PublicKey, rep *auditstore.Report) error {
	cps, err := c.AuditCheckpoints(ctx)
	if err != nil {
		return err
	}
	fail := func(e *audit.VerifyError) error {
		rep.OK, rep.Error, rep.BadSeq = false, e.Error(), e.Seq
		return nil
	}
	cv, err := audit.NewCheckpointVerifier(pub, cps)
	if err != nil {
		rep.OK, rep.Error = false, err.Error()
		return nil
	}
	var chain audit.Verifier
	var bad *audit.VerifyError
	err = c.AuditPages(ctx, AuditFilter{}, func(page []audit.Record) error {
		for _, r := range page {
			if bad = chain.Next(r); bad != nil {
				return bad
			}
			if bad = cv.Record(r); bad != nil {
				return bad
			}
		}
		return nil
	})
	if bad != nil {
		return fail(bad)
	}
	if err != nil {
		return err
	}
	if bad := cv.Finish(chain.Last()); bad != nil {
		return fail(bad)
	}
	if chain.Count() > 0 && len(cps) == 0 {
		rep.OK, rep.Error = false, fmt.Sprintf("the log has %d records but no signed checkpoint: the server signs one every 1000 records, every minute and when it stops, so they were deleted (or the server never ran with a key)", chain.Count())
		return nil
	}
	rep.Checkpoints = cv.Matched()
	if len(cps) > 0 {
		rep.LatestCheckpoint = cps[len(cps)-1].Seq
	}
	return nil
}
