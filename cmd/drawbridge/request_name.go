package main

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/drawbridge/drawbridge/internal/api"
	"github.com/drawbridge/drawbridge/internal/client"
)

// requestVM sends a short request for the VM named by arg and returns the
// request and the VM's ID. A name (not a resource ID) goes to the server
// as typed: the server resolves it among the VMs the caller may list, as
// resolveVM does here, so the request is one call instead of a listing of
// every VM and then the request. A server that predates that answers 400
// InvalidResourceId, and the name is then resolved here as before.
func requestVM(ctx context.Context, c *client.Client, arg string, in api.SimpleRequest) (api.RequestResource, string, error) {
	if arg != "" && !strings.HasPrefix(arg, "/") {
		in.VM = arg
		r, err := c.Request(ctx, in)
		var e *client.Error
		if !errors.As(err, &e) || e.StatusCode != http.StatusBadRequest || e.Code != "InvalidResourceId" {
			if err != nil {
				return r, "", err
			}
			if len(r.VirtualMachines) == 0 {
				return r, "", errors.New("the server answered a request without its VM")
			}
			return r, r.VirtualMachines[0].ID, nil
		}
	}
	vm, err := resolveVM(ctx, c, arg)
	if err != nil {
		return api.RequestResource{}, "", err
	}
	in.VM = vm.ID
	r, err := c.Request(ctx, in)
	return r, vm.ID, err
}
