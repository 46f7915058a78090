package assess

// Defaults of the policy the one-step fix applies, as Defender's "Enable JIT"
// on a recommendation does: the exposed ports, TCP, any source, three hours.
const (
	FixProtocol       = "TCP"
	FixSource         = "*"
	FixMaxDurationISO = "PT3H"
)

// FixPlan is what protecting the unhealthy VMs takes: per VM, the ports a
// JIT policy must guard. Field names match the JIT policy API
// (virtualMachines[].ports[]), so the CLI and the service can turn each
// entry into a policy (or add the ports to the VM's existing one) as is.
type FixPlan struct {
	VirtualMachines []FixVM `json:"virtualMachines"`
}

// FixVM is one unhealthy VM and the ports to guard.
type FixVM struct {
	ID       string `json:"id"`
	Name     string `json:"name,omitempty"`
	Location string `json:"location,omitempty"`
	// ExtendsPolicy is true when the VM has a policy already and the ports
	// are to be added to it.
	ExtendsPolicy bool      `json:"extendsExistingPolicy,omitempty"`
	Ports         []FixPort `json:"ports"`
}

// FixPort is one port of the default policy.
type FixPort struct {
	Number                     int    `json:"number"`
	Protocol                   string `json:"protocol"`
	AllowedSourceAddressPrefix string `json:"allowedSourceAddressPrefix"`
	MaxRequestAccessDuration   string `json:"maxRequestAccessDuration"`
}

// Fix returns the plan for every unhealthy VM of r, in report order, with
// each exposed port once.
func Fix(r Report) FixPlan {
	plan := FixPlan{VirtualMachines: []FixVM{}}
	for _, res := range r.Results {
		if res.Status != Unhealthy {
			continue
		}
		vm := FixVM{ID: res.ID, Name: res.Name, Location: res.Location, ExtendsPolicy: res.HasPolicy()}
		seen := map[int]bool{}
		for _, e := range res.Exposures {
			if seen[e.Port] {
				continue
			}
			seen[e.Port] = true
			vm.Ports = append(vm.Ports, FixPort{Number: e.Port, Protocol: FixProtocol,
				AllowedSourceAddressPrefix: FixSource, MaxRequestAccessDuration: FixMaxDurationISO})
		}
		plan.VirtualMachines = append(plan.VirtualMachines, vm)
	}
	return plan
}
