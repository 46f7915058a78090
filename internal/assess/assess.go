// Package assess owns the JIT recommendation: which VMs of an inventory
// should have just-in-time access, following Defender for Cloud's logic.
// Every VM is Healthy (no management port reachable from the internet, or
// JIT guards each one that is), Unhealthy (a management port is reachable
// from the internet and JIT does not guard it: each such port is listed
// with the rule that exposes it) or Not applicable (JIT cannot protect it,
// with the reason). It also builds the portal's three views (Configured,
// Not configured, Unsupported) and the one-step fix: the default policy
// for each unhealthy VM.
//
// It is pure: the inventory, the JIT policies, the request history and
// "now" are inputs; nothing is read from a store or a clock.
package assess

import (
	"fmt"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/drawbridge/drawbridge/internal/inventory"
	"github.com/drawbridge/drawbridge/internal/netrule"
	"github.com/drawbridge/drawbridge/internal/resource"
)

// The recommendation as Defender for Cloud names it.
const (
	Title    = "Management ports of virtual machines should be protected with just-in-time network access control"
	Severity = "High"
)

// ManagementPorts returns the ports every assessment checks: SSH, RDP and
// WinRM over HTTP and HTTPS.
func ManagementPorts() []int { return []int{22, 3389, 5985, 5986} }

// Status of a VM in the recommendation.
type Status string

const (
	Healthy       Status = "Healthy"
	Unhealthy     Status = "Unhealthy"
	NotApplicable Status = "NotApplicable"
)

// Reason a VM is not applicable.
type Reason string

const (
	// ReasonNoNetworkSecurity: no NSG on any NIC or subnet (Azure), no
	// security group on any ENI (AWS): JIT has nothing to put its rules in.
	ReasonNoNetworkSecurity Reason = "NoNetworkSecurityGroup"
	// ReasonClassic: a classic (ASM) deployment, which JIT does not support.
	ReasonClassic Reason = "ClassicDeployment"
	// ReasonFirewallManager: behind an Azure Firewall controlled by Azure
	// Firewall Manager policies, which JIT cannot change.
	ReasonFirewallManager Reason = "FirewallManagerPolicy"
	// ReasonJITDisabled: a setting switches JIT off for the VM's
	// subscription or resource group.
	ReasonJITDisabled Reason = "JITDisabledBySetting"
	// ReasonProviderCannotEnforce: the VM's provider does not run here or
	// cannot enforce on this kind of machine.
	ReasonProviderCannotEnforce Reason = "ProviderCannotEnforce"
	// ReasonNoAgent: a Linux host with no drawbridge agent connected.
	ReasonNoAgent Reason = "NoAgent"
	// ReasonInventoryError: the VM's network objects are missing or invalid.
	ReasonInventoryError Reason = "InventoryError"
)

// PolicyPort is one port a VM's JIT policy guards. Protocol "*" guards TCP
// and UDP.
type PolicyPort struct {
	Number   int              `json:"number"`
	Protocol netrule.Protocol `json:"protocol"`
}

// Input is everything one assessment looks at.
type Input struct {
	Inventory inventory.Inventory `json:"inventory"`
	// Policies holds the guarded ports of every VM that has a JIT policy,
	// keyed by inventory.Key(vmID).
	Policies map[string][]PolicyPort `json:"policies,omitempty"`
	// ExtraPorts are checked as management ports besides ManagementPorts.
	ExtraPorts []int `json:"extraPorts,omitempty"`
	// Providers are the providers this server runs. Nil means sim and
	// nftables (the ones built in).
	Providers []string `json:"providers,omitempty"`
	// Agents marks the host VMs (by inventory.Key) whose agent is connected.
	Agents map[string]bool `json:"agents,omitempty"`
	// Workers is how many goroutines classify VMs; 0 means GOMAXPROCS.
	// Small inventories (under 1000 VMs per worker) use fewer.
	Workers int `json:"-"`
}

// Recommendation is the header of a report.
type Recommendation struct {
	Title       string `json:"title"`
	Severity    string `json:"severity"`
	Description string `json:"description"`
}

// Summary counts the VMs per status.
type Summary struct {
	Healthy       int `json:"healthy"`
	Unhealthy     int `json:"unhealthy"`
	NotApplicable int `json:"notApplicable"`
}

// Report is the result of an assessment: one Result per VM, in inventory order.
type Report struct {
	Recommendation  Recommendation `json:"recommendation"`
	ManagementPorts []int          `json:"managementPorts"`
	Summary         Summary        `json:"summary"`
	Results         []Result       `json:"results"`
}

