package api

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/drawbridge/drawbridge/internal/rbac"
)

// resolveVMName turns the vm of a short request given as a name (what
// `drawbridge vm list` shows: the VM's name or the last segment of its ID,
// any case) into the ID of the one such VM the caller may list. The CLI
// sends names as typed, so a request costs one call rather than a listing
// of every VM and then the request. It answers 404 naming "vm" if the
// caller may list no such VM and 400 if the name is ambiguous, and reports
// false.
func (s *Server) resolveVMName(w http.ResponseWriter, r *http.Request, p rbac.Principal, name string) (string, bool) {
	v, ok := s.visible(w, p, rbac.OpVMList, "/")
	if !ok {
		return "", false
	}
	vms, err := s.cfg.Service.ListVMs(r.Context())
	if err != nil {
		s.writeServiceError(w, r, err)
		return "", false
	}
	var ids []string
	for _, vm := range vms {
		last := vm.ID[strings.LastIndexByte(vm.ID, '/')+1:]
		if (strings.EqualFold(vm.Name, name) || strings.EqualFold(last, name)) && v.shows(vm.ID) {
			ids = append(ids, vm.ID)
		}
	}
	switch len(ids) {
	case 1:
		return ids[0], true
	case 0:
		writeError(w, http.StatusNotFound, "NotFound", "vm", fmt.Sprintf("vm: no virtual machine %q (see drawbridge vm list)", name))
	default:
		writeError(w, http.StatusBadRequest, "BadRequest", "vm", fmt.Sprintf("vm: name %q is ambiguous, use one of the IDs: %s", name, strings.Join(ids, ", ")))
	}
	return "", false
}
