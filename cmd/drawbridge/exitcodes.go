package main

import (
	"errors"
	"net/http"
	"strings"

	"github.com/drawbridge/drawbridge/internal/client"
)

// Exit codes of the CLI (documented in README "Exit codes"). The API's
// status codes map to them here and nowhere else.
const (
	exitOK          = 0
	exitFailure     = 1 // anything not listed below
	exitUsage       = 2 // bad command line: unknown command or flag, missing or invalid argument
	exitAuth        = 3 // 401: no, bad, expired or revoked token
	exitPermission  = 4 // 403: the caller's roles do not allow it
	exitNotFound    = 5 // 404: no such VM, policy, grant or request
	exitConflict    = 6 // 409: the state does not allow it (already decided, in use, ...)
	exitUnavailable = 7 // server unreachable, 502/503/504, or still 429 after one retry
	exitRefused     = 8 // request --wait: the request was denied or lapsed
)

// exitError carries an exit code chosen by a command.
type exitError struct {
	code int
	err  error
}

func (e exitError) Error() string { return e.err.Error() }
func (e exitError) Unwrap() error { return e.err }

// usageError marks err as a command-line mistake (exit 2).
func usageError(err error) error { return exitError{code: exitUsage, err: err} }

// exitCode is the process exit code for err (nil: 0).
func exitCode(err error) int {
	if err == nil {
		return exitOK
	}
	var ee exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	if errors.Is(err, client.ErrUnreachable) {
		return exitUnavailable
	}
	switch client.StatusCode(err) {
	case 0:
	case http.StatusBadRequest:
		return exitUsage // the server names the field the caller got wrong
	case http.StatusUnauthorized:
		return exitAuth
	case http.StatusForbidden:
		return exitPermission
	case http.StatusNotFound:
		return exitNotFound
	case http.StatusConflict:
		return exitConflict
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return exitUnavailable
	default:
		return exitFailure
	}
	// Errors found before any call: cobra's and the commands' own checks
	// of flags and arguments name the flag ("--port: …") or the usage.
	msg := err.Error()
	for _, p := range []string{"--", "unknown command", "unknown flag", "unknown shorthand", "invalid argument", "required flag", "accepts ", "vm: a VM name"} {
		if strings.HasPrefix(msg, p) {
			return exitUsage
		}
	}
	return exitFailure
}
