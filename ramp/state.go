package ramp

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/reqcanary/canary/ramp/spec"
)

// Phases of a ramp, in [State.Phase].
const (
	PhaseIdle       = "idle"        // no ramp was started
	PhaseRunning    = "running"     // the steps advance as their gates hold
	PhasePaused     = "paused"      // held at its step by an operator or a failed gate
	PhaseDone       = "done"        // the last step passed, or an operator promoted it
	PhaseAborted    = "aborted"     // an operator aborted it: canary at 0 %
	PhaseRolledBack = "rolled-back" // a gate failed: canary at 0 %, kill switch on
)

// GateState is the latest check of one gate and the checks so far.
type GateState struct {
	// Gate names the gate: "fleet", or "prometheus:<name>".
	Gate string `json:"gate"`
	// Verdict of the latest check: spec.VerdictPass, VerdictFail or
	// VerdictPending.
	Verdict string `json:"verdict"`
	// Value is the latest figure: the query's value (Prometheus), the
	// canary's failure rate (fleet).
	Value float64 `json:"value"`
	// Summary describes the latest check in one line.
	Summary string `json:"summary"`
	// At is when it was checked.
	At time.Time `json:"at"`
	// Checks and Failed count the gate's checks in this step, and
	// FailedInARow the failed ones since the last that passed.
	Checks       int `json:"checks"`
	Failed       int `json:"failed"`
	FailedInARow int `json:"failed_in_a_row"`
	// Fleet holds the fleet gate's figures, nil for other gates.
	Fleet *spec.FleetVerdict `json:"fleet,omitempty"`
}

// pending is a plan write the state owes the history: the leader writes
// the plan (changed or not) with this author and note, once.
type pending struct {
	Author string `json:"author"`
	Note   string `json:"note"`
}

// State is the ramp's state as etcd holds it (JSON under Prefix+"state").
type State struct {
	// Phase is one of the Phase constants.
	Phase string `json:"phase"`
	// Run counts the ramps started under this prefix (1 for the first).
	Run int `json:"run"`
	// Step is the index of the current step (0 for the first).
	Step int `json:"step"`
	// Steps is the number of steps of the ramp when it was last looked at.
	Steps int `json:"steps"`
	// Percent is the canary percentage of the current step.
	Percent float64 `json:"percent"`
	// Applied says the current step's percentage was written to the plan;
	// StepStarted is when (its hold counts from then).
	Applied     bool      `json:"applied"`
	StepStarted time.Time `json:"step_started,omitzero"`
	// Elapsed is the part of the hold spent before a pause.
	Elapsed time.Duration `json:"elapsed,omitempty"`
	// Gates are the current step's checks.
	Gates []GateState `json:"gates,omitempty"`
	// Reason says why the ramp paused, rolled back, was aborted or done.
	Reason string `json:"reason,omitempty"`
	// PlanVersion is the plan version the ramp last wrote or checked.
	PlanVersion int64 `json:"plan_version,omitempty"`
	// Seq counts the state's audited changes.
	Seq int64 `json:"seq"`
	// Pending is an audit write owed to the plan history.
	Pending *pending `json:"pending,omitempty"`
	// UpdatedBy and UpdatedAt say who wrote the state last and when.
	UpdatedBy string    `json:"updated_by,omitempty"`
	UpdatedAt time.Time `json:"updated_at,omitzero"`
}

// gate returns the state of the named gate, adding it when missing.
func (s *State) gate(name string) *GateState {
	for i := range s.Gates {
		if s.Gates[i].Gate == name {
			return &s.Gates[i]
		}
	}
	s.Gates = append(s.Gates, GateState{Gate: name})
	return &s.Gates[len(s.Gates)-1]
}

// audit makes the next plan write carry note by author.
func (s *State) audit(author, note string) {
	s.Seq++
	s.Pending = &pending{Author: author, Note: fmt.Sprintf("%s [ramp %d.%d]", note, s.Run, s.Seq)}
}

func (c *Controller) stateKey() string { return c.cfg.Prefix + "state" }

// readState returns the state and its key's mod revision (0: no state).
func (c *Controller) readState(ctx context.Context) (State, int64, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.OpTimeout)
	defer cancel()
	resp, err := c.cfg.Client.Get(ctx, c.stateKey())
	if err != nil {
		return State{}, 0, fmt.Errorf("%w: read %s: %w", ErrUnavailable, c.stateKey(), err)
	}
	if len(resp.Kvs) == 0 {
		return State{Phase: PhaseIdle}, 0, nil
	}
	var s State
	if err := json.Unmarshal(resp.Kvs[0].Value, &s); err != nil {
		return State{}, 0, fmt.Errorf("ramp: %s holds no ramp state: %w", c.stateKey(), err)
	}
	return s, resp.Kvs[0].ModRevision, nil
}

// writeState writes s if the state key is still at rev (0: absent) and,
// when leader is set, the leader key of this controller still exists. It
// returns the new revision, or ErrConflict.
func (c *Controller) writeState(ctx context.Context, s State, rev int64, leader *leadership) (int64, error) {
	s.UpdatedBy, s.UpdatedAt = c.cfg.Instance, time.Now().UTC().Round(0)
	b, err := json.Marshal(s)
	if err != nil {
		return 0, fmt.Errorf("ramp: encode state: %w", err)
	}
	cmps := []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(c.stateKey()), "=", rev)}
	if leader != nil {
		cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(leader.key), "=", leader.rev))
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.OpTimeout)
	defer cancel()
	resp, err := c.cfg.Client.Txn(ctx).If(cmps...).Then(clientv3.OpPut(c.stateKey(), string(b))).Commit()
	if err != nil {
		return 0, fmt.Errorf("%w: write %s: %w", ErrUnavailable, c.stateKey(), err)
	}
	if !resp.Succeeded {
		return 0, ErrConflict
	}
	return resp.Header.Revision, nil
}
