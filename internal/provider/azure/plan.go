package azure

import (
	"context"
	"fmt"
	"net/netip"
	"reflect"
	"sort"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"

	"github.com/drawbridge/drawbridge/internal/inventory"
	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/netrule"
	"github.com/drawbridge/drawbridge/internal/provider/sim"
	"github.com/drawbridge/drawbridge/internal/store"
)

// ruleWrite is one securityRules create/update or delete.
type ruleWrite struct {
	nsg    *arm.ResourceID
	rule   netrule.SecurityRule // for a delete, only Name
	delete bool
	update bool // the rule exists and changes (a move), else a create
}

type plan struct {
	writes []ruleWrite
	fw     *fwWrite // the firewall PUT, made before the rule writes
	fwID   string   // the VM's firewall, if any, for the lock
	// strays: PUTs taking the VM's DNAT rules off firewalls it is no
	// longer behind (relink.go); strayIDs are the firewalls read for it.
	strays   []*fwWrite
	strayIDs []string
	// fwFound and fwWant are the VM's DNAT rules as read and as planned.
	fwFound, fwWant vmDNAT
	enforced        []string
	connectTo       map[string]netip.AddrPort // grant ID → DNAT listener (jit.Observed)
	nsgs            []string                  // IDs of the NSGs read (the VM's path)
	// found and want are the VM's JIT rules as read and as planned (drift.go).
	found, want vmRules
}

// readPath reads from ARM the VM's NICs, their subnets and the NSGs on
// them. A NIC, subnet or NSG that is gone is left out: the simulated
// provider then decides, as it does on its own inventory, whether that is
// an error (enabling) or not (disabling).
func (p *Provider) readPath(ctx context.Context, vm inventory.VM) (nics []inventory.NIC, subnets []inventory.Subnet, nsgs []netrule.NSG, err error) {
	seenNSG := map[string]bool{}
	addNSG := func(id string) error {
		if id == "" || seenNSG[inventory.Key(id)] {
			return nil
		}
		seenNSG[inventory.Key(id)] = true
		rid, f, err := p.parse(id)
		if err != nil {
			return err
		}
		got, err := f.NewSecurityGroupsClient().Get(ctx, rid.ResourceGroupName, rid.Name, nil)
		if notFound(err) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read network security group %s: %w", id, err)
		}
		n := NSGFromARM(&got.SecurityGroup)
		n.ID = id // the spelling the path refers to, for stable keys and messages
		nsgs = append(nsgs, n)
		return nil
	}
	for _, id := range vm.NICs {
		rid, f, err := p.parse(id)
		if err != nil {
			return nil, nil, nil, err
		}
		got, err := f.NewInterfacesClient().Get(ctx, rid.ResourceGroupName, rid.Name, nil)
		if notFound(err) {
			continue
		}
		if err != nil {
			return nil, nil, nil, fmt.Errorf("read network interface %s: %w", id, err)
		}
		nic, err := NICFromARM(&got.Interface, nil)
		if err != nil {
			return nil, nil, nil, err
		}
		nic.ID = id
		nics = append(nics, nic)
		if nic.Subnet != "" {
			sid, f, err := p.parse(nic.Subnet)
			if err != nil {
				return nil, nil, nil, err
			}
			if sid.Parent == nil {
				return nil, nil, nil, fmt.Errorf("network interface %s: subnet ID %s has no virtual network", id, nic.Subnet)
			}
			sg, err := f.NewSubnetsClient().Get(ctx, sid.ResourceGroupName, sid.Parent.Name, sid.Name, nil)
			if err != nil && !notFound(err) {
				return nil, nil, nil, fmt.Errorf("read subnet %s: %w", nic.Subnet, err)
			}
			if err == nil {
				sn, err := SubnetFromARM(&sg.Subnet)
				if err != nil {
					return nil, nil, nil, err
				}
				sn.ID = nic.Subnet
				subnets = append(subnets, sn)
				if err := addNSG(sn.NSG); err != nil {
					return nil, nil, nil, err
				}
			}
		}
		if err := addNSG(nic.NSG); err != nil {
			return nil, nil, nil, err
		}
	}
	return nics, subnets, nsgs, nil
}

func (p *Provider) parse(id string) (*arm.ResourceID, *armnetworkFactory, error) {
	rid, err := arm.ParseResourceID(id)
	if err != nil {
		return nil, nil, fmt.Errorf("resource ID %q: %w", id, err)
	}
	f, err := p.factory(rid.SubscriptionID)
	if err != nil {
		return nil, nil, err
	}
	return rid, f, nil
}

