package ramp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/reqcanary/canary/planstore"
	"github.com/reqcanary/canary/ramp/spec"
)

// Status is what [Controller.Status] reports: the ramp's state, who leads,
// and the step's time left.
type Status struct {
	State
	// Leader is the instance leading the ramp ("" when none).
	Leader string `json:"leader"`
	// Hold is the current step's hold; TimeLeft what remains of it (0 once
	// elapsed: the step then waits for its gates to pass).
	Hold     time.Duration `json:"hold"`
	TimeLeft time.Duration `json:"time_left"`
	// Plan is the store's current plan version, CanaryPercent and
	// KillSwitch what it says.
	Plan          int64   `json:"plan_version_current"`
	CanaryPercent float64 `json:"canary_percent"`
	KillSwitch    bool    `json:"kill_switch"`
	// Ramp is the plan's ramp section (nil when it has none).
	Ramp *spec.Ramp `json:"ramp,omitempty"`
}

// MarshalJSON writes the status with its durations as text ("2m30s"):
// hold, time_left and elapsed.
func (s Status) MarshalJSON() ([]byte, error) {
	type plain Status // without this method
	return json.Marshal(struct {
		plain
		Hold     string `json:"hold"`
		TimeLeft string `json:"time_left"`
		Elapsed  string `json:"elapsed,omitempty"`
	}{plain: plain(s), Hold: s.Hold.String(), TimeLeft: s.TimeLeft.String(), Elapsed: durText(s.Elapsed)})
}

func durText(d time.Duration) string {
	if d == 0 {
		return ""
	}
	return d.String()
}

// Status reads the ramp's state, its leader and the plan in force.
func (c *Controller) Status(ctx context.Context) (Status, error) {
	st, _, err := c.readState(ctx)
	if err != nil {
		return Status{}, err
	}
	out := Status{State: st}
	lctx, cancel := context.WithTimeout(ctx, c.cfg.OpTimeout)
	resp, err := c.cfg.Client.Get(lctx, c.cfg.Prefix+"election/", clientv3.WithFirstCreate()...)
	cancel()
	if err != nil {
		return Status{}, fmt.Errorf("%w: read the leader: %w", ErrUnavailable, err)
	}
	if len(resp.Kvs) > 0 {
		out.Leader = string(resp.Kvs[0].Value)
	}
	p, err := c.cfg.Store.Get(ctx)
	if err != nil {
		return Status{}, err
	}
	out.Plan = p.Version
	if f, err := readFields(p.Data); err == nil {
		out.CanaryPercent, out.KillSwitch = f.Percent, f.Kill
	}
	if r, err := spec.Parse(p.Data); err == nil && r != nil {
		out.Ramp = r
		if st.Step >= 0 && st.Step < len(r.Steps) {
			out.Hold = r.Steps[st.Step].Hold
			if st.Phase == PhaseRunning || st.Phase == PhasePaused {
				held := st.Elapsed
				if st.Phase == PhaseRunning && st.Applied {
					held += time.Since(st.StepStarted)
				}
				out.TimeLeft = max(out.Hold-held, 0).Round(time.Millisecond)
			}
		}
	}
	return out, nil
}

// act changes the state by fn, which sees the state and the plan, by
// compare-and-swap (retried a few times when the leader's checks
// interleave), and returns the new status.
func (c *Controller) act(ctx context.Context, fn func(st *State, p planstore.Plan, r *spec.Ramp) error) (Status, error) {
	for attempt := 0; ; attempt++ {
		st, rev, err := c.readState(ctx)
		if err != nil {
			return Status{}, err
		}
		p, err := c.cfg.Store.Get(ctx)
		if err != nil {
			return Status{}, err
		}
		r, err := spec.Parse(p.Data)
		if err != nil {
			return Status{}, fmt.Errorf("ramp: the plan in force (version %d): %w", p.Version, err)
		}
		if err := fn(&st, p, r); err != nil {
			return Status{}, err
		}
		_, err = c.writeState(ctx, st, rev, nil)
		if errors.Is(err, ErrConflict) && attempt < 5 {
			continue
		}
		if err != nil {
			return Status{}, err
		}
		return c.Status(ctx)
	}
}

func phaseErr(action string, st *State) error {
	return fmt.Errorf("%w: cannot %s a ramp that is %s", ErrPhase, action, st.Phase)
}

func describe(ch planstore.Change, verb string) string {
	s := "ramp " + verb + " by " + ch.Author
	if ch.Note != "" {
		s += ": " + ch.Note
	}
	return s
}

