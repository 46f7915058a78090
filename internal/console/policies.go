package console

import (
	"errors"
	"net/http"
	"regexp"
	"strconv"
	"strings"

	"github.com/drawbridge/drawbridge/internal/assess"
	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/netrule"
	"github.com/drawbridge/drawbridge/internal/rbac"
)

// policyRows is how many port rows the editor shows (empty ones are ignored).
const policyRows = 6

type policyVMRow struct {
	PolicyID, PolicyName, VM string
	Ports                    []jit.PortPolicy
	CanEdit, CanDisable      bool
}

func (c *Console) policiesPage(w http.ResponseWriter, r *http.Request, u *user) {
	if !c.may(u, rbac.OpPolicyList, "/") {
		c.fail(w, r, denied(rbac.OpPolicyList, "/"))
		return
	}
	ps, err := c.cfg.Service.ListPolicies(r.Context(), "/", "")
	if err != nil {
		c.fail(w, r, err)
		return
	}
	var rows []policyVMRow
	for _, p := range ps {
		for _, v := range p.DistinctVMs() {
			rows = append(rows, policyVMRow{PolicyID: p.ID, PolicyName: p.Name, VM: v.ID, Ports: v.Ports,
				CanEdit: c.may(u, rbac.OpPolicyPut, v.ID), CanDisable: c.may(u, rbac.OpPolicyDelete, v.ID)})
		}
	}
	c.render(w, r, http.StatusOK, "policies", page{Title: "Policies", Data: rows})
}

// portRow is one row of the editor, as text so a refused form comes back
// exactly as typed.
type portRow struct {
	Number, Protocol, Source, MaxDuration, Approvers, Count string
	Errors                                                  map[string]string
}

type policyForm struct {
	VM, PolicyID string
	New          bool
	Rows         []portRow
	Error        string
}

// defaultPorts are what "Enable JIT" proposes, as Defender does: the
// management ports, TCP, any source, three hours.
func defaultPorts() []jit.PortPolicy {
	var out []jit.PortPolicy
	for _, n := range assess.ManagementPorts() {
		out = append(out, jit.PortPolicy{Number: n, Protocol: netrule.Tcp, AllowedSourceAddressPrefix: "*", MaxRequestAccessDuration: assess.FixMaxDurationISO})
	}
	return out
}

func (c *Console) policyEditPage(w http.ResponseWriter, r *http.Request, u *user) {
	vm := r.URL.Query().Get("vm")
	if !c.may(u, rbac.OpPolicyPut, vm) {
		c.fail(w, r, denied(rbac.OpPolicyPut, vm))
		return
	}
	f := policyForm{VM: vm}
	ports := defaultPorts()
	if p, err := c.cfg.Service.PolicyForVM(r.Context(), vm); err == nil {
		vp, _ := p.VM(vm)
		f.PolicyID, ports = p.ID, vp.Ports
	} else if !errors.Is(err, jit.ErrNotFound) {
		c.fail(w, r, err)
		return
	} else {
		f.New = true
	}
	for _, p := range ports {
		row := portRow{Number: strconv.Itoa(p.Number), Protocol: string(p.Protocol), Source: p.AllowedSourceAddressPrefix, MaxDuration: p.MaxRequestAccessDuration}
		if len(p.AllowedSourceAddressPrefixes) > 0 {
			row.Source = strings.Join(p.AllowedSourceAddressPrefixes, ", ")
		}
		if p.RequireApproval != nil {
			row.Approvers, row.Count = p.RequireApproval.Approvers, strconv.Itoa(p.RequireApproval.Count)
		}
		f.Rows = append(f.Rows, row)
	}
	c.renderPolicyForm(w, r, http.StatusOK, f)
}

func (c *Console) renderPolicyForm(w http.ResponseWriter, r *http.Request, status int, f policyForm) {
	// At least policyRows rows, and always one empty row to add a port.
	for want := max(policyRows, len(f.Rows)+1); len(f.Rows) < want; {
		f.Rows = append(f.Rows, portRow{Protocol: "TCP", Source: "*", MaxDuration: "PT3H"})
	}
	c.render(w, r, status, "policy_edit", page{Title: "JIT policy", Active: "policies", Data: f})
}

