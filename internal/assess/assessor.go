package assess

import (
	"fmt"
	"net/netip"
	"strings"
	"sync"

	"github.com/drawbridge/drawbridge/internal/inventory"
	"github.com/drawbridge/drawbridge/internal/netrule"
	"github.com/drawbridge/drawbridge/internal/resource"
)

// assessor holds the inventory indexed by key and what it has compiled, so
// that shared NSGs, groups and networks are worked out once per report.
type assessor struct {
	in        Input
	ports     []int
	providers map[string]bool
	settings  []resource.ID

	nics     *idx[inventory.NIC]
	subnets  *idx[inventory.Subnet]
	nsgs     *idx[netrule.NSG]
	fws      *idx[inventory.Firewall]
	enis     *idx[inventory.ENI]
	sgs      *idx[netrule.SecurityGroup]
	vnets    *idx[inventory.VirtualNetwork]
	vnetSubs map[string][]netip.Prefix // subnet prefixes per virtual network key

	// Per worker, by index in the inventory's lists: what it compiled.
	compiledNSG []compiled[netrule.CompiledNSG]
	compiledSG  []compiled[netrule.CompiledSG]
	// nsgRefs counts, per NSG (by index), the references to its ID as
	// written from NICs and subnets. An NSG referenced once (the usual NIC
	// NSG) is compiled into scratch, reused from VM to VM, instead of being
	// cached: caching every NIC's NSG kept the whole estate's compiled
	// rules alive. (A reference spelt differently is not counted, so such
	// an NSG may be compiled once per VM: slower, never wrong.)
	nsgRefs  []int32
	scratch  []*netrule.CompiledNSG
	eval     netrule.Scratch // per worker: evaluations allocate no working memory
	envs     []netrule.Env   // per subnet index: its virtual network's tags
	envSet   []bool
	vnetEnvs map[string]netrule.Env // per virtual network ID as written
	paths    []nicPath              // per worker, reused from VM to VM
	awsEnv   netrule.Env
}

type compiled[T any] struct {
	c    *T
	err  error
	done bool
}

type nicPath struct {
	nic  *inventory.NIC
	path [2]*netrule.CompiledNSG
	env  netrule.Env
}

// idx finds objects by ID. IDs compare case-insensitively, but documents
// almost always spell one ID the same way everywhere, so it looks the ID up
// as written first and builds the lower-cased index only on the first miss
// (lower-casing every ID of a large inventory costs more than the rest).
//
// The maps hold indexes into the list, not pointers: the garbage collector
// has less to trace, and callers can keep per-object state in slices.
type idx[T any] struct {
	list  []T
	id    func(*T) string
	exact map[string]int32
	once  sync.Once // workers share the index; the first miss builds lower
	lower map[string]int32
}

func index[T any](list []T, id func(*T) string) *idx[T] {
	m := make(map[string]int32, len(list))
	for i := range list {
		m[id(&list[i])] = int32(i)
	}
	return &idx[T]{list: list, id: id, exact: m}
}

// find returns the index of the object with that ID.
func (x *idx[T]) find(id string) (int, bool) {
	if i, ok := x.exact[id]; ok {
		return int(i), true
	}
	x.once.Do(func() {
		x.lower = make(map[string]int32, len(x.list))
		for i := range x.list {
			x.lower[inventory.Key(x.id(&x.list[i]))] = int32(i)
		}
	})
	i, ok := x.lower[inventory.Key(id)]
	return int(i), ok
}

func (x *idx[T]) get(id string) (*T, bool) {
	if i, ok := x.find(id); ok {
		return &x.list[i], true
	}
	return nil, false
}

func newAssessor(in Input, ports []int) *assessor {
	inv := &in.Inventory
	a := &assessor{
		in:        in,
		ports:     ports,
		providers: map[string]bool{},
		vnetSubs:  map[string][]netip.Prefix{},
		awsEnv:    netrule.NewEnv(),
	}
	a.eval.AllowedOnly = true // denied verdicts are not reported
	// Building the indexes (hashing every ID) is most of the serial part
	// of an assessment: build the large ones concurrently.
	var wg sync.WaitGroup
	wg.Go(func() { a.nics = index(inv.NICs, func(n *inventory.NIC) string { return n.ID }) })
	wg.Go(func() { a.nsgs = index(inv.NSGs, func(n *netrule.NSG) string { return n.ID }) })
	wg.Go(func() {
		a.subnets = index(inv.Subnets, func(s *inventory.Subnet) string { return s.ID })
		a.fws = index(inv.Firewalls, func(f *inventory.Firewall) string { return f.ID })
		a.enis = index(inv.ENIs, func(e *inventory.ENI) string { return e.ID })
		a.sgs = index(inv.SecurityGroups, func(g *netrule.SecurityGroup) string { return g.GroupID })
		a.vnets = index(inv.VirtualNetworks, func(v *inventory.VirtualNetwork) string { return v.ID })
	})
	wg.Wait()
	provs := in.Providers
	if provs == nil {
		provs = []string{inventory.ProviderSim, inventory.ProviderNftables}
	}
	for _, p := range provs {
		a.providers[p] = true
	}
	for _, s := range inv.Settings {
		if !s.JITDisabled {
			continue
		}
		if id, err := resource.Parse(s.Scope); err == nil {
			a.settings = append(a.settings, id)
		}
	}
	// Count the NICs behind each NSG: on the NIC, or on its subnet. IDs
	// spelt differently count apart; an NSG whose count is not exactly 1
	// (including a subnet reached only through a differently spelt ID: 0)
	// is cached, which is always correct.
	a.nsgRefs = make([]int32, len(inv.NSGs))
	nicsInSubnet := make([]int32, len(inv.Subnets))
	// Two passes over the NICs, one per core.
	wg.Go(func() {
		for i := range inv.NICs {
			if id := inv.NICs[i].NSG; id != "" {
				if k, ok := a.nsgs.exact[id]; ok {
					a.nsgRefs[k]++
				}
			}
		}
	})
	wg.Go(func() {
		for i := range inv.NICs {
			if sub := inv.NICs[i].Subnet; sub != "" {
				if k, ok := a.subnets.exact[sub]; ok {
					nicsInSubnet[k]++
				}
			}
		}
	})
	wg.Wait()
	for i := range inv.Subnets {
		if id := inv.Subnets[i].NSG; id != "" {
			if k, ok := a.nsgs.exact[id]; ok {
				a.nsgRefs[k] += max(nicsInSubnet[i], 2)
			}
		}
	}
	for _, s := range inv.Subnets {
		if s.AddressPrefix.IsValid() {
			k := inventory.Key(vnetID(s.ID))
			a.vnetSubs[k] = append(a.vnetSubs[k], s.AddressPrefix)
		}
	}
	return a
}

