// Package fleet shares canary's kill switch across every instance of a
// service through Redis: a key holds the current [State] (on or off, why,
// who, when, as JSON), which an instance reads when it starts, and every
// change is published on a channel that every instance follows, with a
// periodic re-read of the key as a safety net for messages missed while a
// connection was down.
//
// States are ordered by a version Redis assigns when one is written (its
// clock in microseconds, forced to increase), so an instance never goes back
// to an older state whatever order messages and re-reads arrive in.
package fleet
