package redisswitch

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/reqcanary/canary/fleetswitch"
)

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
func decodeState(s string) (fleetswitch.State, error) {
	var st fleetswitch.State
	if err := json.Unmarshal([]byte(s), &st); err != nil {
		return fleetswitch.State{}, fmt.Errorf("redisswitch: malformed state %.100q: %w", s, err)
	}
	if st.Version <= 0 {
		return fleetswitch.State{}, fmt.Errorf("redisswitch: state %.100q has no version", s)
	}
	return st, nil
}
