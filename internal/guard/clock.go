package guard

import (
	"sync/atomic"
	"time"
)

// Clock tells the guard the time. Implementations must be safe for concurrent
// use.
type Clock interface {
	Now() time.Time
}

// SystemClock is the [Clock] of the running process: [time.Now].
type SystemClock struct{}

// Now returns time.Now().
func (SystemClock) Now() time.Time { return time.Now() }

// ManualClock is a [Clock] that moves only when told to, for deterministic
// tests and simulations. Its zero value reads as the zero time; use
// [NewManualClock] to start elsewhere. It is safe for concurrent use.
type ManualClock struct {
	base time.Time
	off  atomic.Int64 // nanoseconds since base
}

// NewManualClock returns a ManualClock that reads start.
func NewManualClock(start time.Time) *ManualClock { return &ManualClock{base: start} }

// Now returns the clock's current reading.
func (c *ManualClock) Now() time.Time { return c.base.Add(time.Duration(c.off.Load())) }

// Advance moves the clock forward by d (backwards when d is negative) and
// returns the new reading.
func (c *ManualClock) Advance(d time.Duration) time.Time {
	return c.base.Add(time.Duration(c.off.Add(int64(d))))
}

var (
	_ Clock = SystemClock{}
	_ Clock = (*ManualClock)(nil)
)
