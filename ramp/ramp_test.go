package ramp_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/reqcanary/canary"
	"github.com/reqcanary/canary/planstore"
	"github.com/reqcanary/canary/ramp"
)

// fleetPlan is a plan whose engines' own guards need far more samples than
// they get (so none trips alone), with a 5-step ramp of 3 s holds gated by
// the fleet's figures.
const fleetPlan = `salt: ramp-test
canary_percent: 0
guard:
  enabled: true
  buckets: 6
  bucket_width: 500ms
  min_canary_samples: 100000
  min_stable_samples: 100000
  latency_min_samples: 100000
ramp:
  steps: [10% 3s, 20% 3s, 30% 3s, 50% 3s, 100% 3s]
  check_interval: 200ms
  gates:
    fleet:
      min_canary_samples: 100
      min_stable_samples: 100
      failure_ratio: 1.5
      failure_margin: 0.02
  on_failure: rollback
`

var alice = planstore.Change{Author: "alice", Note: "release 42"}

func TestHealthyCanaryRampsToFull(t *testing.T) {
	prefix := testPrefix(t)
	f := newFleet(t, prefix, 5, fleetPlan)
	f.traffic(200, 0.01, func(float64) float64 { return 0.01 })
	c, _ := startController(t, prefix, "ctl-1", etcdClient(t), nil)

	st, err := c.Start(ctxT(t, 5*time.Second), alice)
	if err != nil {
		t.Fatal(err)
	}
	if st.Phase != ramp.PhaseRunning || st.Steps != 5 {
		t.Fatalf("after Start: %+v", st)
	}
	st = waitPhase(t, c, 60*time.Second, ramp.PhaseDone, ramp.PhaseRolledBack, ramp.PhasePaused)
	if st.Phase != ramp.PhaseDone {
		t.Fatalf("ramp ended %s: %s", st.Phase, st.Reason)
	}
	waitAll(t, f.engines, time.Second, func(e *canary.Engine) bool { return e.Plan().CanaryPercent == 100 })

	h := waitLastNote(t, f.store, 5*time.Second, "ramp done")
	if got, want := stepNotes(h), []string{"1", "2", "3", "4", "5"}; !slices.Equal(got, want) {
		t.Fatalf("steps in the history = %v, want %v", got, want)
	}
	last := h[len(h)-1]
	if last.Author != ramp.DefaultAuthor || !strings.HasPrefix(last.Note, "ramp done") {
		t.Fatalf("last history entry: %s %q", last.Author, last.Note)
	}
	for _, e := range h {
		if strings.Contains(e.Note, "ramp started") && e.Author != "alice" {
			t.Fatalf("the start is audited as %s, want alice", e.Author)
		}
	}
}

