package fleetswitch

import "time"

// State is the fleet's kill switch. Its JSON form is what the Redis backend
// stores and publishes, e.g.
// {"seq":1767225600000000,"on":true,"reason":"guard","actor":"web-1:42","at":"2026-01-01T00:00:00Z"}.
type State struct {
	// On is true when the kill switch is on: every request is stable.
	On bool `json:"on"`
	// Reason says why it was set, e.g. "guard" or an operator's note.
	Reason string `json:"reason,omitempty"`
	// Actor says who set it: an operator, or the instance whose guard
	// tripped.
	Actor string `json:"actor,omitempty"`
	// At is when it was set, by the setter's clock (UTC).
	At time.Time `json:"at"`
	// Version orders states: the store assigns it when the state is written,
	// and it only grows (the Redis backend uses Redis's clock in
	// microseconds, forced to exceed the previous version). 0 for the state
	// of a fleet where nobody has set the switch yet.
	Version int64 `json:"seq"`
}
