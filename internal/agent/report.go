package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/drawbridge/drawbridge/internal/provider/agenthub"
)

// maxQueuedDrifts bounds the drift reports kept while the server is away.
const maxQueuedDrifts = 64

// queueReport hands rep to the report loop: the newest enforcement report
// replaces an unsent older one; a drift report is queued until sent.
func (a *Agent) queueReport(rep agenthub.Report) {
	a.repMu.Lock()
	if rep.Drift != nil {
		if len(a.driftReps) < maxQueuedDrifts {
			a.driftReps = append(a.driftReps, rep)
		}
	} else {
		a.report = &rep
	}
	a.repMu.Unlock()
	select {
	case a.repWake <- struct{}{}:
	default:
	}
}

// reportLoop sends queued drift reports and the newest enforcement report.
// A failed enforcement report is dropped (the next connection's snapshot
// is applied and reported again); a failed drift report waits for the next
// wake-up (every report, so at the latest the next snapshot's).
func (a *Agent) reportLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.repWake:
		}
		a.repMu.Lock()
		rep, drifts := a.report, a.driftReps
		a.report, a.driftReps = nil, nil
		a.repMu.Unlock()
		for i, d := range drifts {
			if err := a.send(ctx, d); err != nil {
				if ctx.Err() == nil {
					a.cfg.Logger.Warn("drift report failed; kept for later", "err", err)
				}
				a.repMu.Lock()
				a.driftReps = append(drifts[i:], a.driftReps...)[:min(maxQueuedDrifts, len(drifts[i:])+len(a.driftReps))]
				a.repMu.Unlock()
				break
			}
		}
		if rep == nil {
			continue
		}
		if err := a.send(ctx, *rep); err != nil && ctx.Err() == nil {
			a.cfg.Logger.Warn("report failed", "version", rep.Version, "err", err)
		}
	}
}

func (a *Agent) send(ctx context.Context, rep agenthub.Report) error {
	if rep.Enforced == nil {
		rep.Enforced = []string{}
	}
	body, err := json.Marshal(rep)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.cfg.Server+"/drawbridge/v1/agent/report", strings.NewReader(string(body)))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if a.cfg.Token != "" {
		req.Header.Set("Authorization", "Bearer "+a.cfg.Token)
	}
	resp, err := a.cfg.HTTP.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("report: %s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	return nil
}