// policySave writes the VM's ports through the JIT service: into its policy
// when it has one (replacing its entry), else into the resource group's
// "default" policy. The service's validation messages come back attached to
// the row and field they name.
func (c *Console) policySave(w http.ResponseWriter, r *http.Request, u *user) {
	vm := r.PostFormValue("vm")
	if !c.may(u, rbac.OpPolicyPut, vm) {
		c.fail(w, r, denied(rbac.OpPolicyPut, vm))
		return
	}
	f := policyForm{VM: vm, PolicyID: r.PostFormValue("policy"), New: r.PostFormValue("policy") == ""}
	var ports []jit.PortPolicy
	var rowOf []int // ports[i] came from form row rowOf[i]
	for i := range policyRows + 8 {
		k := strconv.Itoa(i)
		row := portRow{Number: strings.TrimSpace(r.PostFormValue("number" + k)), Protocol: r.PostFormValue("protocol" + k),
			Source: strings.TrimSpace(r.PostFormValue("source" + k)), MaxDuration: strings.TrimSpace(r.PostFormValue("max" + k)),
			Approvers: strings.TrimSpace(r.PostFormValue("approvers" + k)), Count: strings.TrimSpace(r.PostFormValue("count" + k)), Errors: map[string]string{}}
		if _, sent := r.PostForm["number"+k]; !sent {
			break
		}
		f.Rows = append(f.Rows, row)
		if row.Number == "" {
			continue
		}
		p, err := row.port()
		if err != nil {
			f.Rows[len(f.Rows)-1].Errors[err.field] = err.msg
			continue
		}
		ports, rowOf = append(ports, p), append(rowOf, len(f.Rows)-1)
	}
	if len(ports) == 0 && !hasRowErrors(f.Rows) {
		f.Error = "Give at least one port (to turn JIT off, use Disable)."
	}
	if f.Error != "" || hasRowErrors(f.Rows) {
		c.renderPolicyForm(w, r, http.StatusBadRequest, f)
		return
	}
	if err := c.putVMPorts(r, vm, ports); err != nil {
		if statusOf(err) == http.StatusInternalServerError {
			c.fail(w, r, err)
			return
		}
		attachPolicyError(&f, err, rowOf)
		c.renderPolicyForm(w, r, statusOf(err), f)
		return
	}
	redirect(w, r, Prefix+"policies", "Saved the JIT policy of "+vmNameOf(vm)+".")
}

type fieldErr struct{ field, msg string }

func (row portRow) port() (jit.PortPolicy, *fieldErr) {
	n, err := strconv.Atoi(row.Number)
	if err != nil {
		return jit.PortPolicy{}, &fieldErr{"number", "port " + strconv.Quote(row.Number) + " is not a number"}
	}
	p := jit.PortPolicy{Number: n, Protocol: netrule.Protocol(row.Protocol), MaxRequestAccessDuration: row.MaxDuration}
	if srcs := splitList(row.Source); len(srcs) > 1 {
		p.AllowedSourceAddressPrefixes = srcs
	} else {
		p.AllowedSourceAddressPrefix = row.Source
	}
	if row.Approvers != "" || row.Count != "" {
		cnt, err := strconv.Atoi(row.Count)
		if err != nil {
			return p, &fieldErr{"count", "approvals needed must be a number"}
		}
		p.RequireApproval = &jit.ApprovalRule{Approvers: row.Approvers, Count: cnt}
	}
	return p, nil
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' }) {
		out = append(out, f)
	}
	return out
}

func hasRowErrors(rows []portRow) bool {
	for _, r := range rows {
		if len(r.Errors) > 0 {
			return true
		}
	}
	return false
}

var portsIndex = regexp.MustCompile(`ports\[(\d+)\]\.?([A-Za-z]*)`)

// attachPolicyError puts a service error beside the field it names
// (…ports[i].maxRequestAccessDuration → row i's maximum duration).
func attachPolicyError(f *policyForm, err error, rowOf []int) {
	var fe *jit.FieldError
	if errors.As(err, &fe) {
		if m := portsIndex.FindStringSubmatch(fe.Field); m != nil {
			i, _ := strconv.Atoi(m[1])
			if i < len(rowOf) {
				row := &f.Rows[rowOf[i]]
				field := map[string]string{"number": "number", "protocol": "protocol", "maxRequestAccessDuration": "max",
					"allowedSourceAddressPrefix": "source", "allowedSourceAddressPrefixes": "source", "requireApproval": "approvers"}[m[2]]
				if field == "" {
					field = "number"
				}
				if row.Errors == nil {
					row.Errors = map[string]string{}
				}
				row.Errors[field] = err.Error()
				return
			}
		}
	}
	f.Error = err.Error()
}
