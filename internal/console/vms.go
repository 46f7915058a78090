package console

import (
	"context"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/drawbridge/drawbridge/internal/assess"
	"github.com/drawbridge/drawbridge/internal/inventory"
	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/rbac"
	"github.com/drawbridge/drawbridge/internal/resource"
)

// vmFilter is the VM list's query: the portal tab, a search string and
// the subscription / resource group / cloud / status filters.
type vmFilter struct {
	View, Q, Sub, RG, Cloud, Status string
	Page                            int
}

func parseVMFilter(q url.Values) vmFilter {
	f := vmFilter{View: q.Get("view"), Q: strings.TrimSpace(q.Get("q")), Sub: q.Get("sub"), RG: q.Get("rg"), Cloud: q.Get("cloud"), Status: q.Get("status")}
	switch f.View {
	case "configured", "notconfigured", "unsupported":
	default:
		f.View = "all"
	}
	f.Page, _ = strconv.Atoi(q.Get("page"))
	if f.Page < 1 {
		f.Page = 1
	}
	return f
}

// query renders the filter as a query string for page p (0: keep).
func (f vmFilter) query(view string, p int) string {
	v := url.Values{}
	v.Set("view", view)
	for k, s := range map[string]string{"q": f.Q, "sub": f.Sub, "rg": f.RG, "cloud": f.Cloud, "status": f.Status} {
		if s != "" {
			v.Set(k, s)
		}
	}
	if p > 1 {
		v.Set("page", strconv.Itoa(p))
	}
	return v.Encode()
}

type vmRow struct {
	ID, Name, Subscription, ResourceGroup, Cloud, Provider string
	View, Status, Reason, Detail                           string
	Guarded                                                []jit.PortPolicy
	Exposures                                              []assess.Exposure
	Active                                                 []activeGrant
	CanRequest, CanEnable                                  bool
}

type activeGrant struct {
	jit.Grant
	Holder string
}

type vmTab struct {
	Key, Label, Href string
	Count            int
	Current          bool
}

type vmsData struct {
	Filter      vmFilter
	Tabs        []vmTab
	Rows        []vmRow
	Total       int
	From, To    int
	Prev, Next  string
	Subs, RGs   []string
	Clouds      []string
	Statuses    []string
	PageCount   int
	CanEnableAt bool
}

// listing is what one VM list request reads: the snapshot's VMs and
// assessment, and the policies and active grants as they are now.
type listing struct {
	snap     *snapshot
	policyOf map[string]jit.VMPolicy
	active   map[string][]jit.Grant // by inventory.Key(vmID)
}

func (c *Console) listing(ctx context.Context) (*listing, error) {
	snap, err := c.snapshot(ctx)
	if err != nil {
		return nil, err
	}
	policies, err := c.cfg.Service.ListPolicies(ctx, "/", "")
	if err != nil {
		return nil, err
	}
	grants, err := c.cfg.Service.ListGrants(ctx, jit.GrantFilter{ActiveOnly: true})
	if err != nil {
		return nil, err
	}
	l := &listing{snap: snap, policyOf: map[string]jit.VMPolicy{}, active: map[string][]jit.Grant{}}
	for _, p := range policies {
		for _, v := range p.DistinctVMs() {
			l.policyOf[inventory.Key(v.ID)] = v
		}
	}
	for _, g := range grants {
		k := inventory.Key(g.VMID)
		l.active[k] = append(l.active[k], g)
	}
	return l, nil
}

// view names the portal tab a VM falls in: Unsupported from the
// assessment, Configured from the policies as they are now.
func (l *listing) view(key string) (string, assess.Result) {
	res := l.snap.results[key]
	if res.Status == assess.NotApplicable {
		return "unsupported", res
	}
	if _, ok := l.policyOf[key]; ok {
		return "configured", res
	}
	return "notconfigured", res
}

