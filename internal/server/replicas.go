package server

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/provider/agenthub"
	"github.com/drawbridge/drawbridge/internal/store/postgres"
)

// followMaxWait bounds how long the cross-replica expiry follower sleeps
// without re-reading the earliest end time (a safety net for a missed
// notification; notifications normally wake it).
const followMaxWait = 5 * time.Second

// startReplicaJobs runs what a replica on a shared PostgreSQL database needs
// besides the usual jobs, when st is one (nothing otherwise):
//   - an agent streaming from this replica hears about a change made through
//     any other replica: every committed change to a VM is announced
//     (NOTIFY), and a VM with an agent connected here is reconciled, which
//     hands its new desired state to the hub and on to the agent;
//   - grants made through a replica that has since died still expire on
//     time: the expiry follower sleeps until the earliest end time in the
//     database and is woken by every announcement.
func startReplicaJobs(ctx context.Context, wg *sync.WaitGroup, st backend, svc *jit.Service, hub *agenthub.Hub, log *slog.Logger) {
	ps, ok := st.(*postgres.Store)
	if !ok {
		return
	}
	wake := make(chan struct{}, 1)
	changed := make(chan string, 256)
	wg.Add(3)
	go func() {
		defer wg.Done()
		defer close(changed)
		ps.Follow(ctx, func(vm string) {
			select {
			case wake <- struct{}{}:
			default:
			}
			if vm != "" && hub.Connected(vm) {
				select {
				case changed <- vm:
				default:
					// Full: the resync job catches up later.
				}
			}
		})
	}()
	go func() {
		defer wg.Done()
		for vm := range changed {
			if err := svc.ReconcileVM(ctx, vm); err != nil && ctx.Err() == nil {
				log.Warn("reconcile after a change on another replica", "vm", vm, "err", err)
			}
		}
	}()
	go func() {
		defer wg.Done()
		postgres.RunExpiryFollower(ctx, svc, func() time.Time { return svc.Clock().Now() }, wake, followMaxWait,
			func(err error) { log.Error("expiry (follower)", "err", err) })
	}()
}
