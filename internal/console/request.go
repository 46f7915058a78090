package console

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/rbac"
)

// durationChoices are the request dialog's durations; those above a
// port's maximum are not offered.
var durationChoices = []time.Duration{15 * time.Minute, 30 * time.Minute, time.Hour, 2 * time.Hour, 3 * time.Hour, 6 * time.Hour, 12 * time.Hour, 24 * time.Hour}

type portChoice struct {
	jit.PortPolicy
	MaxSeconds int
	MaxLabel   string
	Checked    bool
}

type durationChoice struct {
	Value, Label string
	Seconds      int
	Selected     bool
}

type requestForm struct {
	VM, VMName     string
	PolicyID       string
	Ports          []portChoice
	MyIP           string
	SourceMode     string // "myip" or "other"
	SourceValue    string
	Durations      []durationChoice
	Justification  string
	NeedsApproval  bool
	ApprovalGroups []string
	Errors         map[string]string
}

func (c *Console) requestPage(w http.ResponseWriter, r *http.Request, u *user) {
	vm := r.URL.Query().Get("vm")
	f, err := c.requestFormFor(r, u, vm)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	c.render(w, r, http.StatusOK, "request", page{Title: "Request access", Active: "vms", Data: f})
}

// requestFormFor builds the dialog for vm from its policy, after checking
// the user may request access to it.
func (c *Console) requestFormFor(r *http.Request, u *user, vm string) (*requestForm, error) {
	if vm == "" {
		return nil, jitInvalid("vm", "choose a virtual machine first")
	}
	if !c.may(u, rbac.OpInitiate, vm) {
		return nil, denied(rbac.OpInitiate, vm)
	}
	pol, err := c.cfg.Service.PolicyForVM(r.Context(), vm)
	if err != nil {
		return nil, err
	}
	vp, ok := pol.VM(vm)
	if !ok {
		return nil, jitInvalid("vm", "virtual machine "+vm+" has no JIT policy")
	}
	f := &requestForm{VM: vp.ID, VMName: vmNameOf(vp.ID), PolicyID: pol.ID, SourceMode: "myip", Errors: map[string]string{}}
	if a := c.clientAddr(r); a.IsValid() {
		f.MyIP = a.String()
	}
	longest := time.Duration(0)
	groups := map[string]bool{}
	for _, p := range vp.Ports {
		d, _ := jit.ParseISODuration(p.MaxRequestAccessDuration)
		longest = max(longest, d)
		f.Ports = append(f.Ports, portChoice{PortPolicy: p, MaxSeconds: int(d.Seconds()), MaxLabel: roundDur(d), Checked: len(vp.Ports) == 1})
		if p.RequireApproval != nil {
			f.NeedsApproval = true
			if !groups[p.RequireApproval.Approvers] {
				groups[p.RequireApproval.Approvers] = true
				f.ApprovalGroups = append(f.ApprovalGroups, p.RequireApproval.Approvers)
			}
		}
	}
	def := min(time.Hour, longest)
	for _, d := range durationChoices {
		if d <= longest {
			f.Durations = append(f.Durations, durationChoice{Value: d.String(), Label: roundDur(d), Seconds: int(d.Seconds()), Selected: d == def})
		}
	}
	if len(f.Durations) == 0 || f.Durations[len(f.Durations)-1].Seconds < int(longest.Seconds()) {
		f.Durations = append(f.Durations, durationChoice{Value: longest.String(), Label: roundDur(longest) + " (maximum)", Seconds: int(longest.Seconds()), Selected: longest == def})
	}
	return f, nil
}

func vmNameOf(id string) string {
	if i := strings.LastIndexByte(id, '/'); i >= 0 {
		return id[i+1:]
	}
	return id
}

func jitInvalid(field, msg string) error {
	return &jit.FieldError{Kind: jit.ErrInvalid, Field: field, Reason: msg}
}

// requestSubmit initiates the request through the JIT service, as POST
// /drawbridge/v1/requests does, and shows its status; on a refusal the
// dialog comes back with the message beside the field it concerns.
func (c *Console) requestSubmit(w http.ResponseWriter, r *http.Request, u *user) {
	vm := r.PostFormValue("vm")
	f, err := c.requestFormFor(r, u, vm)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	// Keep what was entered, so a refused form comes back filled in.
	chosen := map[string]bool{}
	for _, p := range r.PostForm["port"] {
		chosen[p] = true
	}
	for i := range f.Ports {
		f.Ports[i].Checked = chosen[strconv.Itoa(f.Ports[i].Number)]
	}
	f.SourceMode, f.SourceValue = r.PostFormValue("source"), strings.TrimSpace(r.PostFormValue("source_value"))
	f.Justification = r.PostFormValue("justification")
	dur := r.PostFormValue("duration")
	for i := range f.Durations {
		f.Durations[i].Selected = f.Durations[i].Value == dur
	}
	in, ferr := buildInitiate(f, chosen, dur)
	if ferr == nil {
		var req jit.Request
		req, ferr = c.cfg.Service.InitiateForVM(r.Context(), c.actor(u, r), in)
		if ferr == nil {
			http.Redirect(w, r, Prefix+"requests/"+req.ID+"?policy="+urlq(req.PolicyID), http.StatusSeeOther)
			return
		}
	}
	var fe *jit.FieldError
	if !errors.As(ferr, &fe) && statusOf(ferr) == http.StatusInternalServerError {
		c.fail(w, r, ferr)
		return
	}
	f.Errors[formField(ferr)] = ferr.Error()
	c.render(w, r, statusOf(ferr), "request", page{Title: "Request access", Active: "vms", Data: f})
}

func buildInitiate(f *requestForm, chosen map[string]bool, dur string) (jit.InitiateInput, error) {
	vmIn := jit.InitiateVM{ID: f.VM}
	source := ""
	if f.SourceMode == "other" {
		if f.SourceValue == "" {
			return jit.InitiateInput{}, jitInvalid("source", "enter an IP address or range, or choose My IP")
		}
		source = f.SourceValue
	}
	for _, p := range f.Ports {
		if chosen[strconv.Itoa(p.Number)] {
			vmIn.Ports = append(vmIn.Ports, jit.InitiatePort{Number: p.Number, Duration: dur, AllowedSourceAddressPrefix: source})
		}
	}
	if len(vmIn.Ports) == 0 {
		return jit.InitiateInput{}, jitInvalid("ports", "choose at least one port")
	}
	if dur == "" {
		return jit.InitiateInput{}, jitInvalid("duration", "choose a duration")
	}
	return jit.InitiateInput{VirtualMachines: []jit.InitiateVM{vmIn}, Justification: f.Justification}, nil
}

// formField maps a service error's field (e.g.
// virtualMachines[0].ports[1].allowedSourceAddressPrefix) to the dialog's
// control it concerns.
func formField(err error) string {
	var fe *jit.FieldError
	if !errors.As(err, &fe) {
		return "form"
	}
	f := strings.ToLower(fe.Field)
	switch {
	case strings.Contains(f, "source"):
		return "source"
	case strings.Contains(f, "duration"), strings.Contains(f, "endtime"):
		return "duration"
	case strings.Contains(f, "justification"):
		return "justification"
	case strings.Contains(f, "port"), strings.Contains(f, "number"):
		return "ports"
	}
	return "form"
}
