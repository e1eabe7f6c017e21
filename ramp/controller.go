package ramp

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/reqcanary/canary/planstore"
	"github.com/reqcanary/canary/ramp/spec"
)

// Controller runs a fleet's ramp. Create it with [New] in every instance
// (or in a few), and call [Controller.Run]: one of them leads at a time and
// moves the ramp; the others wait to take over. The operator methods
// (Start, Pause, Resume, Abort, PromoteNow, Status) work on any of them,
// leader or not. A Controller is safe for concurrent use.
type Controller struct {
	cfg Config
	tel *telemetry

	leading atomic.Bool
	runs    atomic.Bool
	ownRev  atomic.Int64 // revision of the leader's own last state write

	promOnce      sync.Once
	promTransport *http.Transport
	prom          querier
	promErr       error
}

// leadership is the leader's election key, which fences its state writes.
type leadership struct {
	key string
	rev int64
}

// New returns a Controller configured by cfg; it contacts nothing until
// Run or an operator method is called. It returns an error naming the
// field when cfg is invalid.
func New(cfg Config) (*Controller, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	c := &Controller{cfg: cfg, promTransport: newPromTransport()}
	c.tel = newTelemetry(c, cfg.MeterProvider, cfg.LoggerProvider)
	return c, nil
}

// IsLeader reports whether this controller leads the ramp now.
func (c *Controller) IsLeader() bool { return c.leading.Load() }

// Run campaigns for leadership and, while it leads, moves the ramp; when it
// loses the lease it campaigns again. It returns when ctx ends, after
// resigning (so another controller takes over at once), or at once with an
// error when the controller already runs.
func (c *Controller) Run(ctx context.Context) error {
	if !c.runs.CompareAndSwap(false, true) {
		return errors.New("ramp: Controller.Run called twice")
	}
	defer c.runs.Store(false)
	defer c.tel.close()
	defer c.promTransport.CloseIdleConnections()
	for ctx.Err() == nil {
		if err := c.campaign(ctx); err != nil && ctx.Err() == nil {
			c.cfg.Logger.Warn("ramp: campaign", "instance", c.cfg.Instance, "error", err)
			select {
			case <-ctx.Done():
			case <-time.After(c.cfg.RetryInterval):
			}
		}
	}
	return nil
}

// campaign waits to be elected, then leads until ctx ends or the session
// is lost.
func (c *Controller) campaign(ctx context.Context) error {
	// The session lives on its own context, so that Close can still revoke
	// the lease after ctx ended (a clean hand-over).
	sctx, scancel := context.WithCancel(context.Background())
	defer scancel()
	sess, err := concurrency.NewSession(c.cfg.Client, concurrency.WithTTL(int(c.cfg.LeaseTTL/time.Second)),
		concurrency.WithContext(sctx))
	if err != nil {
		return fmt.Errorf("%w: session: %w", ErrUnavailable, err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), c.cfg.OpTimeout)
		defer cancel()
		_, _ = c.cfg.Client.Revoke(cctx, sess.Lease())
		sess.Orphan()
	}()
	el := concurrency.NewElection(sess, c.cfg.Prefix+"election/")
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, cancel)
	defer stop()
	go func() {
		select {
		case <-sess.Done():
			cancel()
		case <-cctx.Done():
		}
	}()
	if err := el.Campaign(cctx, c.cfg.Instance); err != nil {
		return fmt.Errorf("campaign: %w", err)
	}
	l := &leadership{key: el.Key(), rev: el.Rev()}
	c.leading.Store(true)
	c.cfg.Logger.Info("ramp: leading", "instance", c.cfg.Instance)
	c.tel.leader(true)
	defer func() {
		c.leading.Store(false)
		c.tel.leader(false)
		c.cfg.Logger.Info("ramp: no longer leading", "instance", c.cfg.Instance)
	}()
	c.lead(cctx, l)
	return nil
}

// lead ticks the ramp every check interval, and at once when the state
// changes (an operator's action), until ctx ends.
func (c *Controller) lead(ctx context.Context, l *leadership) {
	wake := make(chan struct{}, 1)
	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for resp := range c.cfg.Client.Watch(clientv3.WithRequireLeader(wctx), c.stateKey()) {
			for _, ev := range resp.Events {
				if ev.Kv.ModRevision != c.ownRev.Load() {
					select {
					case wake <- struct{}{}:
					default:
					}
				}
			}
		}
	}()
	defer wg.Wait()
	for {
		interval := c.tick(ctx, l)
		t := time.NewTimer(interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		case <-wake:
			t.Stop()
		}
	}
}

