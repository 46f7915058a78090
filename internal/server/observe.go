package server

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"time"

	"github.com/drawbridge/drawbridge/internal/audit/auditstore"
	"github.com/drawbridge/drawbridge/internal/inventory"
	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/metrics"
	"github.com/drawbridge/drawbridge/internal/provider/agenthub"
	"github.com/drawbridge/drawbridge/internal/store"
	"github.com/drawbridge/drawbridge/internal/webhook"
)

// This file connects the metrics and the state-change log to the server's
// parts through wrappers and the event stream, so the JIT service, the
// store and the hub stay unaware of them.

// timedStore times the JIT service's write transactions.
type timedStore struct {
	backend
	m *metrics.Metrics
}

func (t timedStore) InTx(ctx context.Context, fn func(jit.Tx) error) error {
	began := time.Now()
	err := t.backend.InTx(ctx, fn)
	t.m.ObserveStoreWrite(time.Since(began))
	return err
}

// issuingHub is the hub as a provider that also tells the metrics which
// snapshot version each Apply issued (snapshot issued → agent applied).
type issuingHub struct {
	*agenthub.Hub
	m *metrics.Metrics
}

func (h issuingHub) Apply(ctx context.Context, vm inventory.VM, d jit.Desired) (jit.Observed, error) {
	obs, err := h.Hub.Apply(ctx, vm, d)
	if err == nil {
		if snap, ok := h.Hub.Latest(vm.ID); ok {
			h.m.SnapshotIssued(vm.ID, snap.Version)
		}
	}
	return obs, err
}

// observedAgents is the hub as the API sees it (api.Agents), counting and
// logging agent streams and timing reports. Embedding keeps the hub's
// other methods (Connected).
type observedAgents struct {
	*agenthub.Hub
	m   *metrics.Metrics
	log *slog.Logger
}

func (a observedAgents) Subscribe(ctx context.Context, vmID string) (*agenthub.Subscription, error) {
	sub, err := a.Hub.Subscribe(ctx, vmID)
	if err != nil {
		return nil, err
	}
	a.m.AgentConnected()
	a.log.InfoContext(ctx, "agent connected", "vm", vmID)
	go func() {
		// The stream's context ends when its handler returns.
		<-ctx.Done()
		a.m.AgentDisconnected()
		a.log.Info("agent disconnected", "vm", vmID, "request_id", RequestIDFrom(ctx))
	}()
	return sub, nil
}

func (a observedAgents) Report(ctx context.Context, r agenthub.Report) error {
	err := a.Hub.Report(ctx, r)
	if err == nil {
		a.m.SnapshotReported(r.VM, r.Version)
	}
	return err
}

// fanOut publishes each batch of events to several sinks.
type fanOut []jit.EventSink

func (f fanOut) Publish(evs []jit.Event) {
	for _, s := range f {
		s.Publish(evs)
	}
}

// eventLog writes one info line per committed state change of a grant or
// request (requested, approved, denied, opened, closed).
type eventLog struct{ log *slog.Logger }

var eventMessages = map[jit.EventKind]string{
	jit.EventRequested: "request accepted", jit.EventApproved: "request approved",
	jit.EventDenied: "request denied", jit.EventOpened: "grant opened", jit.EventClosed: "grant closed",
}

func (l eventLog) Publish(evs []jit.Event) {
	if !l.log.Enabled(context.Background(), slog.LevelInfo) {
		return
	}
	for _, ev := range evs {
		msg := eventMessages[ev.Kind]
		if msg == "" {
			msg = "jit event " + string(ev.Kind)
		}
		if ev.Kind == jit.EventRequested && ev.Reason == jit.ReasonAwaitingApproval {
			msg = "request pending approval"
		}
		l.log.Info(msg, "jit_request", ev.RequestID, "grant", ev.GrantID, "vm", ev.VMID, "port", ev.Port,
			"protocol", ev.Protocol, "source", ev.Source, "principal", ev.Principal, "requestor", ev.Requestor,
			"reason", string(ev.Reason), "end", ev.EndTime.UTC().Format(time.RFC3339))
	}
}

// metricSources reads what the store already knows at each scrape.
func metricSources(st backend, hooks *webhook.Dispatcher) metrics.Sources {
	src := metrics.Sources{
		Grants: func(ctx context.Context, now time.Time) (map[string]metrics.GrantCounts, error) {
			out := map[string]metrics.GrantCounts{}
			err := st.ReadTx(ctx, func(tx jit.Tx) error {
				clear(out)
				gs, err := tx.ListGrants(ctx, jit.GrantFilter{ActiveOnly: true})
				if err != nil {
					return err
				}
				providers := map[string]string{}
				for _, g := range gs {
					key := strings.ToLower(g.VMID)
					p, ok := providers[key]
					if !ok {
						vm, err := inventory.GetVM(ctx, tx, g.VMID)
						switch {
						case err == nil:
							p = vm.Provider
						case errors.Is(err, store.ErrNotFound) || errors.Is(err, jit.ErrNotFound):
							p = "unknown"
						default:
							return err
						}
						providers[key] = p
					}
					c := out[p]
					c.Active++
					if !now.Before(g.EndTime) {
						c.PastEnd++
					}
					out[p] = c
				}
				return nil
			})
			return out, err
		},
		AuditRecords: func(ctx context.Context) (int64, error) {
			var n int64
			err := st.ObjectReadTx(ctx, func(o store.Objects) error {
				h, err := auditstore.ReadHead(ctx, o)
				n = h.Seq
				return err
			})
			return n, err
		},
	}
	if hooks != nil {
		src.Webhooks = func() metrics.WebhookCounts {
			s := hooks.Stats()
			return metrics.WebhookCounts{Delivered: s.Delivered, Failed: s.Failed, Dropped: s.Dropped, Retries: s.Retries}
		}
	}
	if q, ok := st.(interface{ WriterQueueDepth() int }); ok {
		src.WriterQueue = q.WriterQueueDepth
	}
	return src
}
