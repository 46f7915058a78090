package jit

import (
	"errors"
	"fmt"

	"github.com/drawbridge/drawbridge/internal/store"
)

// Error kinds, from the store to the API: callers test them with
// errors.Is and the API maps them to status codes (400, 403, 404, 409).
// ErrNotFound and ErrConflict are the store's own, so a store error that
// reaches the API unwrapped still has its status; the service wraps the
// ones a caller can cause in a FieldError naming the field.
var (
	ErrInvalid   = errors.New("invalid")
	ErrForbidden = errors.New("forbidden")
	ErrNotFound  = store.ErrNotFound
	ErrConflict  = store.ErrConflict
)

// FieldError names the input field that is wrong and why. Field is a JSON
// path as the caller wrote it, e.g. "properties.virtualMachines[0].ports[1].number".
// It is the one error type of drawbridge's domain packages (jit, access).
type FieldError struct {
	Kind   error // ErrInvalid, ErrForbidden, ErrNotFound or ErrConflict
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

// NewFieldError returns a FieldError of kind on field.
func NewFieldError(kind error, field, format string, args ...any) error {
	return &FieldError{Kind: kind, Field: field, Reason: fmt.Sprintf(format, args...)}
}

func invalid(field, format string, args ...any) error {
	return NewFieldError(ErrInvalid, field, format, args...)
}

func forbidden(field, format string, args ...any) error {
	return NewFieldError(ErrForbidden, field, format, args...)
}

func conflict(field, format string, args ...any) error {
	return NewFieldError(ErrConflict, field, format, args...)
}

func notFound(field, format string, args ...any) error {
	return NewFieldError(ErrNotFound, field, format, args...)
}

// orNotFound is err, or the not-found FieldError when err is the store's
// ErrNotFound (a missing row the caller named).
func orNotFound(err error, field, format string, args ...any) error {
	if errors.Is(err, store.ErrNotFound) {
		return notFound(field, format, args...)
	}
	return err
}