// Start starts the ramp of the plan in force from its first step; the
// leader writes that step to the plan, audited with ch (who and why).
// ErrNoRamp when the plan has no ramp section; ErrPhase when a ramp is
// running or paused (abort it first).
func (c *Controller) Start(ctx context.Context, ch planstore.Change) (Status, error) {
	if ch.Author == "" {
		return Status{}, errors.New("ramp: Start: the change's Author is required")
	}
	return c.act(ctx, func(st *State, p planstore.Plan, r *spec.Ramp) error {
		if r == nil {
			return fmt.Errorf("%w (plan version %d)", ErrNoRamp, p.Version)
		}
		if st.Phase == PhaseRunning || st.Phase == PhasePaused {
			return phaseErr("start", st)
		}
		*st = State{Phase: PhaseRunning, Run: st.Run + 1, Seq: st.Seq, Steps: len(r.Steps), Percent: r.Steps[0].Percent}
		st.audit(ch.Author, fmt.Sprintf("%s: step 1/%d: %g%% for %v", describe(ch, "started"), len(r.Steps),
			r.Steps[0].Percent, r.Steps[0].Hold))
		return nil
	})
}

// Pause holds the ramp at its step (the time held so far is kept); the
// gates are no longer checked. ErrPhase unless it is running.
func (c *Controller) Pause(ctx context.Context, ch planstore.Change) (Status, error) {
	return c.act(ctx, func(st *State, _ planstore.Plan, _ *spec.Ramp) error {
		if st.Phase != PhaseRunning {
			return phaseErr("pause", st)
		}
		if st.Applied && !st.StepStarted.IsZero() {
			st.Elapsed += time.Since(st.StepStarted)
		}
		st.Phase, st.Reason = PhasePaused, describe(ch, "paused")
		st.audit(ch.Author, fmt.Sprintf("%s at step %d/%d (%g%%)", describe(ch, "paused"), st.Step+1, st.Steps, st.Percent))
		return nil
	})
}

// Resume resumes a paused ramp at its step, with the rest of its hold and
// its gates' failed checks forgotten. ErrPhase unless it is paused.
func (c *Controller) Resume(ctx context.Context, ch planstore.Change) (Status, error) {
	return c.act(ctx, func(st *State, _ planstore.Plan, r *spec.Ramp) error {
		if st.Phase != PhasePaused {
			return phaseErr("resume", st)
		}
		if r == nil {
			return ErrNoRamp
		}
		st.Phase, st.Reason, st.Gates = PhaseRunning, "", nil
		if st.Applied {
			st.StepStarted = time.Now().UTC().Round(0)
		}
		st.audit(ch.Author, fmt.Sprintf("%s at step %d/%d (%g%%)", describe(ch, "resumed"), st.Step+1, st.Steps, st.Percent))
		return nil
	})
}

// Abort ends a running or paused ramp and sets the canary to 0 % (the kill
// switch is left as it is). ErrPhase otherwise.
func (c *Controller) Abort(ctx context.Context, ch planstore.Change) (Status, error) {
	return c.act(ctx, func(st *State, _ planstore.Plan, _ *spec.Ramp) error {
		if st.Phase != PhaseRunning && st.Phase != PhasePaused {
			return phaseErr("abort", st)
		}
		st.Phase, st.Reason = PhaseAborted, describe(ch, "aborted")
		st.audit(ch.Author, fmt.Sprintf("%s at step %d/%d (%g%%): canary to 0%%", describe(ch, "aborted"), st.Step+1, st.Steps, st.Percent))
		return nil
	})
}

// PromoteNow ends a running or paused ramp at its last step's percentage
// at once, skipping the holds and gates left. ErrPhase otherwise.
func (c *Controller) PromoteNow(ctx context.Context, ch planstore.Change) (Status, error) {
	return c.act(ctx, func(st *State, _ planstore.Plan, r *spec.Ramp) error {
		if st.Phase != PhaseRunning && st.Phase != PhasePaused {
			return phaseErr("promote", st)
		}
		if r == nil {
			return ErrNoRamp
		}
		last := r.Steps[len(r.Steps)-1]
		st.Phase, st.Reason = PhaseDone, describe(ch, "promoted")
		st.Step, st.Percent, st.Steps = len(r.Steps)-1, last.Percent, len(r.Steps)
		st.audit(ch.Author, fmt.Sprintf("%s: to %g%% (the last step)", describe(ch, "promoted"), last.Percent))
		return nil
	})
}

// Actions of [Controller.Act], by name.
const (
	ActionStatus  = "status"
	ActionStart   = "start"
	ActionPause   = "pause"
	ActionResume  = "resume"
	ActionAbort   = "abort"
	ActionPromote = "promote"
)

// Act runs the operator action named action (ActionStatus, ActionStart,
// ActionPause, ActionResume, ActionAbort or ActionPromote) and returns the
// [Status] after it. It is how the engine's admin handler drives the ramp
// (canary.WithAdminRamp) without importing this package. An unknown action
// is an error naming it.
func (c *Controller) Act(ctx context.Context, action string, ch planstore.Change) (any, error) {
	switch action {
	case ActionStatus:
		return c.Status(ctx)
	case ActionStart:
		return c.Start(ctx, ch)
	case ActionPause:
		return c.Pause(ctx, ch)
	case ActionResume:
		return c.Resume(ctx, ch)
	case ActionAbort:
		return c.Abort(ctx, ch)
	case ActionPromote:
		return c.PromoteNow(ctx, ch)
	}
	return nil, fmt.Errorf("ramp: unknown action %q: want status, start, pause, resume, abort or promote", action)
}