// tick reads the state and the plan, moves the ramp one step of work, and
// returns when to tick next.
func (c *Controller) tick(ctx context.Context, l *leadership) time.Duration {
	interval := spec.DefaultCheckInterval
	for range 4 { // a few transitions per tick at most (advance, then apply)
		again, next, err := c.step(ctx, l)
		if next > 0 {
			interval = next
		}
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, ErrConflict) {
				c.cfg.Logger.Warn("ramp: tick", "instance", c.cfg.Instance, "error", err)
			}
			return min(interval, c.cfg.RetryInterval)
		}
		if !again {
			break
		}
	}
	return interval
}

// step does one transition. again says another should follow at once.
func (c *Controller) step(ctx context.Context, l *leadership) (again bool, interval time.Duration, err error) {
	st, rev, err := c.readState(ctx)
	if err != nil {
		return false, 0, err
	}
	c.tel.observe(st)
	if st.Phase == PhaseIdle {
		return false, 0, nil
	}
	p, err := c.cfg.Store.Get(ctx)
	if err != nil {
		return false, 0, err
	}
	r, perr := spec.Parse(p.Data)
	if r != nil {
		interval = r.WithDefaults().CheckInterval
	}
	cur, ferr := readFields(p.Data)
	switch st.Phase {
	case PhaseRunning:
		if perr != nil || r == nil || ferr != nil {
			why := "the plan in force (version " + fmt.Sprint(p.Version) + ") has no ramp section"
			if perr != nil {
				why = "the plan's ramp section is invalid: " + perr.Error()
			} else if ferr != nil {
				why = ferr.Error()
			}
			return c.pause(ctx, l, st, rev, p, why)
		}
		return c.running(ctx, l, st, rev, p, r, cur)
	case PhasePaused:
		if st.Pending == nil {
			return false, interval, nil
		}
		return c.settle(ctx, l, st, rev, p, cur)
	default: // done, aborted, rolled back: write what they owe, then leave the plan alone
		if st.Pending == nil {
			return false, interval, nil
		}
		want := cur
		switch st.Phase {
		case PhaseDone:
			if r != nil && len(r.Steps) > 0 {
				want = planFields{Percent: r.Steps[len(r.Steps)-1].Percent}
			} else {
				want = planFields{Percent: st.Percent}
			}
		case PhaseAborted:
			want = planFields{}
		case PhaseRolledBack:
			want = planFields{Kill: true}
		}
		return c.settle(ctx, l, st, rev, p, want)
	}
}

// settle writes the plan with fields want and the state's pending audit
// note, unless that write already happened, then clears the note.
func (c *Controller) settle(ctx context.Context, l *leadership, st State, rev int64, p planstore.Plan, want planFields) (bool, time.Duration, error) {
	np, _, err := c.writePlan(ctx, p, want, st.Pending)
	if err != nil {
		return false, 0, err
	}
	st.Pending, st.PlanVersion = nil, np.Version
	return false, 0, c.commit(ctx, l, st, rev)
}

// running moves a running ramp: applies its step, checks its gates,
// advances, or acts on a failure.
func (c *Controller) running(ctx context.Context, l *leadership, st State, rev int64, p planstore.Plan, r *spec.Ramp, cur planFields) (bool, time.Duration, error) {
	rd := r.WithDefaults()
	interval := rd.CheckInterval
	if st.Step >= len(r.Steps) { // the ramp lost steps since
		st.Step = len(r.Steps) - 1
	}
	if st.Step < 0 { // a state written by hand
		st.Step = 0
	}
	st.Steps = len(r.Steps)
	step := r.Steps[st.Step]
	want := planFields{Percent: step.Percent}
	if !st.Applied {
		np, wrote, err := c.writePlan(ctx, p, want, st.Pending)
		if err != nil {
			return false, interval, err
		}
		st.Percent, st.Applied, st.Gates, st.Elapsed = step.Percent, true, nil, 0
		st.StepStarted = time.Now().UTC().Round(0)
		if !wrote && st.Pending != nil { // a previous leader wrote it: the hold counts from then
			st.StepStarted = np.Time
		}
		st.Pending, st.PlanVersion = nil, np.Version
		if err := c.commit(ctx, l, st, rev); err != nil {
			return false, interval, err
		}
		c.tel.stepChanged(st, np)
		return false, interval, nil
	}
	if st.Pending != nil { // an audit owed (a resume)
		return c.settle(ctx, l, st, rev, p, cur)
	}
	if cur != want {
		// Someone changed the plan under the ramp: never fight a human.
		why := fmt.Sprintf("the plan was changed outside the ramp (version %d by %s: canary_percent %g, kill_switch %v)",
			p.Version, p.Author, cur.Percent, cur.Kill)
		return c.pause(ctx, l, st, rev, p, why)
	}
	st.Percent = step.Percent
	failed, action := c.checkGates(ctx, &st, rd.GatesOf(st.Step))
	if failed != nil {
		if action == "" {
			action = rd.OnFailure
		}
		c.tel.failed(st, failed, action)
		why := fmt.Sprintf("gate %s failed at step %d/%d (%g%%): %s", failed.Gate, st.Step+1, len(r.Steps),
			step.Percent, failed.Summary)
		if action == spec.Pause {
			return c.pause(ctx, l, st, rev, p, why)
		}
		st.Phase, st.Reason = PhaseRolledBack, why
		st.audit(c.cfg.Author, "ramp rolled back: "+why)
		if err := c.commit(ctx, l, st, rev); err != nil {
			return false, interval, err
		}
		return true, interval, nil
	}
	held := time.Since(st.StepStarted) + st.Elapsed
	if held < step.Hold || !allPass(st.Gates) || time.Since(st.StepStarted) < fleetWindow(st.Gates) {
		return false, interval, c.commit(ctx, l, st, rev)
	}
	// The step passed.
	passed := fmt.Sprintf("step %d/%d (%g%%) held %v with its gates passing", st.Step+1, len(r.Steps),
		step.Percent, held.Round(time.Millisecond))
	if st.Step == len(r.Steps)-1 {
		st.Phase, st.Reason = PhaseDone, "all "+fmt.Sprint(len(r.Steps))+" steps passed"
		st.audit(c.cfg.Author, "ramp done: "+passed)
		err := c.commit(ctx, l, st, rev)
		return err == nil, interval, err
	}
	next := r.Steps[st.Step+1]
	st.Step++
	st.Applied, st.Gates, st.Elapsed = false, nil, 0
	st.audit(c.cfg.Author, fmt.Sprintf("ramp step %d/%d: %g%% for %v: %s", st.Step+1, len(r.Steps), next.Percent, next.Hold, passed))
	err := c.commit(ctx, l, st, rev)
	return err == nil, interval, err
}