// fork returns an assessor for another worker: the same inputs and
// indexes, its own caches.
func (a *assessor) fork() *assessor {
	b := *a
	b.compiledNSG, b.compiledSG = nil, nil
	b.envs, b.envSet, b.paths, b.vnetEnvs = nil, nil, nil, nil
	b.scratch = nil
	b.eval = netrule.Scratch{AllowedOnly: true}
	return &b
}

// vnetID is the ID of the virtual network a subnet ID lies in: the ID up
// to "/subnets/" (any case).
func vnetID(subnetID string) string {
	for i := len(subnetID) - len("/subnets/"); i >= 0; i-- {
		if subnetID[i] == '/' && strings.EqualFold(subnetID[i:i+len("/subnets/")], "/subnets/") {
			return subnetID[:i]
		}
	}
	return subnetID
}

// nsg compiles the NSG with that ID. used counts the NSGs this VM has
// compiled into scratch so far; an NSG referenced only once in the
// inventory goes into scratch slot *used (valid until the next VM).
//
// Only the rules that may decide a management port are compiled: the
// others cannot change a verdict the assessment asks for.
func (a *assessor) nsg(id string, used *int) (*netrule.CompiledNSG, error) {
	k, ok := a.nsgs.find(id)
	if !ok {
		return nil, fmt.Errorf("network security group %s is not in the inventory", id)
	}
	n := &a.nsgs.list[k]
	if a.nsgRefs[k] == 1 {
		if *used == len(a.scratch) {
			a.scratch = append(a.scratch, &netrule.CompiledNSG{})
		}
		c := a.scratch[*used]
		if err := netrule.CompileNSGPortsInto(n, c, a.ports); err != nil {
			return nil, err
		}
		*used++
		return c, nil
	}
	if a.compiledNSG == nil {
		a.compiledNSG = make([]compiled[netrule.CompiledNSG], len(a.nsgs.list))
	}
	c := &a.compiledNSG[k]
	if !c.done {
		cn := &netrule.CompiledNSG{}
		if c.err = netrule.CompileNSGPortsInto(n, cn, a.ports); c.err == nil {
			c.c = cn
		}
		c.done = true
	}
	return c.c, c.err
}

func (a *assessor) sg(id string) (*netrule.CompiledSG, error) {
	k, ok := a.sgs.find(id)
	if !ok {
		return nil, fmt.Errorf("security group %s is not in the inventory", id)
	}
	if a.compiledSG == nil {
		a.compiledSG = make([]compiled[netrule.CompiledSG], len(a.sgs.list))
	}
	c := &a.compiledSG[k]
	if !c.done {
		c.c, c.err = netrule.CompileSecurityGroup(a.sgs.list[k])
		c.done = true
	}
	return c.c, c.err
}

// env returns the tag meanings for a NIC's virtual network: the listed
// address space, else its subnets' prefixes, else (no subnet) the NIC's own
// addresses.
//
// sub is the index of the NIC's subnet (-1: none); the result is cached
// per subnet.
func (a *assessor) env(nic *inventory.NIC, sub int) netrule.Env {
	if sub >= 0 && a.envSet != nil && a.envSet[sub] {
		return a.envs[sub]
	}
	if nic.Subnet == "" {
		ps := make([]netip.Prefix, 0, len(nic.PrivateIPs))
		for _, ip := range nic.PrivateIPs {
			ps = append(ps, netip.PrefixFrom(ip, ip.BitLen()))
		}
		return netrule.NewEnv(ps...)
	}
	vnet := vnetID(nic.Subnet)
	e, ok := a.vnetEnvs[vnet]
	if !ok {
		if v, ok := a.vnets.get(vnet); ok {
			e = netrule.NewEnv(v.AddressSpace...)
		} else {
			e = netrule.NewEnv(a.vnetSubs[inventory.Key(vnet)]...)
		}
		if a.vnetEnvs == nil {
			a.vnetEnvs = map[string]netrule.Env{}
		}
		a.vnetEnvs[vnet] = e
	}
	if sub >= 0 {
		if a.envSet == nil {
			a.envs = make([]netrule.Env, len(a.subnets.list))
			a.envSet = make([]bool, len(a.subnets.list))
		}
		a.envs[sub], a.envSet[sub] = e, true
	}
	return e
}
