package console

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/drawbridge/drawbridge/internal/assess"
	"github.com/drawbridge/drawbridge/internal/inventory"
	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/netrule"
	"github.com/drawbridge/drawbridge/internal/rbac"
)

type recommendationsData struct {
	Summary                           assess.Summary
	Unhealthy, Healthy, NotApplicable []recRow
	CanFix                            bool
	Plan                              *assess.FixPlan
}

type recRow struct {
	assess.Result
	CanFix bool
}

// recommendationsPage is the JIT recommendation: Healthy / Unhealthy / Not
// applicable, the exposing rule per port, and "Enable JIT" on unhealthy VMs.
func (c *Console) recommendationsPage(w http.ResponseWriter, r *http.Request, u *user) {
	d, err := c.recommendations(r, u)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	c.render(w, r, http.StatusOK, "recommendations", page{Title: "Recommendations", Data: d})
}

func (c *Console) recommendations(r *http.Request, u *user) (*recommendationsData, error) {
	if !c.may(u, rbac.OpAssessRead, "/") {
		return nil, denied(rbac.OpAssessRead, "/")
	}
	e, err := c.loadEstate(r.Context())
	if err != nil {
		return nil, err
	}
	d := &recommendationsData{Summary: e.report.Summary}
	for _, res := range e.report.Results {
		row := recRow{Result: res}
		switch res.Status {
		case assess.Unhealthy:
			row.CanFix = c.may(u, rbac.OpAssessFix, res.ID)
			d.CanFix = d.CanFix || row.CanFix
			d.Unhealthy = append(d.Unhealthy, row)
		case assess.Healthy:
			d.Healthy = append(d.Healthy, row)
		default:
			d.NotApplicable = append(d.NotApplicable, row)
		}
	}
	return d, nil
}

// recommendationsPlan shows what "Enable JIT" will do on the chosen VMs
// before anything changes.
func (c *Console) recommendationsPlan(w http.ResponseWriter, r *http.Request, u *user) {
	d, err := c.recommendations(r, u)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	vms := r.PostForm["vm"]
	if len(vms) == 0 {
		d2 := *d
		c.render(w, r, http.StatusBadRequest, "recommendations", page{Title: "Recommendations", Error: "Choose at least one unhealthy virtual machine.", Data: &d2})
		return
	}
	e, err := c.loadEstate(r.Context())
	if err != nil {
		c.fail(w, r, err)
		return
	}
	plan := e.fixPlan(vms)
	d.Plan = &plan
	c.render(w, r, http.StatusOK, "recommendations", page{Title: "Enable JIT: plan", Data: d})
}

// recommendationsApply enables JIT as the plan says, through the same
// steps as POST /drawbridge/v1/assessment/fix: assess.fix on each VM, the
// ports merged into the VM's policy or the "default" policy of its
// resource group, each policy PUT through the JIT service.
func (c *Console) recommendationsApply(w http.ResponseWriter, r *http.Request, u *user) {
	vms := r.PostForm["vm"]
	if len(vms) == 0 {
		redirect(w, r, Prefix+"recommendations", "Nothing to apply.")
		return
	}
	e, err := c.loadEstate(r.Context())
	if err != nil {
		c.fail(w, r, err)
		return
	}
	plan := e.fixPlan(vms)
	if len(plan.VirtualMachines) != len(vms) {
		c.fail(w, r, &jit.FieldError{Kind: jit.ErrConflict, Field: "vm", Reason: "a chosen virtual machine is no longer unhealthy: review the recommendation again"})
		return
	}
	byKey := map[string]inventory.VM{}
	for _, vm := range e.inv.VMs {
		byKey[inventory.Key(vm.ID)] = vm
	}
	adds := make([]jit.VMPorts, 0, len(plan.VirtualMachines))
	for _, fv := range plan.VirtualMachines {
		if !c.may(u, rbac.OpAssessFix, fv.ID) {
			c.fail(w, r, denied(rbac.OpAssessFix, fv.ID))
			return
		}
		add := jit.VMPorts{VM: byKey[inventory.Key(fv.ID)]}
		for _, p := range fv.Ports {
			add.Ports = append(add.Ports, jit.PortPolicy{Number: p.Number, Protocol: netrule.Protocol(p.Protocol),
				AllowedSourceAddressPrefix: p.AllowedSourceAddressPrefix, MaxRequestAccessDuration: p.MaxRequestAccessDuration})
		}
		adds = append(adds, add)
	}
	changes, err := jit.MergePorts(e.policies, adds, "default")
	if err != nil {
		c.fail(w, r, &jit.FieldError{Kind: jit.ErrConflict, Reason: err.Error()})
		return
	}
	var names []string
	for _, ch := range changes {
		saved, err := c.cfg.Service.PutPolicy(r.Context(), ch.Policy)
		if err != nil {
			c.fail(w, r, err)
			return
		}
		names = append(names, fmt.Sprintf("%s (%s)", saved.Name, saved.ProvisioningState))
	}
	redirect(w, r, Prefix+"recommendations", "Enabled JIT on "+fmt.Sprint(len(plan.VirtualMachines))+" virtual machine(s): policy "+strings.Join(names, ", ")+".")
}
