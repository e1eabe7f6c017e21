package fleet

import (
	"encoding/json"
	"fmt"
	"time"
)

// State is the fleet's kill switch.
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
	// Version orders states: Redis assigns it when the state is written (its
	// clock in microseconds, forced to exceed the previous version). 0 for the
	// state of a fleet where nobody has set the switch yet.
	Version int64 `json:"seq"`
}

// body is what Set sends to Redis; the script prepends the version.
type body struct {
	On     bool      `json:"on"`
	Reason string    `json:"reason,omitempty"`
	Actor  string    `json:"actor,omitempty"`
	At     time.Time `json:"at"`
}

// encodeBody returns the JSON of the state without its opening brace: the
// script writes `{"seq":N,` in front of it.
func encodeBody(on bool, reason, actor string, at time.Time) (string, error) {
	b, err := json.Marshal(body{On: on, Reason: reason, Actor: actor, At: at.UTC()})
	if err != nil {
		return "", err
	}
	return string(b[1:]), nil
}

// decodeState parses a state as stored in the key or published.
func decodeState(s string) (State, error) {
	var st State
	if err := json.Unmarshal([]byte(s), &st); err != nil {
		return State{}, fmt.Errorf("fleet: malformed state %.100q: %w", s, err)
	}
	if st.Version <= 0 {
		return State{}, fmt.Errorf("fleet: state %.100q has no version", s)
	}
	return st, nil
}