func (c *Console) vmsPage(w http.ResponseWriter, r *http.Request, u *user) {
	f := parseVMFilter(r.URL.Query())
	l, err := c.listing(r.Context())
	if err != nil {
		c.fail(w, r, err)
		return
	}
	all := c.may(u, rbac.OpVMList, "/")
	counts := map[string]int{}
	subs, rgs, clouds := map[string]bool{}, map[string]bool{}, map[string]bool{}
	var match []int // indexes into l.snap.vms
	q := strings.ToLower(f.Q)
	for i, vm := range l.snap.vms {
		if !all && !c.may(u, rbac.OpVMRead, vm.ID) {
			continue
		}
		m := &l.snap.meta[i]
		v, res := l.view(m.key)
		subs[m.sub], rgs[m.rg], clouds[string(vm.Cloud)] = true, true, true
		if !f.matches(vm, res, m, q) {
			continue
		}
		counts[v]++
		counts["all"]++
		if f.View == "all" || f.View == v {
			match = append(match, i)
		}
	}
	d := vmsData{Filter: f, Total: len(match), Subs: keys(subs), RGs: keys(rgs), Clouds: keys(clouds),
		Statuses: []string{string(assess.Healthy), string(assess.Unhealthy), string(assess.NotApplicable)}}
	for _, t := range []struct{ key, label string }{{"all", "All"}, {"configured", "Configured"}, {"notconfigured", "Not configured"}, {"unsupported", "Unsupported"}} {
		d.Tabs = append(d.Tabs, vmTab{Key: t.key, Label: t.label, Count: counts[t.key], Current: f.View == t.key, Href: "?" + f.query(t.key, 0)})
	}
	size := c.cfg.PageSize
	d.PageCount = max(1, (len(match)+size-1)/size)
	if f.Page > d.PageCount {
		f.Page, d.Filter.Page = d.PageCount, d.PageCount
	}
	lo, hi := (f.Page-1)*size, min(f.Page*size, len(match))
	if f.Page > 1 {
		d.Prev = "?" + f.query(f.View, f.Page-1)
	}
	if hi < len(match) {
		d.Next = "?" + f.query(f.View, f.Page+1)
	}
	d.From, d.To = lo+1, hi
	if len(match) == 0 {
		d.From = 0
	}
	holders := c.holders(r.Context(), l, match[lo:hi])
	for _, i := range match[lo:hi] {
		d.Rows = append(d.Rows, c.vmRow(u, l, i, holders))
	}
	c.render(w, r, http.StatusOK, "vms", page{Title: "Virtual machines", Data: d})
}

// matches applies the filter; q is the search string in lower case.
func (f vmFilter) matches(vm inventory.VM, res assess.Result, m *vmMeta, q string) bool {
	if q != "" && !strings.Contains(m.name, q) && !strings.Contains(m.id, q) {
		return false
	}
	if (f.Sub != "" && !strings.EqualFold(f.Sub, m.sub)) || (f.RG != "" && !strings.EqualFold(f.RG, m.rg)) {
		return false
	}
	if f.Cloud != "" && !strings.EqualFold(f.Cloud, string(vm.Cloud)) {
		return false
	}
	return f.Status == "" || strings.EqualFold(f.Status, string(res.Status))
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		if k != "" {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

func (c *Console) vmRow(u *user, l *listing, i int, holders map[string]string) vmRow {
	vm, m := l.snap.vms[i], &l.snap.meta[i]
	v, res := l.view(m.key)
	id, _ := resource.Parse(vm.ID)
	row := vmRow{ID: vm.ID, Name: vm.Name, Subscription: m.sub, ResourceGroup: m.rg,
		Cloud: string(vm.Cloud), Provider: vm.Provider, View: v, Status: string(res.Status),
		Reason: string(res.Reason), Detail: res.Detail}
	if row.Name == "" {
		row.Name = id.Name()
	}
	if vp, ok := l.policyOf[m.key]; ok {
		row.Guarded = vp.Ports
		row.CanRequest = c.may(u, rbac.OpInitiate, vm.ID)
	} else if v != "unsupported" {
		row.Exposures = res.Exposures
		row.CanEnable = c.may(u, rbac.OpPolicyPut, vm.ID)
	}
	for _, g := range l.active[m.key] {
		row.Active = append(row.Active, activeGrant{Grant: g, Holder: holders[g.RequestID]})
	}
	return row
}

// holders finds who asked for the active grants of the VMs shown.
func (c *Console) holders(ctx context.Context, l *listing, shown []int) map[string]string {
	var gs []jit.Grant
	for _, i := range shown {
		gs = append(gs, l.active[l.snap.meta[i].key]...)
	}
	out, _ := c.cfg.Service.Requestors(ctx, gs) // the name is a nicety; the grant still shows
	return out
}
