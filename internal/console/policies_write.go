package console

import (
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/drawbridge/drawbridge/internal/inventory"
	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/rbac"
)

// putVMPorts sets vm's guarded ports to exactly ports.
func (c *Console) putVMPorts(r *http.Request, vm string, ports []jit.PortPolicy) error {
	ctx := r.Context()
	svc := c.cfg.Service
	p, err := svc.PolicyForVM(ctx, vm)
	switch {
	case err == nil:
		p.VirtualMachines = slices.Clone(p.VirtualMachines)
		for i, v := range p.VirtualMachines {
			if strings.EqualFold(v.ID, vm) {
				p.VirtualMachines[i].Ports = ports
			}
		}
	case errors.Is(err, jit.ErrNotFound):
		inv, err := svc.GetVM(ctx, vm)
		if err != nil {
			return err
		}
		existing, err := svc.ListPolicies(ctx, "/", "")
		if err != nil {
			return err
		}
		changes, err := jit.MergePorts(existing, []jit.VMPorts{{VM: inv, Ports: ports}}, "default")
		if err != nil {
			return &jit.FieldError{Kind: jit.ErrConflict, Reason: err.Error()}
		}
		if len(changes) != 1 {
			return &jit.FieldError{Kind: jit.ErrConflict, Reason: "enabling JIT would change more than one policy"}
		}
		p = changes[0].Policy
		// The VM's entry is the one place its ports come from: only
		// ports the form sent, with their settings as sent.
		for i, v := range p.VirtualMachines {
			if inventory.Key(v.ID) == inventory.Key(vm) {
				p.VirtualMachines[i].Ports = ports
			}
		}
	default:
		return err
	}
	_, err = svc.PutPolicy(ctx, p)
	return err
}

// policyDisable turns JIT off on a VM: its entry leaves the policy (the
// whole policy is deleted when it was the last VM), which restores the
// rules JIT set aside and ends its grants.
func (c *Console) policyDisable(w http.ResponseWriter, r *http.Request, u *user) {
	vm := r.PostFormValue("vm")
	if !c.may(u, rbac.OpPolicyDelete, vm) {
		c.fail(w, r, denied(rbac.OpPolicyDelete, vm))
		return
	}
	ctx := r.Context()
	p, err := c.cfg.Service.PolicyForVM(ctx, vm)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	kept := p.VirtualMachines[:0:0]
	for _, v := range p.VirtualMachines {
		if !strings.EqualFold(v.ID, vm) {
			kept = append(kept, v)
		}
	}
	if len(kept) == 0 {
		err = c.cfg.Service.DeletePolicy(ctx, p.ID)
	} else {
		p.VirtualMachines = kept
		_, err = c.cfg.Service.PutPolicy(ctx, p)
	}
	if err != nil {
		c.fail(w, r, err)
		return
	}
	redirect(w, r, Prefix+"policies", "Disabled JIT on "+vmNameOf(vm)+".")
}
