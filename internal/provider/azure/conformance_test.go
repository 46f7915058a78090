package azure_test

import (
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/cloudsim/armsim"
	"github.com/drawbridge/drawbridge/internal/netrule"
	"github.com/drawbridge/drawbridge/internal/provider/azure"
	"github.com/drawbridge/drawbridge/internal/provider/providertest"
)

// wireCloud is the ARM simulator's state.
type wireCloud struct{ s *armsim.Server }

func (c wireCloud) NSG(t testing.TB, id string) netrule.NSG {
	t.Helper()
	n, ok := c.s.NSG(id)
	if !ok {
		t.Fatalf("NSG %s not in the simulator", id)
	}
	return n
}

func (c wireCloud) DeleteRule(t testing.TB, nsgID, name string) {
	t.Helper()
	if !c.s.DeleteRule(nsgID, name) {
		t.Fatalf("NSG %s has no rule %s", nsgID, name)
	}
}

// wireFaults is what the suite's "under faults" run injects: a third of
// all requests throttled, failed or dropped (some after the write landed).
var wireFaults = armsim.Faults{ThrottleRate: 0.15, ErrorRate: 0.08, DropRate: 0.04, DropAfterRate: 0.06, SlowRate: 0.05, Slow: 20 * time.Millisecond, Seed: 42}

func startSim(t testing.TB, o armsim.Options) *armsim.Server {
	t.Helper()
	s, err := armsim.Start(o, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func newProvider(t testing.TB, s *armsim.Server) *azure.Provider {
	t.Helper()
	p, err := azure.New(azure.Config{Credential: armsim.StaticToken("test-token"), ClientOptions: s.ClientOptions(), PollFrequency: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestConformance runs the provider conformance suite on the azure provider
// through the SDK's HTTP pipeline against the ARM wire simulator.
func TestConformance(t *testing.T) {
	providertest.Run(t, func(t *testing.T) providertest.Harness {
		s := startSim(t, armsim.Options{AsyncPolls: 1, PageSize: 2})
		s.Load(providertest.Inventory())
		return providertest.Harness{
			Provider: newProvider(t, s),
			Cloud:    wireCloud{s},
			Faults: func(on bool) {
				if on {
					s.SetFaults(wireFaults)
					t.Cleanup(func() {
						fc := s.FaultCounts()
						t.Logf("faults injected: %+v", fc)
						if fc.Throttled == 0 || fc.Errors == 0 || fc.Dropped+fc.DroppedAfter == 0 {
							t.Errorf("the run under faults injected too few: %+v", fc)
						}
					})
				} else {
					s.SetFaults(armsim.Faults{})
				}
			},
		}
	})
}