// Result is the assessment of one VM.
type Result struct {
	ID       string          `json:"id"`
	Name     string          `json:"name,omitempty"`
	Cloud    inventory.Cloud `json:"cloud"`
	Provider string          `json:"provider"`
	Location string          `json:"location,omitempty"`
	Status   Status          `json:"status"`
	// Reason and Detail say why a VM is not applicable.
	Reason Reason `json:"reason,omitempty"`
	Detail string `json:"detail,omitempty"`
	// Exposures are the management ports reachable from the internet that
	// JIT does not guard: the reason a VM is unhealthy.
	Exposures []Exposure `json:"exposures,omitempty"`
	// JITPorts are the ports the VM's JIT policy guards (nil: no policy).
	JITPorts []PolicyPort `json:"jitPorts,omitempty"`
	// StillReachable are ports JIT guards that the internet can reach all
	// the same, because a rule ahead of JIT's deny rule allows them (the
	// seed: existing rules keep priority) or an access grant is open.
	StillReachable []Exposure `json:"stillReachable,omitempty"`
}

// HasPolicy reports whether the VM has a JIT policy.
func (r Result) HasPolicy() bool { return r.JITPorts != nil }

// Exposure is one management port reachable from the internet.
type Exposure struct {
	Port     int              `json:"port"`
	Protocol netrule.Protocol `json:"protocol"`
	// Interface is the NIC or ENI the port is reachable on (empty on a host).
	Interface string `json:"interface,omitempty"`
	// Address is the address the rules were evaluated for (the NIC's
	// private address; a host's public address).
	Address netip.Addr `json:"address,omitzero"`
	// ExampleSource is one internet address that gets through.
	ExampleSource netip.Addr `json:"exampleSource,omitzero"`
	// Rule is the rule that exposes the port: on Azure the allowing rule of
	// the last NSG on the path, on AWS the allowing permission.
	Rule netrule.RuleRef `json:"rule"`
	// Path lists every allowing rule on the way in (subnet NSG, NIC NSG).
	Path []netrule.RuleRef `json:"path,omitempty"`
}

// Assess classifies every VM of in.Inventory. The inventory should be valid
// (inventory.Validate); a VM whose objects are missing or malformed is
// reported not applicable with ReasonInventoryError rather than failing the
// whole report. The only error is an invalid extra port.
func Assess(in Input) (Report, error) {
	ports := ManagementPorts()
	for _, p := range in.ExtraPorts {
		if p < 1 || p > 65535 {
			return Report{}, fmt.Errorf("assessment: extraPorts: %d is not a port number (1-65535)", p)
		}
		if !slices.Contains(ports, p) {
			ports = append(ports, p)
		}
	}
	slices.Sort(ports)
	a := newAssessor(in, ports)
	rep := Report{
		Recommendation: Recommendation{Title: Title, Severity: Severity,
			Description: "Inbound rules let the internet reach management ports of these virtual machines. Enable just-in-time access control to keep the ports closed until someone asks for access, and so protect the machines from internet-based brute-force attacks."},
		ManagementPorts: ports,
		Results:         make([]Result, len(in.Inventory.VMs)),
	}
	// VMs are independent: workers take blocks of consecutive VMs from a
	// shared counter until none is left (so a worker that drew cheap VMs,
	// e.g. AWS ones, does not sit idle while another finishes), each with
	// its own caches of compiled NSGs and groups (the indexes are shared
	// and read-only). Consecutive VMs tend to share subnets, so a block
	// keeps the caches warm.
	vms := in.Inventory.VMs
	workers := in.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	workers = max(1, min(workers, len(vms)/1000))
	const block = 512
	var next atomic.Int64
	var wg sync.WaitGroup
	// Fork before any worker starts: a running worker writes to its caches.
	was := []*assessor{a}
	for len(was) < workers {
		was = append(was, a.fork())
	}
	for _, wa := range was {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				lo := int(next.Add(block)) - block
				if lo >= len(vms) {
					return
				}
				for i := lo; i < min(lo+block, len(vms)); i++ {
					rep.Results[i] = wa.assess(&vms[i])
				}
			}
		}()
	}
	wg.Wait()
	for i := range rep.Results {
		switch rep.Results[i].Status {
		case Healthy:
			rep.Summary.Healthy++
		case Unhealthy:
			rep.Summary.Unhealthy++
		default:
			rep.Summary.NotApplicable++
		}
	}
	return rep, nil
}

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

