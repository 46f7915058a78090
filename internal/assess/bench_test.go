package assess

import (
	"fmt"
	"net/netip"
	"runtime"
	"runtime/metrics"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/inventory"
	"github.com/drawbridge/drawbridge/internal/netrule"
)

// genInventory builds a synthetic estate of n VMs: 80% Azure, 20% AWS.
//
// Azure: every VM has one NIC with its own NSG of 12 custom rules; 100 VMs
// share a subnet whose NSG has 50 custom rules; 1 VM in 50 is a classic
// deployment and 1 in 50 sits behind a Firewall Manager firewall. With
// n = 100,000 that is 80,000 x 12 + 800 x 50 = 1,000,000 custom NSG rules (plus 3 default inbound rules per NSG, evaluated but not
// counted). AWS: every instance has one ENI with 3 security groups drawn
// from a pool of n/50 groups of 5 permissions each.
//
// Rules mix what real NSGs hold: internal ranges, VirtualNetwork, service
// ports, port lists and ranges, denies, and on some NICs and subnets an
// allow from Internet on a management port, so that all outcomes occur.
// Returns the inventory and the number of custom NSG rules.
func genInventory(n int) (inventory.Inventory, int) {
	var inv inventory.Inventory
	nAzure := n * 8 / 10
	nAWS := n - nAzure
	const perSubnet = 100
	nSubnets := (nAzure + perSubnet - 1) / perSubnet
	rules := 0
	sub := "/subscriptions/00000000-0000-0000-0000-00000000bench/resourceGroups/rg-%d/providers/"
	rule := func(name string, prio int, acc netrule.Access, src, port string) netrule.SecurityRule {
		return netrule.SecurityRule{Name: name, Priority: prio, Direction: netrule.Inbound, Access: acc, Protocol: netrule.Tcp,
			SourceAddressPrefix: src, SourcePortRange: "*", DestinationAddressPrefix: "*", DestinationPortRange: port}
	}
	inv.VirtualNetworks = append(inv.VirtualNetworks, inventory.VirtualNetwork{ID: fmt.Sprintf(sub, 0) + "Microsoft.Network/virtualNetworks/vnet",
		AddressSpace: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}})
	for s := 0; s < nSubnets; s++ {
		nsgID := fmt.Sprintf(sub, s/100) + "Microsoft.Network/networkSecurityGroups/subnet-nsg-" + strconv.Itoa(s)
		var rs []netrule.SecurityRule
		for i := 0; i < 50; i++ {
			prio := 100 + i*10
			name := "r" + strconv.Itoa(i)
			switch {
			case i == 0 && s%3 == 0:
				rs = append(rs, rule(name, prio, netrule.Allow, "Internet", "22"))
			case i == 1:
				rs = append(rs, rule(name, prio, netrule.Allow, "Internet", "3389"))
			case i == 2:
				r := rule(name, prio, netrule.Allow, "Internet", "")
				r.DestinationPortRange, r.DestinationPortRanges = "", []string{"80", "443", "5985-5986"}
				rs = append(rs, r)
			case i%7 == 0:
				rs = append(rs, rule(name, prio, netrule.Deny, fmt.Sprintf("198.%d.0.0/16", 18+i%2), strconv.Itoa(8000+i)))
			case i%5 == 0:
				rs = append(rs, rule(name, prio, netrule.Allow, "VirtualNetwork", "*"))
			default:
				rs = append(rs, rule(name, prio, netrule.Allow, fmt.Sprintf("10.%d.0.0/16", i), strconv.Itoa(9000+i)+"-"+strconv.Itoa(9010+i)))
			}
		}
		rules += len(rs)
		inv.NSGs = append(inv.NSGs, netrule.NSG{ID: nsgID, Name: "subnet-nsg-" + strconv.Itoa(s), SecurityRules: rs})
		inv.Subnets = append(inv.Subnets, inventory.Subnet{
			ID:            fmt.Sprintf(sub, 0) + "Microsoft.Network/virtualNetworks/vnet/subnets/s" + strconv.Itoa(s),
			AddressPrefix: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(s >> 8), byte(s), 0}), 24),
			NSG:           nsgID,
		})
	}
	fwID := fmt.Sprintf(sub, 0) + "Microsoft.Network/azureFirewalls/fw"
	inv.Firewalls = []inventory.Firewall{{ID: fwID, ManagedByFirewallManager: true}}
	for v := 0; v < nAzure; v++ {
		s := v / perSubnet
		base := fmt.Sprintf(sub, s/100)
		name := "vm-" + strconv.Itoa(v)
		nicID := base + "Microsoft.Network/networkInterfaces/" + name + "-nic"
		nic := inventory.NIC{ID: nicID, Subnet: inv.Subnets[s].ID,
			PrivateIPs: []netip.Addr{netip.AddrFrom4([4]byte{10, byte(s >> 8), byte(s), byte(4 + v%perSubnet)})}}
		{
			nsgID := base + "Microsoft.Network/networkSecurityGroups/" + name + "-nsg"
			var rs []netrule.SecurityRule
			for i := 0; i < 12; i++ {
				prio := 200 + i*10
				rn := "n" + strconv.Itoa(i)
				switch {
				case i == 0 && v%5 == 1:
					rs = append(rs, rule(rn, prio, netrule.Allow, "Internet", "22"))
				case i == 1 && v%7 == 2:
					rs = append(rs, rule(rn, prio, netrule.Allow, "*", "3380-3399"))
				case i == 2 && v%11 == 3:
					rs = append(rs, rule(rn, prio, netrule.Deny, "*", "22"))
				case i%4 == 0:
					rs = append(rs, rule(rn, prio, netrule.Allow, "VirtualNetwork", strconv.Itoa(1000+i)))
				case i%4 == 1:
					r := rule(rn, prio, netrule.Allow, "", "443")
					r.SourceAddressPrefix, r.SourceAddressPrefixes = "", []string{"10.1.0.0/16", "10.2.0.0/16", "198.18.0.0/24"}
					rs = append(rs, r)
				default:
					rs = append(rs, rule(rn, prio, netrule.Allow, "10."+strconv.Itoa(i)+".0.0/16", strconv.Itoa(7000+i)))
				}
			}
			rules += len(rs)
			inv.NSGs = append(inv.NSGs, netrule.NSG{ID: nsgID, Name: name + "-nsg", SecurityRules: rs})
			nic.NSG = nsgID
		}
		inv.NICs = append(inv.NICs, nic)
		vm := inventory.VM{ID: base + "Microsoft.Compute/virtualMachines/" + name, Name: name,
			Cloud: inventory.Azure, Provider: inventory.ProviderSim, Location: "westeurope", NICs: []string{nicID}}
		switch v % 50 {
		case 0:
			vm.Classic = true
		case 25:
			vm.Firewall = fwID
		}
		inv.VMs = append(inv.VMs, vm)
	}
	nSG := max(nAWS/50, 5)
	for g := 0; g < nSG; g++ {
		sg := netrule.SecurityGroup{GroupID: fmt.Sprintf("sg-%017x", g), GroupName: "g" + strconv.Itoa(g)}
		for i := 0; i < 5; i++ {
			p := netrule.IPPermission{IPProtocol: "tcp", FromPort: 8000 + i, ToPort: 8000 + i, IPRanges: []netrule.IPRange{{CidrIP: "10.0.0.0/8"}}}
			switch {
			case i == 0 && g%4 == 0:
				p.FromPort, p.ToPort, p.IPRanges = 22, 22, []netrule.IPRange{{CidrIP: "0.0.0.0/0"}}
			case i == 1 && g%9 == 0:
				p.FromPort, p.ToPort, p.IPRanges = 0, 65535, []netrule.IPRange{{CidrIP: "10.0.0.0/8"}}
			case i == 2:
				p.FromPort, p.ToPort, p.IPRanges, p.IPv6Ranges = 443, 443, []netrule.IPRange{{CidrIP: "0.0.0.0/0"}}, []netrule.IPv6Range{{CidrIPv6: "::/0"}}
			}
			sg.IPPermissions = append(sg.IPPermissions, p)
		}
		inv.SecurityGroups = append(inv.SecurityGroups, sg)
	}
	for v := 0; v < nAWS; v++ {
		id := fmt.Sprintf("i-%017x", v)
		eni := inventory.ENI{ID: fmt.Sprintf("eni-%017x", v), PrivateIPs: []netip.Addr{netip.AddrFrom4([4]byte{10, 200, byte(v >> 8), byte(v)})}}
		for k := 0; k < 3; k++ {
			eni.SecurityGroups = append(eni.SecurityGroups, inv.SecurityGroups[(v*3+k*7)%nSG].GroupID)
		}
		inv.ENIs = append(inv.ENIs, eni)
		inv.VMs = append(inv.VMs, inventory.VM{ID: "/subscriptions/aws-111122223333/resourceGroups/us-east-1/providers/AWS.EC2/instances/" + id,
			Cloud: inventory.AWS, Provider: inventory.ProviderSim, InstanceID: id, ENIs: []string{eni.ID}})
	}
	return inv, rules
}

