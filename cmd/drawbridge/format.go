package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/drawbridge/drawbridge/internal/api"
	"github.com/drawbridge/drawbridge/internal/netrule"
	"github.com/drawbridge/drawbridge/internal/provider/sim"
	"sigs.k8s.io/yaml"
)

// printJSON writes v as indented JSON.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// table writes rows aligned in columns; the first row is the header.
type table struct{ tw *tabwriter.Writer }

func newTable(w io.Writer, header ...string) *table {
	t := &table{tw: tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)}
	t.row(header...)
	return t
}

func (t *table) row(cells ...string) {
	for i, c := range cells {
		if c == "" {
			cells[i] = "-"
		} else {
			cells[i] = safeText(c)
		}
	}
	fmt.Fprintln(t.tw, strings.Join(cells, "\t"))
}

// safeText is s as it may reach a terminal: unchanged when it is valid UTF-8
// made of printable characters, else Go-quoted ("ok\n…\x1b[2K") so that a
// value someone else wrote (a justification, a rule name) can neither forge a
// row nor send an escape sequence to the terminal.
func safeText(s string) string {
	for _, r := range s {
		if r == utf8.RuneError || !strconv.IsPrint(r) {
			return strconv.Quote(s)
		}
	}
	return s
}

func (t *table) flush() { _ = t.tw.Flush() }

// lastSegment is the resource's own name: a VM's name, an instance ID.
func lastSegment(id string) string {
	return id[strings.LastIndexByte(id, '/')+1:]
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

func ints(ns []int) string {
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ",")
}

func joinNonEmpty(one string, many []string) string {
	all := []string{}
	if one != "" {
		all = append(all, one)
	}
	all = append(all, many...)
	return strings.Join(all, ",")
}

// ---- policies ----

func printPolicy(w io.Writer, p api.PolicyResource, wide bool) {
	if wide {
		fmt.Fprintf(w, "policy  %s\n", safeText(p.ID))
	} else {
		fmt.Fprintf(w, "policy  %s (resource group %s, %s)\n", safeText(p.Name), safeText(resourceGroupOf(p.ID)), safeText(p.Location))
	}
	state := p.Properties.ProvisioningState
	if p.Properties.ProvisioningError != "" {
		state += " (" + p.Properties.ProvisioningError + ")"
	}
	fmt.Fprintf(w, "state   %s\n\n", safeText(state))
	head := []string{"VM", "PORT", "PROTOCOL", "ALLOWED SOURCES", "MAX DURATION", "APPROVAL"}
	if wide {
		head = append(head, "VM ID")
	}
	t := newTable(w, head...)
	for _, vm := range p.Properties.VirtualMachines {
		for _, port := range vm.Ports {
			approval := "none"
			if ra := port.RequireApproval; ra != nil {
				approval = fmt.Sprintf("%d of %s", ra.Count, ra.Approvers)
			}
			row := []string{lastSegment(vm.ID), strconv.Itoa(port.Number), string(port.Protocol),
				joinNonEmpty(port.AllowedSourceAddressPrefix, port.AllowedSourceAddressPrefixes),
				port.MaxRequestAccessDuration, approval}
			if wide {
				row = append(row, vm.ID)
			}
			t.row(row...)
		}
	}
	t.flush()
	if len(p.Properties.Requests) == 0 {
		return
	}
	fmt.Fprintln(w, "\nrecent requests")
	t = newTable(w, "START (UTC)", "REQUESTOR", "VM", "PORT", "SOURCE", "END (UTC)", "STATUS", "REASON", "JUSTIFICATION")
	for _, r := range p.Properties.Requests {
		for _, vm := range r.VirtualMachines {
			for _, port := range vm.Ports {
				// The Azure body holds spec values; drawbridge's own, where
				// they differ, ride beside them.
				status, reason := port.Status, port.StatusReason
				if port.DrawbridgeStatus != "" {
					status = port.DrawbridgeStatus
				}
				if port.DrawbridgeStatusReason != "" {
					reason = port.DrawbridgeStatusReason
				}
				t.row(fmtTime(r.StartTimeUtc), r.Requestor, lastSegment(vm.ID), strconv.Itoa(port.Number), port.AllowedSourceAddressPrefix,
					fmtTime(port.EndTimeUtc), string(status), string(reason), r.Justification)
			}
		}
	}
	t.flush()
}

func printPolicies(w io.Writer, ps []api.PolicyResource, wide bool) {
	head := []string{"NAME", "RESOURCE GROUP", "LOCATION", "STATE", "VMS"}
	if wide {
		head = append(head, "ID")
	}
	t := newTable(w, head...)
	for _, p := range ps {
		var vms []string
		for _, vm := range p.Properties.VirtualMachines {
			vms = append(vms, lastSegment(vm.ID))
		}
		row := []string{p.Name, resourceGroupOf(p.ID), p.Location, p.Properties.ProvisioningState, strings.Join(vms, ",")}
		if wide {
			row = append(row, p.ID)
		}
		t.row(row...)
	}
	t.flush()
}

// ---- requests and grants ----

func printRequest(w io.Writer, r api.RequestResource) {
	t := newTable(w, "GRANT ID", "VM", "PORT", "SOURCE", "END (UTC)", "STATUS", "APPLIED")
	for _, vm := range r.VirtualMachines {
		for _, p := range vm.Ports {
			status := string(p.Status)
			if p.ProviderError != "" {
				status += " (" + p.ProviderError + ")"
			}
			t.row(p.GrantID, lastSegment(vm.ID), strconv.Itoa(p.Number), p.AllowedSourceAddressPrefix,
				fmtTime(p.EndTimeUtc), status, strconv.FormatBool(p.Applied))
		}
	}
	t.flush()
	printRequestConnect(w, r)
}

