package main

import (
	"fmt"
	"io"
	"time"

	"github.com/drawbridge/drawbridge/internal/api"
	"github.com/drawbridge/drawbridge/internal/jit"
)

// A grant on a VM behind a classic Azure Firewall is reached at the
// firewall's public address, on the port its DNAT rule listens on (maybe
// not the granted one): the tables say so in a line under them.

// connectLine is "connect to ADDR:PORT for port N of VM". A VM and port
// name one grant in force: a newer request for them replaces the older.
func connectLine(w io.Writer, to string, port int, vmID string) {
	fmt.Fprintf(w, "connect to %s for port %d of %s\n", safeText(to), port, safeText(lastSegment(vmID)))
}

// printRequestConnect writes the connect-to lines of a request's ports
// in force.
func printRequestConnect(w io.Writer, r api.RequestResource) {
	for _, vm := range r.VirtualMachines {
		for _, p := range vm.Ports {
			if p.ConnectTo != "" && p.Status == jit.StatusInitiated {
				connectLine(w, p.ConnectTo, p.Number, vm.ID)
			}
		}
	}
}

// printGrantsConnect writes the connect-to lines of the grants in force.
func printGrantsConnect(w io.Writer, gs []api.GrantView, now time.Time) {
	for _, g := range gs {
		if g.ConnectTo.IsValid() && g.IsActive(now) {
			connectLine(w, g.ConnectTo.String(), g.Port, g.VMID)
		}
	}
}