// fleetWindow is the window of the fleet gate's figures (0 without one): a
// step passes its fleet gate only on figures gathered during the step, so
// it lasts at least that long after it was applied (or resumed).
func fleetWindow(gs []GateState) time.Duration {
	for _, g := range gs {
		if g.Gate == GateFleet && g.Fleet != nil {
			return g.Fleet.Window
		}
	}
	return 0
}

func allPass(gs []GateState) bool {
	for _, g := range gs {
		if g.Verdict != spec.VerdictPass {
			return false
		}
	}
	return true
}

// pause pauses the ramp for why, audited.
func (c *Controller) pause(ctx context.Context, l *leadership, st State, rev int64, p planstore.Plan, why string) (bool, time.Duration, error) {
	if st.Applied && !st.StepStarted.IsZero() {
		st.Elapsed += time.Since(st.StepStarted)
	}
	st.Phase, st.Reason = PhasePaused, why
	st.audit(c.cfg.Author, "ramp paused: "+why)
	if err := c.commit(ctx, l, st, rev); err != nil {
		return false, 0, err
	}
	c.cfg.Logger.Warn("ramp: paused", "reason", why)
	return true, 0, nil
}

// commit writes the state as the leader.
func (c *Controller) commit(ctx context.Context, l *leadership, st State, rev int64) error {
	nrev, err := c.writeState(ctx, st, rev, l)
	if err != nil {
		return err
	}
	c.ownRev.Store(nrev)
	c.tel.observe(st)
	return nil
}

// writePlan writes the plan with fields want, carrying the audit note pd
// (or, without one, only when the fields differ). It does nothing when the
// plan is already as wanted and pd was already written (its note is the
// plan's): so a new leader never repeats a write. wrote says whether it
// wrote.
func (c *Controller) writePlan(ctx context.Context, p planstore.Plan, want planFields, pd *pending) (planstore.Plan, bool, error) {
	cur, err := readFields(p.Data)
	if err != nil {
		return p, false, err
	}
	if pd != nil && p.Note == pd.Note && p.Author == pd.Author {
		return p, false, nil
	}
	if pd == nil && cur == want {
		return p, false, nil
	}
	data, err := setFields(p.Data, want)
	if err != nil {
		return p, false, err
	}
	ch := planstore.Change{Author: c.cfg.Author, Note: "ramp: set canary_percent " + fmt.Sprint(want.Percent)}
	if pd != nil {
		ch = planstore.Change{Author: pd.Author, Note: pd.Note}
	}
	np, err := c.cfg.Store.Apply(ctx, data, p.Version, ch)
	if err != nil {
		return p, false, fmt.Errorf("ramp: write the plan (from version %d): %w", p.Version, err)
	}
	c.cfg.Logger.Info("ramp: plan written", "version", np.Version, "canary_percent", want.Percent,
		"kill_switch", want.Kill, "author", ch.Author, "note", ch.Note)
	return np, true, nil
}