// ---- VMs ----

func printVMs(w io.Writer, vms []api.VMSummary, wide bool) {
	head := []string{"NAME", "RESOURCE GROUP", "CLOUD", "PROVIDER", "LOCATION", "JIT PORTS", "ACTIVE"}
	if wide {
		head = append(head, "ID")
	}
	t := newTable(w, head...)
	for _, vm := range vms {
		row := []string{vm.Name, resourceGroupOf(vm.ID), vm.Cloud, vm.Provider, vm.Location, ints(vm.Guarded), strconv.Itoa(vm.Active)}
		if wide {
			row = append(row, vm.ID)
		}
		t.row(row...)
	}
	t.flush()
}

// ---- network views ----

// printView writes a VM's firewall in evaluation order. The text depends
// only on the view, so two outputs can be compared with diff.
func printView(w io.Writer, v sim.View, inboundOnly bool) {
	fmt.Fprintf(w, "vm %s (%s) %s\n", safeText(v.Name), safeText(string(v.Cloud)), safeText(v.VMID))
	for _, nsg := range v.NetworkSecurityGroups {
		fmt.Fprintln(w)
		printNSG(w, nsg, inboundOnly)
	}
	for _, eni := range v.NetworkInterfaces {
		fmt.Fprintln(w)
		printENI(w, eni)
	}
	if len(v.NetworkSecurityGroups) == 0 && len(v.NetworkInterfaces) == 0 {
		fmt.Fprintln(w, "\nno network security group on the VM's path: every inbound port is open to its network")
	}
}

func printNSG(w io.Writer, nsg sim.NSGView, inboundOnly bool) {
	var on []string
	for _, s := range nsg.Subnets {
		on = append(on, "subnet "+lastSegment(s))
	}
	for _, n := range nsg.NetworkInterfaces {
		on = append(on, "nic "+lastSegment(n))
	}
	fmt.Fprintf(w, "network security group %s (on %s)\n", safeText(nsg.Name), safeText(strings.Join(on, ", ")))
	t := newTable(w, "PRIORITY", "NAME", "DIRECTION", "ACCESS", "PROTOCOL", "SOURCE", "SOURCE PORTS", "DESTINATION", "DESTINATION PORTS")
	for _, r := range nsg.SecurityRules {
		if inboundOnly && r.Direction != netrule.Inbound {
			continue
		}
		t.row(nsgRuleCells(r)...)
	}
	t.flush()
}

func nsgRuleCells(r netrule.SecurityRule) []string {
	return []string{strconv.Itoa(r.Priority), r.Name, string(r.Direction), string(r.Access), string(r.Protocol),
		joinNonEmpty(r.SourceAddressPrefix, r.SourceAddressPrefixes), joinNonEmpty(r.SourcePortRange, r.SourcePortRanges),
		joinNonEmpty(r.DestinationAddressPrefix, r.DestinationAddressPrefixes), joinNonEmpty(r.DestinationPortRange, r.DestinationPortRanges)}
}

func printENI(w io.Writer, eni sim.ENIView) {
	var addrs []string
	for _, a := range eni.PrivateIPAddresses {
		addrs = append(addrs, a.String())
	}
	pub := ""
	if eni.PublicIP.IsValid() {
		pub = ", public " + eni.PublicIP.String()
	}
	fmt.Fprintf(w, "network interface %s (private %s%s)\n", safeText(eni.NetworkInterfaceID), strings.Join(addrs, ","), pub)
	t := newTable(w, "GROUP ID", "GROUP NAME", "PROTOCOL", "PORTS", "SOURCE")
	for _, g := range eni.Groups {
		if len(g.IPPermissions) == 0 {
			t.row(g.GroupID, g.GroupName, "(no ingress)", "", "")
		}
		for _, p := range g.IPPermissions {
			for _, src := range permissionSources(p) {
				t.row(g.GroupID, g.GroupName, sgProtocol(p), sgPorts(p), src)
			}
		}
	}
	t.flush()
}

func permissionSources(p netrule.IPPermission) []string {
	var out []string
	for _, r := range p.IPRanges {
		out = append(out, r.CidrIP)
	}
	for _, r := range p.IPv6Ranges {
		out = append(out, r.CidrIPv6)
	}
	if len(out) == 0 {
		out = []string{"(none)"}
	}
	return out
}

func sgProtocol(p netrule.IPPermission) string {
	if p.IPProtocol == "-1" {
		return "all"
	}
	return p.IPProtocol
}

func sgPorts(p netrule.IPPermission) string {
	switch {
	case p.IPProtocol == "-1" || (p.FromPort == -1 && p.ToPort == -1):
		return "all"
	case p.FromPort == p.ToPort:
		return strconv.Itoa(p.FromPort)
	}
	return fmt.Sprintf("%d-%d", p.FromPort, p.ToPort)
}

// resourceGroupOf is the resource group named in a resource ID ("" if none).
func resourceGroupOf(id string) string {
	segs := strings.Split(id, "/")
	for i := 0; i+1 < len(segs); i++ {
		if strings.EqualFold(segs[i], "resourceGroups") {
			return segs[i+1]
		}
	}
	return ""
}

// printData writes v for scripts: indented JSON, or under -o yaml the same
// document as YAML (the JSON field names, converted by sigs.k8s.io/yaml).
func (a *app) printData(v any) error {
	if a.output != "yaml" {
		return printJSON(a.stdout, v)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	y, err := yaml.JSONToYAML(b)
	if err != nil {
		return err
	}
	_, err = a.stdout.Write(y)
	return err
}
