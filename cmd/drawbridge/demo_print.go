//go:build !drawbridge_client

package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/drawbridge/drawbridge/internal/api"
	"github.com/drawbridge/drawbridge/internal/netrule"
	"github.com/drawbridge/drawbridge/internal/provider/sim"
)

// The demo's output fits 80 columns (demo_test.go checks it): prose is
// wrapped, tables leave out what the step does not need, VMs are named by
// the short names `drawbridge vm list` uses. The CLI's own tables
// (format.go) are for terminals of any width and stay as they are.

const demoWidth = 80

// say writes text as one paragraph wrapped to demoWidth.
func (d *demo) say(text string) { writeWrapped(d.w, "", "", text) }

// writeWrapped writes text word-wrapped to demoWidth, the first line
// after first and the others after rest.
func writeWrapped(w io.Writer, first, rest, text string) {
	line, prefix := "", first
	for _, word := range strings.Fields(text) {
		if line != "" && utf8.RuneCountInString(prefix+line+" "+word) > demoWidth {
			fmt.Fprintln(w, prefix+line)
			line, prefix = "", rest
		}
		if line != "" {
			line += " "
		}
		line += word
	}
	if line != "" {
		fmt.Fprintln(w, prefix+line)
	}
}

// printDemoView writes the VM's inbound firewall: NSG rules by priority
// (Azure) or the security groups on its interfaces (AWS).
func printDemoView(w io.Writer, v sim.View) {
	for i, nsg := range v.NetworkSecurityGroups {
		if i > 0 {
			fmt.Fprintln(w)
		}
		var on []string
		for _, s := range nsg.Subnets {
			on = append(on, "subnet "+lastSegment(s))
		}
		for _, n := range nsg.NetworkInterfaces {
			on = append(on, "NIC "+lastSegment(n))
		}
		fmt.Fprintf(w, "NSG %s (on %s), inbound rules:\n\n", safeText(nsg.Name), safeText(strings.Join(on, ", ")))
		t := newTable(w, "PRIO", "NAME", "ACCESS", "PROTO", "SOURCE", "PORT")
		for _, r := range nsg.SecurityRules {
			if r.Direction != netrule.Inbound {
				continue
			}
			c := nsgRuleCells(r)
			t.row(c[0], shortName(r.Name), c[3], c[4], c[5], c[8])
		}
		t.flush()
	}
	for i, eni := range v.NetworkInterfaces {
		if i > 0 {
			fmt.Fprintln(w)
		}
		pub := ""
		if eni.PublicIP.IsValid() {
			pub = ", public " + eni.PublicIP.String()
		}
		fmt.Fprintf(w, "Security groups on %s (%s):\n\n", safeText(eni.NetworkInterfaceID), strings.TrimPrefix(pub, ", "))
		t := newTable(w, "GROUP", "ID", "PROTO", "PORTS", "SOURCE")
		for _, g := range eni.Groups {
			if len(g.IPPermissions) == 0 {
				t.row(shortName(g.GroupName), g.GroupID, "-", "-", "(no ingress)")
			}
			for _, p := range g.IPPermissions {
				for _, src := range permissionSources(p) {
					t.row(shortName(g.GroupName), g.GroupID, sgProtocol(p), sgPorts(p), src)
				}
			}
		}
		t.flush()
	}
	if len(v.NetworkSecurityGroups) == 0 && len(v.NetworkInterfaces) == 0 {
		fmt.Fprintln(w, "no network security group on the VM's path: every inbound port is open")
	}
}

// printDemoPolicy writes the policy with its VMs by short name.
func printDemoPolicy(w io.Writer, p api.PolicyResource, names map[string]string) {
	fmt.Fprintf(w, "policy %s (resource group %s, %s): %s\n\n", safeText(p.Name), safeText(resourceGroupOf(p.ID)),
		safeText(p.Location), safeText(p.Properties.ProvisioningState))
	t := newTable(w, "VM", "PORT", "PROTOCOL", "ALLOWED SOURCES", "MAX DURATION", "APPROVAL")
	for _, vm := range p.Properties.VirtualMachines {
		for _, port := range vm.Ports {
			approval := "none"
			if ra := port.RequireApproval; ra != nil {
				approval = fmt.Sprintf("%d of %s", ra.Count, ra.Approvers)
			}
			t.row(demoVMName(vm.ID, names), strconv.Itoa(port.Number), string(port.Protocol),
				joinNonEmpty(port.AllowedSourceAddressPrefix, port.AllowedSourceAddressPrefixes), port.MaxRequestAccessDuration, approval)
		}
	}
	t.flush()
}

// printDemoRequest writes the request's grants, one short block each.
func printDemoRequest(w io.Writer, r api.RequestResource, names map[string]string) {
	fmt.Fprintf(w, "request %s\n", safeText(r.ID))
	for _, vm := range r.VirtualMachines {
		for _, p := range vm.Ports {
			applied := "not applied yet"
			if p.Applied {
				applied = "applied to the firewall"
			}
			if p.ProviderError != "" {
				applied += " (" + p.ProviderError + ")"
			}
			fmt.Fprintf(w, "grant   %s\n", safeText(p.GrantID))
			fmt.Fprintf(w, "        %s port %d from %s until %s\n", demoVMName(vm.ID, names), p.Number,
				safeText(p.AllowedSourceAddressPrefix), fmtTime(p.EndTimeUtc))
			fmt.Fprintf(w, "        %s, %s\n", p.Status, applied)
		}
	}
}

// demoVMName is the VM's short name (as vm list shows it), else the last
// segment of its ID.
func demoVMName(id string, names map[string]string) string {
	if n := names[strings.ToLower(id)]; n != "" {
		return n
	}
	return lastSegment(id)
}

func printChanges(w io.Writer, added, removed []string) {
	if len(added)+len(removed) == 0 {
		fmt.Fprintln(w, "  (no change)")
	}
	for _, s := range removed {
		writeWrapped(w, "  - ", "      ", s)
	}
	for _, s := range added {
		writeWrapped(w, "  + ", "      ", s)
	}
}