// plan reads the VM's path, reconciles copies with the simulated provider's
// placement, and returns the rule writes that turn Azure's NSGs into the
// result.
func (p *Provider) plan(ctx context.Context, vm inventory.VM, desired jit.Desired) (plan, error) {
	nics, subnets, nsgs, err := p.readPath(ctx, vm)
	if err != nil {
		return plan{}, err
	}
	objs := memObjects{}
	for _, n := range nics {
		putModel(objs, inventory.KindNIC, n.ID, n)
	}
	for _, s := range subnets {
		putModel(objs, inventory.KindSubnet, s.ID, s)
	}
	for _, n := range nsgs {
		putModel(objs, inventory.KindNSG, n.ID, n)
	}
	var fw *fwRead
	if vm.Firewall != "" {
		if fw, err = p.readFirewall(ctx, vm.Firewall); err != nil {
			return plan{}, err
		}
		if fw != nil {
			putModel(objs, inventory.KindFirewall, fw.model.ID, fw.model)
		}
	}
	strays, err := p.readStrays(ctx, vm, objs)
	if err != nil {
		return plan{}, err
	}
	simVM := vm
	simVM.Cloud = inventory.Azure
	obs, err := sim.New(nil).ApplyTx(ctx, objs, simVM, desired)
	if err != nil {
		return plan{}, err
	}
	pl := plan{enforced: obs.Enforced, connectTo: obs.ConnectTo, found: ownRules(vm.ID, nsgs), fwID: vm.Firewall}
	if pl.strays, err = strayWrites(ctx, strays, objs); err != nil {
		return plan{}, err
	}
	for _, fr := range strays {
		pl.strayIDs = append(pl.strayIDs, fr.model.ID)
	}
	if fw != nil {
		var after inventory.Firewall
		if err := objs.GetObject(ctx, inventory.KindFirewall, inventory.Key(fw.model.ID), &after); err != nil {
			return plan{}, err
		}
		if pl.fw, err = firewallWrite(fw, after); err != nil {
			return plan{}, err
		}
		pl.fwFound, pl.fwWant = ownDNAT(vm.ID, &fw.model), ownDNAT(vm.ID, &after)
	}
	var afters []netrule.NSG
	for _, before := range nsgs {
		pl.nsgs = append(pl.nsgs, before.ID)
		var after netrule.NSG
		if err := objs.GetObject(ctx, inventory.KindNSG, inventory.Key(before.ID), &after); err != nil {
			return plan{}, err
		}
		afters = append(afters, after)
		ws, err := diff(before, after)
		if err != nil {
			return plan{}, err
		}
		rid, err := arm.ParseResourceID(before.ID)
		if err != nil {
			return plan{}, err
		}
		for i := range ws {
			ws[i].nsg = rid
		}
		pl.writes = append(pl.writes, ws...)
	}
	pl.want = ownRules(vm.ID, afters)
	return pl, nil
}

// diff lists the rule writes from before to after, refusing any change to
// a rule JIT does not own. Order: deletes (expired grants close first),
// then moves of existing JIT rules, then creates; deny rules ahead of
// allow rules, so that an enable never opens before it closes.
func diff(before, after netrule.NSG) ([]ruleWrite, error) {
	old := map[string]netrule.SecurityRule{}
	for _, r := range before.SecurityRules {
		old[strings.ToLower(r.Name)] = r
	}
	var ws []ruleWrite
	seen := map[string]bool{}
	for _, r := range after.SecurityRules {
		k := strings.ToLower(r.Name)
		seen[k] = true
		o, existed := old[k]
		if existed && reflect.DeepEqual(o, r) {
			continue
		}
		if !strings.HasPrefix(r.Name, sim.RulePrefix) {
			return nil, fmt.Errorf("NSG %s: refusing to change rule %s, which drawbridge does not own", before.ID, r.Name)
		}
		ws = append(ws, ruleWrite{rule: r, update: existed})
	}
	for _, r := range before.SecurityRules {
		if seen[strings.ToLower(r.Name)] {
			continue
		}
		if !strings.HasPrefix(r.Name, sim.RulePrefix) {
			return nil, fmt.Errorf("NSG %s: refusing to delete rule %s, which drawbridge does not own", before.ID, r.Name)
		}
		ws = append(ws, ruleWrite{rule: netrule.SecurityRule{Name: r.Name}, delete: true})
	}
	rank := func(w ruleWrite) int {
		switch {
		case w.delete:
			return 0
		case w.update:
			return 1
		}
		return 2
	}
	sort.SliceStable(ws, func(i, j int) bool {
		if ri, rj := rank(ws[i]), rank(ws[j]); ri != rj {
			return ri < rj
		}
		return ws[i].rule.Access == netrule.Deny && ws[j].rule.Access != netrule.Deny
	})
	return ws, nil
}

// memObjects holds what a plan read from ARM, for the simulated
// provider's placement to work on.
type memObjects = store.MapObjects

func putModel(m memObjects, kind, id string, v any) {
	_ = m.PutObject(context.Background(), kind, inventory.Key(id), v)
}
