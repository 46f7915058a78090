package server

import (
	"context"
	"sync"
	"time"

	"github.com/drawbridge/drawbridge/internal/api"
	"github.com/drawbridge/drawbridge/internal/auth"
)

// Default limits of refused calls (auth.RefusalLimiter): per principal and
// per source address per window. A source gets more than a principal since
// several principals may share it (a NAT, a bastion).
const (
	refusalWindow      = time.Minute
	refusalsPerPrinc   = 30
	refusalsPerSource  = 120
	refusalFlushPeriod = 5 * time.Second
)

func defaultRefusalLimiter() *auth.RefusalLimiter {
	return auth.NewRefusalLimiter(refusalWindow, refusalsPerPrinc, refusalsPerSource, 0)
}

// runRefusalFlush writes the refused-call summaries of ended windows every
// period until ctx ends, then once more for what ended by then.
func runRefusalFlush(ctx context.Context, wg *sync.WaitGroup, a *api.Server, period time.Duration) {
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(period)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				a.FlushRefusals(context.Background(), time.Now())
				return
			case now := <-t.C:
				a.FlushRefusals(ctx, now)
			}
		}
	}()
}