// canEnforce says which clouds each built-in or planned provider enforces on.
func canEnforce(provider string, cloud inventory.Cloud) bool {
	switch provider {
	case inventory.ProviderSim:
		return cloud == inventory.Azure || cloud == inventory.AWS
	case inventory.ProviderNftables:
		return cloud == inventory.Host
	case inventory.ProviderAzure:
		return cloud == inventory.Azure
	case inventory.ProviderAWS:
		return cloud == inventory.AWS
	}
	return false
}

func (a *assessor) policy(vmID string) ([]PolicyPort, bool) {
	if len(a.in.Policies) == 0 {
		return nil, false
	}
	p, ok := a.in.Policies[vmID]
	if !ok {
		p, ok = a.in.Policies[inventory.Key(vmID)]
	}
	if ok && p == nil {
		p = []PolicyPort{}
	}
	return p, ok
}

func (a *assessor) assess(vm *inventory.VM) Result {
	res := Result{ID: vm.ID, Name: vm.Name, Cloud: vm.Cloud, Provider: vm.Provider, Location: vm.Location}
	res.JITPorts, _ = a.policy(vm.ID)
	na := func(r Reason, format string, args ...any) Result {
		res.Status, res.Reason, res.Detail = NotApplicable, r, fmt.Sprintf(format, args...)
		return res
	}
	// The order follows Defender's flow: can anything enforce here at all,
	// is the deployment supported, has the owner opted out, is there a
	// firewall JIT cannot change, is there anything to put rules in.
	if !canEnforce(vm.Provider, vm.Cloud) {
		return na(ReasonProviderCannotEnforce, "provider %q cannot enforce JIT on %q machines", vm.Provider, vm.Cloud)
	}
	if !a.providers[vm.Provider] {
		return na(ReasonProviderCannotEnforce, "provider %q is not running on this server", vm.Provider)
	}
	if vm.Cloud == inventory.Azure && vm.Classic {
		return na(ReasonClassic, "classic (Azure Service Manager) deployments are not supported by JIT")
	}
	if len(a.settings) > 0 {
		if id, err := resource.Parse(vm.ID); err == nil {
			for _, s := range a.settings {
				if s.Contains(id) {
					return na(ReasonJITDisabled, "JIT is switched off for %s by a setting", s)
				}
			}
		}
	}
	var exposures []Exposure
	switch vm.Cloud {
	case inventory.Azure:
		if vm.Firewall != "" {
			fw, ok := a.fws.get(vm.Firewall)
			if !ok {
				return na(ReasonInventoryError, "firewall %s is not in the inventory", vm.Firewall)
			}
			if fw.ManagedByFirewallManager {
				return na(ReasonFirewallManager, "behind Azure Firewall %s, which Azure Firewall Manager controls through firewall policies; JIT supports only firewalls configured with classic rules", fw.ID)
			}
		}
		var r Result
		var ok bool
		exposures, r, ok = a.azure(vm, res)
		if !ok {
			return r
		}
	case inventory.AWS:
		var r Result
		var ok bool
		exposures, r, ok = a.aws(vm, res)
		if !ok {
			return r
		}
	case inventory.Host:
		if !a.in.Agents[inventory.Key(vm.ID)] && !a.in.Agents[vm.ID] {
			return na(ReasonNoAgent, "no drawbridge agent is connected for this host")
		}
		exposures = a.host(vm)
	}
	for _, e := range exposures {
		if guarded(res.JITPorts, e.Port, e.Protocol) {
			res.StillReachable = append(res.StillReachable, e)
		} else {
			res.Exposures = append(res.Exposures, e)
		}
	}
	if len(res.Exposures) > 0 {
		res.Status = Unhealthy
	} else {
		res.Status = Healthy
	}
	return res
}

