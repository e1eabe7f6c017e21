package fleet

import "errors"

var (
	// ErrInvalidOption is matched by the errors New returns for bad options;
	// the message names the option.
	ErrInvalidOption = errors.New("fleet: invalid option")
	// ErrInvalidArgument is matched by the errors Set returns for a reason or
	// actor that is too long; the message names the argument.
	ErrInvalidArgument = errors.New("fleet: invalid argument")
	// ErrNotStarted is returned by Set before Start has succeeded.
	ErrNotStarted = errors.New("fleet: switch not started")
	// ErrStarted is returned by a second Start.
	ErrStarted = errors.New("fleet: switch already started")
	// ErrClosed is returned by Start, Load and Set after Close.
	ErrClosed = errors.New("fleet: switch closed")
)
