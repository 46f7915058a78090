package aws_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/netrule"
	"github.com/drawbridge/drawbridge/internal/provider/aws/conformance"
)

var mutating = map[string]bool{"CreateSecurityGroup": true, "DeleteSecurityGroup": true, "AuthorizeSecurityGroupIngress": true,
	"RevokeSecurityGroupIngress": true, "ModifyNetworkInterfaceAttribute": true}

// applyInterrupted applies desired with a provider that stops dead (its
// context cancelled, as if the process were killed) when it makes its
// n-th changing call; the call itself may still take effect at EC2.
func applyInterrupted(t *testing.T, w *wireWorld, n int64, d jit.Desired) bool {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var calls atomic.Int64
	w.sim.OnRequest(func(action string) {
		if mutating[action] && calls.Add(1) == n {
			cancel()
		}
	})
	defer w.sim.OnRequest(nil)
	_, err := w.newProvider().Apply(ctx, w.VM("web"), d)
	return err != nil
}

// TestInterruptedChangesConverge kills the provider at every changing call
// of enable+grant and of disable; a restarted provider (same store) then
// converges, and disable leaves the account exactly as before.
func TestInterruptedChangesConverge(t *testing.T) {
	ssh := []jit.GuardedPort{{Port: 22, Protocol: netrule.Tcp}}
	g := jit.DesiredGrant{GrantID: "g-crash", Port: 22, Protocol: netrule.Tcp, Source: jit.SourceFromAddr(mustAddr("198.51.100.7"))}
	web := []string{"eni-0web0", "eni-0web1"}
	for _, phase := range []string{"enable", "disable"} {
		for n := int64(1); ; n++ {
			w := newWireWorld(t, conformance.StandardSpec())
			w.Faults(true)
			before := w.State(t)
			vm := w.VM("web")
			on := jit.Desired{VMID: vm.ID, Guarded: ssh, Grants: []jit.DesiredGrant{g}}
			off := jit.Desired{VMID: vm.ID}
			interrupted := false
			if phase == "enable" {
				interrupted = applyInterrupted(t, w, n, on)
			} else {
				if _, err := w.newProvider().Apply(context.Background(), vm, on); err != nil {
					t.Fatal(err)
				}
				interrupted = applyInterrupted(t, w, n, off)
			}
			if _, err := w.newProvider().Apply(context.Background(), vm, on); err != nil {
				t.Fatalf("%s interrupted at call %d: restarted apply: %v", phase, n, err)
			}
			st := w.State(t)
			if !st.Allows(web[:1], "198.51.100.7", "tcp", 22) || st.Allows(web, "203.0.113.5", "tcp", 22) || !st.Allows(web, "192.0.2.9", "47", -1) {
				t.Fatalf("%s interrupted at call %d: restarted apply did not converge:\n%v", phase, n, st.Groups)
			}
			if _, err := w.newProvider().Apply(context.Background(), vm, off); err != nil {
				t.Fatal(err)
			}
			w.Faults(false)
			if d := conformance.Diff(before, w.State(t)); d != "" {
				t.Fatalf("%s interrupted at call %d: after disable:\n%s", phase, n, d)
			}
			for id := range w.State(t).Groups {
				if !strings.HasPrefix(id, "sg-0") {
					t.Fatalf("%s interrupted at call %d: group %s left behind", phase, n, id)
				}
			}
			if !interrupted {
				t.Logf("%s: %d changing calls, each interrupted once", phase, n-1)
				break
			}
		}
	}
}
