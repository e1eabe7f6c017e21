package fleetswitch

import "errors"

// The outcomes of a [Backend] and a [Switch] that a caller matches with
// errors.Is.
var (
	// ErrInvalidOption is matched by the errors Backend.Open returns for bad
	// options or a backend without a client; the message names the field.
	ErrInvalidOption = errors.New("fleetswitch: invalid option")
	// ErrInvalidArgument is matched by the errors Set returns for a reason or
	// actor that is too long; the message names the argument.
	ErrInvalidArgument = errors.New("fleetswitch: invalid argument")
	// ErrNotStarted is returned by Set before Start has succeeded.
	ErrNotStarted = errors.New("fleetswitch: switch not started")
	// ErrStarted is returned by a second Start.
	ErrStarted = errors.New("fleetswitch: switch already started")
	// ErrClosed is returned by Start, Load and Set after Close.
	ErrClosed = errors.New("fleetswitch: switch closed")
)