// A canary that fails 5 points more than stable from step 3, over 5
// engines none of which holds enough samples to trip its own guard: the
// fleet's figures roll it back within the step's hold.
func TestFleetEvidenceRollsBackWhatNoEngineSees(t *testing.T) {
	prefix := testPrefix(t)
	f := newFleet(t, prefix, 5, fleetPlan)
	f.traffic(200, 0.01, func(pct float64) float64 {
		if pct >= 30 {
			return 0.06
		}
		return 0.01
	})
	c, _ := startController(t, prefix, "ctl-1", etcdClient(t), nil)
	if _, err := c.Start(ctxT(t, 5*time.Second), alice); err != nil {
		t.Fatal(err)
	}
	st := waitPhase(t, c, 60*time.Second, ramp.PhaseDone, ramp.PhaseRolledBack, ramp.PhasePaused)
	if st.Phase != ramp.PhaseRolledBack {
		t.Fatalf("ramp ended %s (%s), want rolled back", st.Phase, st.Reason)
	}
	t.Log(st.Reason)
	if st.Step != 2 || !strings.Contains(st.Reason, "gate fleet failed at step 3/5") ||
		!strings.Contains(st.Reason, "failure-rate") {
		t.Fatalf("rolled back at step %d: %s", st.Step+1, st.Reason)
	}
	// Every engine decides stable within a second of the rollback's write.
	h := waitLastNote(t, f.store, 5*time.Second, "ramp rolled back")
	rb := h[len(h)-1]
	if rb.Author != ramp.DefaultAuthor || !strings.HasPrefix(rb.Note, "ramp rolled back: gate fleet failed at step 3/5") {
		t.Fatalf("last history entry: %s %q", rb.Author, rb.Note)
	}
	waitAll(t, f.engines, time.Second-time.Since(rb.Time), func(e *canary.Engine) bool {
		p := e.Plan()
		return p.KillSwitch && p.CanaryPercent == 0
	})
	if got := stepNotes(h); !slices.Equal(got, []string{"1", "2", "3"}) {
		t.Fatalf("steps in the history = %v, want 1, 2, 3", got)
	}
	for i, e := range f.engines {
		if fig, ok := e.GuardFigures(); !ok || fig.Canary.Samples >= 100000 {
			t.Fatalf("engine %d figures: %+v, %v", i, fig, ok)
		}
		if e.Status().Guard.Tripped {
			t.Fatalf("engine %d's own guard tripped; the test wants the fleet's evidence only", i)
		}
	}
	// The verdict's figures are in the status.
	var fleetGate *ramp.GateState
	for i := range st.Gates {
		if st.Gates[i].Gate == ramp.GateFleet {
			fleetGate = &st.Gates[i]
		}
	}
	if fleetGate == nil || fleetGate.Fleet == nil || fleetGate.Fleet.Instances != 5 || fleetGate.Verdict != "fail" {
		t.Fatalf("fleet gate state = %+v", fleetGate)
	}
}

