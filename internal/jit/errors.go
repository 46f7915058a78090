package jit

import (
	"errors"
	"fmt"
)

// Error kinds the service returns. Callers test them with errors.Is; the API
// maps them to status codes (400, 403, 404, 409).
var (
	ErrInvalid   = errors.New("invalid")
	ErrForbidden = errors.New("forbidden")
	ErrNotFound  = errors.New("not found")
	ErrConflict  = errors.New("conflict")
)

// FieldError names the input field that is wrong and why. Field is a JSON
// path as the caller wrote it, e.g. "properties.virtualMachines[0].ports[1].number".
type FieldError struct {
	Kind   error // ErrInvalid, ErrForbidden or ErrConflict
	Field  string
	Reason string
}

func (e *FieldError) Error() string {
	if e.Field == "" {
		return e.Reason
	}
	return e.Field + ": " + e.Reason
}

func (e *FieldError) Unwrap() error { return e.Kind }

func invalid(field, format string, args ...any) error {
	return &FieldError{Kind: ErrInvalid, Field: field, Reason: fmt.Sprintf(format, args...)}
}

func forbidden(field, format string, args ...any) error {
	return &FieldError{Kind: ErrForbidden, Field: field, Reason: fmt.Sprintf(format, args...)}
}

func conflict(field, format string, args ...any) error {
	return &FieldError{Kind: ErrConflict, Field: field, Reason: fmt.Sprintf(format, args...)}
}

func notFound(field, format string, args ...any) error {
	return &FieldError{Kind: ErrNotFound, Field: field, Reason: fmt.Sprintf(format, args...)}
}
