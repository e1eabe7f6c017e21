package dbwrap

import (
	"errors"
	"fmt"
)

// Sentinel errors, matched with errors.Is.
var (
	// ErrPrimaryUnavailable is matched by errors from statements that needed
	// the primary while it could not be reached. The error also wraps the
	// inner driver's error, so errors.As finds it.
	ErrPrimaryUnavailable = errors.New("dbwrap: primary unavailable")
	// ErrOpenByName is returned by the wrapper driver's Open: a dbwrap
	// driver is reached only through Open, OpenDB or NewConnector.
	ErrOpenByName = errors.New("dbwrap: the wrapper driver cannot open a DSN by name; use dbwrap.Open or dbwrap.OpenDB")
	// ErrNotDBWrap is returned by Explain and Start for a *sql.DB that
	// dbwrap did not open.
	ErrNotDBWrap = errors.New("dbwrap: the *sql.DB was not opened by dbwrap")
	// ErrInvalidConfig is matched by every configuration error returned by
	// Open, OpenDB and NewConnector; the message names the field.
	ErrInvalidConfig = errors.New("dbwrap: invalid config")
	// ErrClosed is returned by Start for a database that was closed.
	ErrClosed = errors.New("dbwrap: database closed")
)

// configError names the Config field that is wrong.
func configError(field, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrInvalidConfig, field, fmt.Sprintf(format, args...))
}

// serverError is an error from one server that could not be reached. It
// matches ErrPrimaryUnavailable when the server is the primary, and unwraps
// to the inner driver's error.
type serverError struct {
	server  string
	primary bool
	op      string
	err     error
}

func (e *serverError) Error() string {
	return "dbwrap: " + e.op + " " + e.server + ": " + e.err.Error()
}

func (e *serverError) Unwrap() error { return e.err }

// Is makes errors.Is(err, ErrPrimaryUnavailable) true for the primary.
func (e *serverError) Is(target error) bool {
	return e.primary && target == ErrPrimaryUnavailable
}
