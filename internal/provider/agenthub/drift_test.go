package agenthub

import (
	"context"
	"testing"
	"time"
)

// TestDriftReportRecordedEvenIfStale: a report carrying a drift reaches the
// DriftRecorder whatever its version; its enforcement part obeys the usual
// version rules.
func TestDriftReportRecordedEvenIfStale(t *testing.T) {
	ctx := context.Background()
	h := New()
	var drifts []Drift
	h.SetDriftRecorder(func(_ context.Context, vm string, d Drift) error {
		if vm != host.ID {
			t.Errorf("drift for %s", vm)
		}
		drifts = append(drifts, d)
		return nil
	})
	var reports int
	h.SetReporter(func(context.Context, string, []string, string) error { reports++; return nil })
	if _, err := h.Apply(ctx, host, desired("g1")); err != nil {
		t.Fatal(err)
	}
	d := &Drift{Time: time.Now(), Found: "delete table x1 by nft[1]", Restored: "all"}
	if err := h.Report(ctx, Report{VM: host.ID, Version: 0, Drift: d}); err != nil {
		t.Fatal(err)
	}
	if len(drifts) != 1 || reports != 0 || h.Drifts(host.ID) != 1 {
		t.Fatalf("drifts %v, reports %d, count %d; want the drift recorded and no enforcement report", drifts, reports, h.Drifts(host.ID))
	}
}
