package fleetswitch

import "context"

// Switch is one instance's view of the fleet's kill switch. A [Backend]
// opens it; the caller may [Switch.Load] it, [Switch.Start]s it and
// [Switch.Close]s it when done. Implementations must be safe for concurrent
// use, and must order states by [State.Version] so that an instance never
// goes back to an older state, whatever order changes reach it in.
type Switch interface {
	// Load reads the fleet's state once and adopts it, without starting
	// anything in the background: for a caller that must know the fleet's
	// switch before it may Start (State then tells it). The listeners of
	// OnChange hear of the state only once the Switch is started. ctx bounds
	// the read; Load returns an error when the backend cannot be reached or
	// holds a malformed state, and [ErrClosed] after Close. It may be called
	// before or after Start.
	Load(ctx context.Context) error

	// Start reads the fleet's state and starts following its changes in the
	// background until Close, so that no change falls between the read and
	// the following. ctx bounds only this first contact. When Start fails
	// nothing is left running and it may be called again; a second Start
	// after a successful one returns [ErrStarted], and Start after Close
	// [ErrClosed].
	Start(ctx context.Context) error

	// Set turns the fleet's kill switch on or off, saying why and who, and
	// adopts the new state before it returns, so that State reflects it at
	// once; the other instances follow within about a second. reason and
	// actor may be empty; longer than [MaxReasonLen] and [MaxActorLen] bytes
	// they are refused with an error matching [ErrInvalidArgument]. Set
	// returns [ErrNotStarted] before a successful Start and [ErrClosed]
	// after Close.
	Set(ctx context.Context, on bool, reason, actor string) error

	// State returns the kill switch as this instance last learnt it: the
	// zero State (off, version 0) until something has been set. It stays
	// readable after Close.
	State() State

	// OnChange registers f to be called with the new state after each change
	// this instance learns of once started, its own Sets included. Calls
	// come one at a time, in order of version; when changes come faster than
	// f returns, intermediate states may be skipped, but the last call has
	// the latest state. f may call any method of the Switch except Close. A
	// nil f is ignored.
	OnChange(f func(State))

	// Key names where the fleet's state is kept (for the Redis backend, its
	// key), for logs and the engine's status.
	Key() string

	// LastError returns the error of the last background contact with the
	// backend (a re-read, a malformed change), or nil when it succeeded.
	LastError() error

	// Close stops following the fleet and waits for the Switch's goroutines
	// to end. It does not close the client the backend was given. Calling
	// Close again returns nil.
	Close() error
}

// Backend opens a [Switch] on a store shared by the fleet's instances, such
// as [github.com/reqcanary/canary/fleetswitch/redisswitch]. Instances share
// a switch when they use the same store and the same [Options.Prefix].
type Backend interface {
	// Open returns a Switch configured by opts; zero fields of opts take
	// their defaults (see [Options]). It contacts nothing (Load and Start
	// do), so its errors are configuration errors, matching
	// [ErrInvalidOption] and naming the field.
	Open(opts Options) (Switch, error)
}
