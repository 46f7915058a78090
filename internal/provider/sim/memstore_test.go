package sim

import (
	"context"
	"encoding/json"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/drawbridge/drawbridge/internal/inventory"
	"github.com/drawbridge/drawbridge/internal/netrule"
	"github.com/drawbridge/drawbridge/internal/store"
)

// memStore is an in-memory store.ObjectStore: a transaction works on a copy
// of everything and replaces the original only when fn returns nil.
type memStore struct {
	mu     sync.Mutex
	data   map[string]map[string][]byte
	writes int // puts and deletes committed, to tell a no-op Apply
}

func newMemStore() *memStore { return &memStore{data: map[string]map[string][]byte{}} }

func (m *memStore) ObjectTx(ctx context.Context, fn func(store.Objects) error) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	tx := &memTx{MapObjects: m.copyData()}
	if err := fn(tx); err != nil {
		return err
	}
	m.data = tx.MapObjects
	m.writes += tx.writes
	return nil
}

// ObjectReadTx runs fn on a copy that is always thrown away: nothing fn
// writes is kept.
func (m *memStore) ObjectReadTx(ctx context.Context, fn func(store.Objects) error) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return fn(&memTx{MapObjects: m.copyData()})
}

func (m *memStore) copyData() map[string]map[string][]byte {
	cp := map[string]map[string][]byte{}
	for k, objs := range m.data {
		cp[k] = map[string][]byte{}
		for key, b := range objs {
			cp[k][key] = slices.Clone(b)
		}
	}
	return cp
}

// memTx is a transaction's copy of the data; it counts writes.
type memTx struct {
	store.MapObjects
	writes int
}

func (t *memTx) PutObject(ctx context.Context, kind, key string, v any) error {
	if err := t.MapObjects.PutObject(ctx, kind, key, v); err != nil {
		return err
	}
	t.writes++
	return nil
}

func (t *memTx) DeleteObject(ctx context.Context, kind, key string) error {
	t.writes++
	return t.MapObjects.DeleteObject(ctx, kind, key)
}

