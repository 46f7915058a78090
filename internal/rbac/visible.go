package rbac

import (
	"errors"

	"github.com/drawbridge/drawbridge/internal/resource"
)

// OperationAuthorizer checks one operation on one target: a *Policy, or a
// store's live view of it. The API and the web console both filter what a
// caller sees through Allowed.
type OperationAuthorizer interface {
	AuthorizeOperation(p Principal, op Operation, target resource.ID) error
}

// Allowed reports whether principal may perform op on target. A target
// that is not a resource ID is simply not allowed; an error other than a
// denial (an unknown operation, a store failure) is returned with false.
func Allowed(a OperationAuthorizer, principal Principal, op Operation, target string) (bool, error) {
	id, err := resource.Parse(target)
	if err != nil {
		return false, nil
	}
	err = a.AuthorizeOperation(principal, op, id)
	if err == nil {
		return true, nil
	}
	if errors.Is(err, ErrDenied) {
		return false, nil
	}
	return false, err
}
