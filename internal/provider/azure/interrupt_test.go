package azure_test

import (
	"context"
	"net/http"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/cloudsim/armsim"
	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/netrule"
	"github.com/drawbridge/drawbridge/internal/provider/azure"
	"github.com/drawbridge/drawbridge/internal/provider/providertest"
)

// cutter passes requests to the simulator and, once k writes have been
// sent, cancels the Apply's context: the process "dies" mid-change, with
// some rule writes landed and the rest never sent.
type cutter struct {
	next   *http.Client
	k      int64
	writes atomic.Int64
	cancel context.CancelFunc
}

func (c *cutter) Do(r *http.Request) (*http.Response, error) {
	if r.Method == http.MethodPut || r.Method == http.MethodDelete {
		if c.writes.Add(1) >= c.k {
			defer c.cancel()
		}
	}
	return c.next.Do(r)
}

// TestInterruptedApplyConverges: an enable-and-grant cut after each possible
// number of writes, followed by a fresh provider (a restarted server keeps
// nothing in memory) reconciling expiry and then disable, leaves no allow
// rule past the grant's end and every NSG exactly as it was.
func TestInterruptedApplyConverges(t *testing.T) {
	inv := providertest.Inventory()
	vm := inv.VMs[0] // behind the subnet NSG and its NIC NSG
	src, _ := jit.ParseSource("198.51.100.7")
	guarded := []jit.GuardedPort{{Port: 22, Protocol: netrule.Tcp}, {Port: 3389, Protocol: netrule.Tcp}}
	full := jit.Desired{VMID: vm.ID, Guarded: guarded, Grants: []jit.DesiredGrant{{GrantID: "g1", Port: 22, Protocol: netrule.Tcp, Source: src, End: time.Now().Add(time.Hour)}}}
	const writes = 6 // 2 NSGs x (2 deny rules + 1 allow rule)
	for k := int64(1); k <= writes; k++ {
		s := startSim(t, armsim.Options{})
		s.Load(inv)
		before := map[string]netrule.NSG{}
		for _, id := range s.NSGIDs() {
			before[id], _ = s.NSG(id)
		}
		ctx, cancel := context.WithCancel(context.Background())
		opts := s.ClientOptions()
		opts.Transport = &cutter{next: s.HTTPClient(), k: k, cancel: cancel}
		p, err := azure.New(azure.Config{Credential: armsim.StaticToken("t"), ClientOptions: opts, PollFrequency: 5 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		_, err = p.Apply(ctx, vm, full)
		cancel()
		if k < writes && err == nil {
			t.Fatalf("cut after %d writes: Apply succeeded", k)
		}
		restarted := newProvider(t, s)
		if _, err := restarted.Apply(context.Background(), vm, jit.Desired{VMID: vm.ID, Guarded: guarded}); err != nil {
			t.Fatalf("cut after %d: expiry reconcile: %v", k, err)
		}
		for _, id := range s.NSGIDs() {
			n, _ := s.NSG(id)
			for _, r := range n.SecurityRules {
				if strings.Contains(r.Name, "-allow-") {
					t.Errorf("cut after %d: allow rule %s left in %s after expiry", k, r.Name, id)
				}
			}
		}
		if _, err := restarted.Apply(context.Background(), vm, jit.Desired{VMID: vm.ID}); err != nil {
			t.Fatalf("cut after %d: disable: %v", k, err)
		}
		for id, want := range before {
			if got, _ := s.NSG(id); !reflect.DeepEqual(got.SecurityRules, want.SecurityRules) {
				t.Errorf("cut after %d: NSG %s not restored\n got %+v\nwant %+v", k, id, got.SecurityRules, want.SecurityRules)
			}
		}
	}
}