// Killing the leader mid-step: another controller takes over within the
// lease's TTL and continues the same step; the history has each step once,
// in order.
func TestLeaderCrashContinuesTheSameStep(t *testing.T) {
	prefix := testPrefix(t)
	const plan = "salt: s\ncanary_percent: 0\nramp:\n  steps: [10% 2s, 20% 2s, 30% 2s, 50% 2s]\n  check_interval: 100ms\n"
	f := newFleet(t, prefix, 2, plan)
	cliA := etcdClient(t)
	a, _ := startController(t, prefix, "ctl-a", cliA, nil)
	waitLeader(t, a, 10*time.Second)
	b, _ := startController(t, prefix, "ctl-b", etcdClient(t), nil)

	if _, err := b.Start(ctxT(t, 5*time.Second), alice); err != nil { // any controller takes operator actions
		t.Fatal(err)
	}
	// Crash the leader mid-step 2: its client goes away, its lease is not
	// revoked but expires.
	for {
		st, err := b.Status(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if st.Step == 1 && st.Applied {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond)
	if !a.IsLeader() || b.IsLeader() {
		t.Fatalf("leaders before the crash: a %v, b %v", a.IsLeader(), b.IsLeader())
	}
	crash := time.Now()
	_ = cliA.Close()
	waitLeader(t, b, 2*time.Second+2*time.Second)
	took := time.Since(crash)
	t.Logf("ctl-b took over %v after the crash (lease TTL 2s)", took)
	if took > 2500*time.Millisecond {
		t.Fatalf("takeover took %v, more than the 2s TTL (plus 500ms for the election's watch)", took)
	}
	st := waitPhase(t, b, 30*time.Second, ramp.PhaseDone, ramp.PhasePaused, ramp.PhaseRolledBack)
	if st.Phase != ramp.PhaseDone || st.Leader != "ctl-b" {
		t.Fatalf("after the crash: %s (%s), leader %q", st.Phase, st.Reason, st.Leader)
	}
	if got := stepNotes(rampHistory(t, f.store)); !slices.Equal(got, []string{"1", "2", "3", "4"}) {
		t.Fatalf("steps in the history = %v, want each once, in order", got)
	}
	waitAll(t, f.engines, time.Second, func(e *canary.Engine) bool { return e.Plan().CanaryPercent == 50 })
}

func TestOperatorActions(t *testing.T) {
	prefix := testPrefix(t)
	const plan = "salt: s\ncanary_percent: 0\nramp:\n  steps: [10% 1h, 20% 1h, 100%]\n  check_interval: 100ms\n"
	f := newFleet(t, prefix, 1, plan)
	c, _ := startController(t, prefix, "ctl", etcdClient(t), nil)
	ctx := ctxT(t, 30*time.Second)
	e := f.engines[0]

	if _, err := c.Resume(ctx, alice); !errors.Is(err, ramp.ErrPhase) {
		t.Fatalf("Resume of an idle ramp: %v, want ErrPhase", err)
	}
	if _, err := c.Start(ctx, planstore.Change{}); err == nil {
		t.Fatal("Start without an author accepted")
	}
	if _, err := c.Start(ctx, alice); err != nil {
		t.Fatal(err)
	}
	waitAll(t, []*canary.Engine{e}, 5*time.Second, func(e *canary.Engine) bool { return e.Plan().CanaryPercent == 10 })
	if _, err := c.Start(ctx, alice); !errors.Is(err, ramp.ErrPhase) {
		t.Fatalf("second Start: %v, want ErrPhase", err)
	}
	st, err := c.Pause(ctx, planstore.Change{Author: "bob", Note: "looking at a dashboard"})
	if err != nil || st.Phase != ramp.PhasePaused {
		t.Fatalf("Pause: %+v, %v", st, err)
	}
	if st.TimeLeft <= 59*time.Minute || st.TimeLeft > time.Hour {
		t.Fatalf("time left after pause = %v", st.TimeLeft)
	}
	waitHistory(t, f.store, "bob", "ramp paused by bob: looking at a dashboard at step 1/3 (10%)")
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	var js map[string]any
	if err := json.Unmarshal(b, &js); err != nil {
		t.Fatal(err)
	}
	if js["phase"] != "paused" || js["hold"] != "1h0m0s" || js["leader"] != "ctl" || js["time_left"] == "" {
		t.Fatalf("status JSON = %s", b)
	}
	if _, err := c.Resume(ctx, planstore.Change{Author: "bob"}); err != nil {
		t.Fatal(err)
	}
	waitHistory(t, f.store, "bob", "ramp resumed by bob at step 1/3")
	st, err = c.PromoteNow(ctx, planstore.Change{Author: "carol", Note: "ship it"})
	if err != nil || st.Phase != ramp.PhaseDone {
		t.Fatalf("PromoteNow: %+v, %v", st, err)
	}
	waitAll(t, []*canary.Engine{e}, 5*time.Second, func(e *canary.Engine) bool { return e.Plan().CanaryPercent == 100 })
	waitHistory(t, f.store, "carol", "ramp promoted by carol: ship it")
	if _, err := c.Abort(ctx, alice); !errors.Is(err, ramp.ErrPhase) {
		t.Fatalf("Abort of a finished ramp: %v, want ErrPhase", err)
	}

	// A new run, aborted: canary back to 0 %, the kill switch left off.
	if _, err := c.Start(ctx, alice); err != nil {
		t.Fatal(err)
	}
	waitAll(t, []*canary.Engine{e}, 5*time.Second, func(e *canary.Engine) bool { return e.Plan().CanaryPercent == 10 })
	if st, err = c.Abort(ctx, planstore.Change{Author: "dave", Note: "wrong build"}); err != nil || st.Phase != ramp.PhaseAborted || st.Run != 2 {
		t.Fatalf("Abort: %+v, %v", st, err)
	}
	waitAll(t, []*canary.Engine{e}, 5*time.Second, func(e *canary.Engine) bool {
		p := e.Plan()
		return p.CanaryPercent == 0 && !p.KillSwitch
	})
	waitHistory(t, f.store, "dave", "ramp aborted by dave: wrong build")
}

// A plan changed by hand under a running ramp pauses it: the controller
// never overwrites a human.
func TestManualPlanChangePausesTheRamp(t *testing.T) {
	prefix := testPrefix(t)
	const plan = "salt: s\ncanary_percent: 0\nramp:\n  steps: [10% 1h, 100%]\n  check_interval: 100ms\n"
	f := newFleet(t, prefix, 1, plan)
	c, _ := startController(t, prefix, "ctl", etcdClient(t), nil)
	ctx := ctxT(t, 30*time.Second)
	if _, err := c.Start(ctx, alice); err != nil {
		t.Fatal(err)
	}
	waitAll(t, f.engines, 5*time.Second, func(e *canary.Engine) bool { return e.Plan().CanaryPercent == 10 })
	cur, err := f.store.Get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	killed := strings.Replace(string(cur.Data), "kill_switch: false", "kill_switch: true", 1)
	if _, err := f.store.Apply(ctx, []byte(killed), cur.Version, planstore.Change{Author: "oncall", Note: "incident"}); err != nil {
		t.Fatal(err)
	}
	st := waitPhase(t, c, 5*time.Second, ramp.PhasePaused)
	if !strings.Contains(st.Reason, "changed outside the ramp") || !strings.Contains(st.Reason, "oncall") {
		t.Fatalf("reason = %q", st.Reason)
	}
	time.Sleep(300 * time.Millisecond)
	if p := f.engines[0].Plan(); !p.KillSwitch {
		t.Fatal("the controller turned the on-call's kill switch off")
	}
}

func waitLeader(t *testing.T, c *ramp.Controller, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !c.IsLeader() {
		if time.Now().After(deadline) {
			t.Fatalf("not leader within %v", d)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func waitAll(t *testing.T, es []*canary.Engine, d time.Duration, ok func(*canary.Engine) bool) {
	t.Helper()
	deadline := time.Now().Add(max(d, 0))
	for {
		all := true
		for _, e := range es {
			all = all && ok(e)
		}
		if all {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not every engine followed within %v", d)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func waitHistory(t *testing.T, s planstore.Store, author, notePrefix string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		for _, e := range rampHistory(t, s) {
			if e.Author == author && strings.HasPrefix(e.Note, notePrefix) {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	var notes []string
	for _, e := range rampHistory(t, s) {
		notes = append(notes, e.Author+": "+e.Note)
	}
	t.Fatalf("no history entry by %s starting %q:\n%s", author, notePrefix, strings.Join(notes, "\n"))
}

// A leader that wrote a step to the plan and died before recording it in
// the ramp's state: the next leader finds the step's note on the plan in
// force and does not write it again; the hold counts from the first write.
func TestNewLeaderDoesNotRepeatAWrittenStep(t *testing.T) {
	prefix := testPrefix(t)
	const plan = "salt: s\ncanary_percent: 0\nramp:\n  steps: [10% 1h, 100%]\n  check_interval: 100ms\n"
	f := newFleet(t, prefix, 1, plan)
	ctx := ctxT(t, 30*time.Second)
	const note = "ramp started by alice: step 1/2: 10% for 1h0m0s [ramp 1.1]"
	cur, err := f.store.Get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	written, err := f.store.Apply(ctx, []byte(strings.Replace(plan, "canary_percent: 0", "canary_percent: 10", 1)),
		cur.Version, planstore.Change{Author: "alice", Note: note})
	if err != nil {
		t.Fatal(err)
	}
	state := `{"phase":"running","run":1,"step":0,"steps":2,"percent":10,"applied":false,"seq":1,` +
		`"pending":{"author":"alice","note":"` + note + `"}}`
	cli := etcdClient(t)
	if _, err := cli.Put(ctx, prefix+"ramp/state", state); err != nil {
		t.Fatal(err)
	}
	c, _ := startController(t, prefix, "ctl", cli, nil)
	var st ramp.Status
	eventually(t, 5*time.Second, "the step recorded as applied", func() bool {
		st, err = c.Status(ctx)
		return err == nil && st.Applied
	})
	if st.Pending != nil || st.PlanVersion != written.Version || !st.StepStarted.Equal(written.Time) {
		t.Fatalf("state = %+v; want the step applied at version %d from %v", st.State, written.Version, written.Time)
	}
	time.Sleep(300 * time.Millisecond)
	if h := rampHistory(t, f.store); len(h) != 2 {
		t.Fatalf("history has %d entries, want the 2 written before the leader started", len(h))
	}
	if st.TimeLeft > time.Hour-time.Since(written.Time)+time.Second {
		t.Fatalf("time left %v: the hold did not count from the first write", st.TimeLeft)
	}
}