func TestGenInventoryIsValid(t *testing.T) {
	inv, rules := genInventory(10_000)
	if err := inventory.Validate(inv); err != nil {
		t.Fatal(err)
	}
	if rules != 100_000 {
		t.Errorf("rules = %d, want 100000 (10 per VM)", rules)
	}
	rep := assessOrFail(t, Input{Inventory: inv})
	if rep.Summary.Healthy == 0 || rep.Summary.Unhealthy == 0 || rep.Summary.NotApplicable == 0 {
		t.Errorf("the synthetic estate should produce every status: %+v", rep.Summary)
	}
	t.Logf("10k VMs: %+v", rep.Summary)
}

// heapSampler records the highest live heap (bytes in heap objects) seen
// while it runs, read through runtime/metrics, which does not stop the world.
type heapSampler struct {
	peak atomic.Uint64
	stop chan struct{}
	done chan struct{}
}

func startHeapSampler() *heapSampler {
	h := &heapSampler{stop: make(chan struct{}), done: make(chan struct{})}
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	read := func() {
		metrics.Read(s)
		if v := s[0].Value.Uint64(); v > h.peak.Load() {
			h.peak.Store(v)
		}
	}
	read()
	go func() {
		defer close(h.done)
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-h.stop:
				read()
				return
			case <-t.C:
				read()
			}
		}
	}()
	return h
}

func (h *heapSampler) Stop() uint64 {
	close(h.stop)
	<-h.done
	return h.peak.Load()
}

// BenchmarkAssess classifies synthetic estates of 10k and 100k VMs (10 NSG
// rules per VM). Reported per run: ns/op and allocations (with -benchmem),
// VMs and custom NSG rules, the live heap of the inventory alone, and the
// peak live heap during Assess.
func BenchmarkAssess(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		b.Run(fmt.Sprintf("vms=%d", n), func(b *testing.B) {
			inv, rules := genInventory(n)
			runtime.GC()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			baseline := ms.HeapAlloc
			in := Input{Inventory: inv}
			var peak uint64
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				h := startHeapSampler()
				rep, err := Assess(in)
				if p := h.Stop(); p > peak {
					peak = p
				}
				if err != nil || len(rep.Results) != n {
					b.Fatalf("assess: %v, %d results", err, len(rep.Results))
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(n), "vms")
			b.ReportMetric(float64(rules), "nsg-rules")
			b.ReportMetric(float64(baseline)/(1<<20), "inventory-heap-MB")
			b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MB")
		})
	}
}
