package dbwrap

import (
	"database/sql/driver"
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
	// Open, OpenDB and NewConnector (and by the token stores' constructors,
	// such as redistoken.NewWithConfig); the message names the field.
	ErrInvalidConfig = errors.New("dbwrap: invalid config")
	// ErrClosed is returned by Start for a database that was closed, and
	// wrapped by the errors of a token store's calls after its Close (such
	// as redistoken.Store's).
	ErrClosed = errors.New("dbwrap: database closed")
	// ErrConnLost is matched by the errors of a transaction, or of a pinned
	// session (a *sql.Conn holding session state, see the routing rules),
	// once the inner connection that held it broke: the statements after the
	// break, Commit and Rollback. dbwrap never continues a transaction or a
	// session on a new connection, where its state would be missing and its
	// statements would commit one by one. The statement that met the break
	// returns the driver's own error (it matches ErrConnLost only when the
	// driver said driver.ErrBadConn, which is not passed on: database/sql
	// would take it as "nothing was sent, retry"). The pool then discards
	// the connection.
	ErrConnLost = errors.New("dbwrap: connection of a transaction or pinned session lost")
)

// errStateConnGone is the cause of a lostError when the inner connection
// holding the state was already closed after an earlier failure.
var errStateConnGone = errors.New("the connection holding it was closed")

// lostError is returned once the inner connection holding a transaction or
// a pinned session broke. It matches ErrConnLost and unwraps to the driver's
// error that broke it, unless that was driver.ErrBadConn (which must not
// reach database/sql from a transaction or a session).
type lostError struct {
	server string
	err    error
}

func (e *lostError) Error() string {
	return ErrConnLost.Error() + " (" + e.server + "): " + e.err.Error()
}

// Is makes errors.Is(err, ErrConnLost) true.
func (e *lostError) Is(target error) bool { return target == ErrConnLost }

// Unwrap returns the driver's error, or nil when it was driver.ErrBadConn.
func (e *lostError) Unwrap() error {
	if errors.Is(e.err, driver.ErrBadConn) {
		return nil
	}
	return e.err
}

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