// put stores v as inventory would: under (kind, Key(id)).
func (m *memStore) put(t tb, kind, id string, v any) {
	t.Helper()
	err := m.ObjectTx(context.Background(), func(o store.Objects) error {
		return o.PutObject(context.Background(), kind, inventory.Key(id), v)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func getObj[T any](t tb, m *memStore, kind, id string) T {
	t.Helper()
	var v T
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.data[kind][inventory.Key(id)]
	if !ok {
		t.Fatalf("%s %s not found", kind, id)
	}
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

func (m *memStore) has(kind, id string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.data[kind][inventory.Key(id)]
	return ok
}

// tb is what the helpers need of *testing.T and *rapid.T alike.
type tb interface {
	Helper()
	Fatal(args ...any)
	Fatalf(format string, args ...any)
}

// snapshot is every object's JSON, by "kind/key".
type snapshot map[string]string

func (m *memStore) snap() snapshot {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := snapshot{}
	for kind, objs := range m.data {
		for key, b := range objs {
			s[kind+"/"+key] = string(b)
		}
	}
	return s
}

// diff describes how two snapshots differ, object by object ("" if equal).
func diff(want, got snapshot) string {
	var out []string
	for k, w := range want {
		g, ok := got[k]
		switch {
		case !ok:
			out = append(out, "missing "+k+": "+w)
		case g != w:
			out = append(out, "changed "+k+":\n  want "+w+"\n  got  "+g)
		}
	}
	for k, g := range got {
		if _, ok := want[k]; !ok {
			out = append(out, "extra "+k+": "+g)
		}
	}
	sort.Strings(out)
	return strings.Join(out, "\n")
}

// ---- fixtures ----

func azID(kind, name string) string {
	switch kind {
	case "vm":
		return "/subscriptions/s1/resourceGroups/rg1/providers/Microsoft.Compute/virtualMachines/" + name
	case "nic":
		return "/subscriptions/s1/resourceGroups/rg1/providers/Microsoft.Network/networkInterfaces/" + name
	case "subnet":
		return "/subscriptions/s1/resourceGroups/rg1/providers/Microsoft.Network/virtualNetworks/vnet1/subnets/" + name
	case "nsg":
		return "/subscriptions/s1/resourceGroups/rg1/providers/Microsoft.Network/networkSecurityGroups/" + name
	}
	panic(kind)
}

// azureVM stores a VM with one NIC (address addr) in subnet, with the
// given NSG IDs on the subnet and the NIC ("" for none), and returns it.
func azureVM(t tb, m *memStore, name, addr, subnet, subnetNSG, nicNSG string) inventory.VM {
	t.Helper()
	nic := inventory.NIC{ID: azID("nic", name+"-nic"), Subnet: azID("subnet", subnet), NSG: nicNSG,
		PrivateIPs: []netip.Addr{netip.MustParseAddr(addr)}}
	m.put(t, inventory.KindNIC, nic.ID, nic)
	m.put(t, inventory.KindSubnet, nic.Subnet, inventory.Subnet{ID: nic.Subnet, AddressPrefix: netip.MustParsePrefix("10.0.0.0/16"), NSG: subnetNSG})
	vm := inventory.VM{ID: azID("vm", name), Name: name, Cloud: inventory.Azure, Provider: inventory.ProviderSim, NICs: []string{nic.ID}}
	m.put(t, inventory.KindVM, vm.ID, vm)
	return vm
}

func nsg(name string, rules ...netrule.SecurityRule) netrule.NSG {
	return netrule.NSG{ID: azID("nsg", name), Name: name, Location: "westeurope", SecurityRules: rules}
}

func inRule(name string, prio int, access netrule.Access, proto netrule.Protocol, src, ports string) netrule.SecurityRule {
	return netrule.SecurityRule{Name: name, Priority: prio, Direction: netrule.Inbound, Access: access, Protocol: proto,
		SourceAddressPrefix: src, SourcePortRange: "*", DestinationAddressPrefix: "*", DestinationPortRange: ports}
}

func ruleByName(n netrule.NSG, name string) (netrule.SecurityRule, bool) {
	for _, r := range n.SecurityRules {
		if r.Name == name {
			return r, true
		}
	}
	return netrule.SecurityRule{}, false
}

// ---- evaluators, to assert what traffic the result lets in ----

func addrMatches(prefixes []string, a netip.Addr) bool {
	for _, p := range prefixes {
		switch strings.ToLower(p) {
		case "*", "internet", "any":
			return true
		case "virtualnetwork":
			if netip.MustParsePrefix("10.0.0.0/8").Contains(a) {
				return true
			}
			continue
		}
		if pf, err := netip.ParsePrefix(p); err == nil && pf.Contains(a) {
			return true
		}
		if ad, err := netip.ParseAddr(p); err == nil && ad == a {
			return true
		}
	}
	return false
}

// nsgDecide is Azure's inbound evaluation of one NSG: custom and default
// rules by priority, first match wins. It returns the access and rule name.
func nsgDecide(n netrule.NSG, src, dst netip.Addr, port int, proto netrule.Protocol) (netrule.Access, string) {
	rules := append(slices.Clone(n.SecurityRules), netrule.DefaultRules()...)
	sort.SliceStable(rules, func(i, j int) bool { return rules[i].Priority < rules[j].Priority })
	for _, r := range rules {
		if r.Direction != netrule.Inbound || !r.Protocol.Overlaps(proto) {
			continue
		}
		ok, err := covers(r, port, proto)
		if err != nil || !ok {
			continue
		}
		if addrMatches(r.Sources(), src) && addrMatches(r.Destinations(), dst) {
			return r.Access, r.Name
		}
	}
	return netrule.Deny, "(none)"
}

// sgAllows reports whether any permission of the groups lets src in on
// (proto, port), proto being "tcp" or "udp".
func sgAllows(groups []netrule.SecurityGroup, src netip.Addr, proto string, port int) bool {
	for _, g := range groups {
		for _, p := range g.IPPermissions {
			if !permCovers(p, held{proto, port}) {
				continue
			}
			for _, r := range p.IPRanges {
				if pf, err := netip.ParsePrefix(r.CidrIP); err == nil && pf.Contains(src) {
					return true
				}
			}
			for _, r := range p.IPv6Ranges {
				if pf, err := netip.ParsePrefix(r.CidrIPv6); err == nil && pf.Contains(src) {
					return true
				}
			}
		}
	}
	return false
}