func guarded(ps []PolicyPort, port int, proto netrule.Protocol) bool {
	for _, p := range ps {
		if p.Number == port && (p.Protocol == "" || p.Protocol.Overlaps(proto) || strings.EqualFold(string(p.Protocol), string(proto))) {
			return true
		}
	}
	return false
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

func (a *assessor) azure(vm *inventory.VM, res Result) ([]Exposure, Result, bool) {
	fail := func(r Reason, format string, args ...any) ([]Exposure, Result, bool) {
		res.Status, res.Reason, res.Detail = NotApplicable, r, fmt.Sprintf(format, args...)
		return nil, res, false
	}
	paths := a.paths[:0]
	defer func() { clear(paths); a.paths = paths[:0] }()
	hasNSG := false
	used := 0 // scratch NSGs compiled for this VM
	for _, id := range vm.NICs {
		nic, ok := a.nics.get(id)
		if !ok {
			return fail(ReasonInventoryError, "network interface %s is not in the inventory", id)
		}
		p := nicPath{nic: nic}
		subIdx := -1
		if nic.Subnet != "" {
			k, ok := a.subnets.find(nic.Subnet)
			if !ok {
				return fail(ReasonInventoryError, "network interface %s: subnet %s is not in the inventory", nic.ID, nic.Subnet)
			}
			subIdx = k
			sub := &a.subnets.list[k]
			if sub.NSG != "" {
				c, err := a.nsg(sub.NSG, &used)
				if err != nil {
					return fail(ReasonInventoryError, "subnet %s: %v", sub.ID, err)
				}
				p.path[0] = c
			}
		}
		if nic.NSG != "" {
			c, err := a.nsg(nic.NSG, &used)
			if err != nil {
				return fail(ReasonInventoryError, "network interface %s: %v", nic.ID, err)
			}
			p.path[1] = c
		}
		hasNSG = hasNSG || p.path[0] != nil || p.path[1] != nil
		p.env = a.env(nic, subIdx)
		paths = append(paths, p)
	}
	if !hasNSG {
		return fail(ReasonNoNetworkSecurity, "no network security group on any network interface or its subnet")
	}
	var out []Exposure
	for _, port := range a.ports {
	nics:
		for _, p := range paths {
			dests := p.nic.PrivateIPs
			if len(dests) == 0 {
				dests = []netip.Addr{{}}
			}
			for _, d := range dests {
				v := netrule.EvaluateAzureScratch(&a.eval, p.path[:], p.env, netrule.Query{Destination: d, Port: port, Protocol: netrule.Tcp, Source: p.env.InternetSource()})
				if v.Allowed {
					out = append(out, Exposure{Port: port, Protocol: netrule.Tcp, Interface: p.nic.ID, Address: d,
						ExampleSource: v.Example, Rule: v.Deciding(), Path: v.Rules})
					break nics
				}
			}
		}
	}
	out = append(out, a.firewallExposures(vm, paths, out)...)
	return out, res, true
}

func (a *assessor) aws(vm *inventory.VM, res Result) ([]Exposure, Result, bool) {
	fail := func(r Reason, format string, args ...any) ([]Exposure, Result, bool) {
		res.Status, res.Reason, res.Detail = NotApplicable, r, fmt.Sprintf(format, args...)
		return nil, res, false
	}
	type eniGroups struct {
		eni    *inventory.ENI
		groups []*netrule.CompiledSG
	}
	var all []eniGroups
	for _, id := range vm.ENIs {
		eni, ok := a.enis.get(id)
		if !ok {
			return fail(ReasonInventoryError, "ENI %s is not in the inventory", id)
		}
		eg := eniGroups{eni: eni}
		for _, g := range eni.SecurityGroups {
			c, err := a.sg(g)
			if err != nil {
				return fail(ReasonInventoryError, "ENI %s: %v", eni.ID, err)
			}
			eg.groups = append(eg.groups, c)
		}
		if len(eg.groups) > 0 {
			all = append(all, eg)
		}
	}
	if len(all) == 0 {
		return fail(ReasonNoNetworkSecurity, "no security group on any network interface")
	}
	var out []Exposure
	src := a.awsEnv.InternetSource()
	for _, port := range a.ports {
		for _, eg := range all {
			v := netrule.EvaluateAWS(eg.groups, netrule.Query{Port: port, Protocol: netrule.Tcp, Source: src})
			if v.Allowed {
				var addr netip.Addr
				if len(eg.eni.PrivateIPs) > 0 {
					addr = eg.eni.PrivateIPs[0]
				}
				out = append(out, Exposure{Port: port, Protocol: netrule.Tcp, Interface: eg.eni.ID, Address: addr,
					ExampleSource: v.Example, Rule: v.Deciding(), Path: v.Rules})
				break
			}
		}
	}
	return out, res, true
}

// host reports a Linux host's management ports as reachable when it has a
// public address: drawbridge does not model a host's own firewall beyond
// what JIT puts there, so without a policy nothing is known to stop them.
func (a *assessor) host(vm *inventory.VM) []Exposure {
	internet := a.awsEnv.Internet()
	for _, addr := range vm.Addresses {
		if !internet.Contains(addr) {
			continue
		}
		out := make([]Exposure, 0, len(a.ports))
		for _, port := range a.ports {
			out = append(out, Exposure{Port: port, Protocol: netrule.Tcp, Address: addr,
				Rule: netrule.RuleRef{Group: vm.ID, Rule: "no drawbridge policy on a host with a public address", Access: netrule.Allow, Source: "*"}})
		}
		return out
	}
	return nil
}
