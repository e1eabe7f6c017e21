package canary

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/reqcanary/canary/internal/guard"
	"github.com/reqcanary/canary/tenant"
)

// Sources of the kill switch other than the operator's run-time switch
// (Engine.kill) and the plan, as bits of guardEngine.kill.
const (
	killGuard           uint32 = 1 << iota // this process's guard tripped
	killFleetOperator                      // the fleet's switch is on, set by an operator
	killFleetGuard                         // the fleet's switch is on, set by a guard
	killOperatorPending                    // an operator turned it on here; the fleet is not told yet (killswitch.go)
)

// guardState is the guard in force: immutable, swapped when the plan's guard
// section changes.
type guardState struct {
	cfg    GuardConfig // as given (Enabled true)
	source string      // "plan" or "option"
	g      *guard.Guard
}

// guardEngine is the engine's guard, the kill-switch sources it and the fleet
// add, and the telemetry of both. Decide reads only kill, an atomic.
type guardEngine struct {
	base     *GuardConfig
	clock    guard.Clock
	manual   bool
	instance string

	state atomic.Pointer[guardState] // the guard in force; nil when off
	kill  atomic.Uint32
	trip  atomic.Pointer[guard.Trip] // the local trip in force; nil when armed

	mu        sync.Mutex // serialises config changes, trips, re-arms and fleet changes
	tripBase  int64      // fleet version known when the local trip happened
	fleetSeen int64      // newest fleet version applied

	fleet *fleetLink // nil without WithFleetSwitch
	tel   *telemetry

	stop, done chan struct{} // the evaluation loop; nil when it does not run (set under Engine.life)
}

// initGuard sets up the guard, the telemetry and the fleet switch from cfg;
// the plan in force is already stored. With a deferred start it reads the
// fleet's state once; it returns an error when that read fails. It starts
// nothing: see startGuard.
func (e *Engine) initGuard(cfg *config) error {
	o := &cfg.guard
	e.g.base, e.g.clock, e.g.manual = o.base, o.clock, o.manual
	if e.g.clock == nil {
		e.g.clock = guard.SystemClock{}
	}
	e.g.instance = o.fleetCfg.Instance
	if e.g.instance == "" {
		e.g.instance = defaultInstance()
	}
	e.g.tel = newTelemetry(e, cfg.meter, o.logs)
	e.applyGuardConfig(e.cur.Load())
	if o.fleet != nil {
		f, err := newFleetLink(e, o.fleet, o.fleetCfg)
		if err != nil {
			return err
		}
		if cfg.deferStart {
			if err := f.load(context.Background()); err != nil {
				_ = f.sw.Close()
				return err
			}
		}
		e.g.fleet = f
	}
	return nil
}

// startGuard starts following the fleet's switch, reporting the guard
// gauges and the evaluation loop. When it fails nothing is left running.
func (e *Engine) startGuard(ctx context.Context) error {
	if f := e.g.fleet; f != nil {
		if err := f.start(ctx); err != nil {
			return err
		}
	}
	e.g.tel.register(e)
	if !e.g.manual && (e.g.base != nil || e.watcher != nil || e.g.state.Load() != nil) {
		e.g.stop, e.g.done = make(chan struct{}), make(chan struct{})
		go e.guardLoop()
	}
	return nil
}

// closeGuard stops the evaluation loop, the fleet switch and the telemetry.
func (e *Engine) closeGuard() {
	if e.g.stop != nil {
		close(e.g.stop)
		<-e.g.done
		e.g.stop = nil
	}
	if e.g.fleet != nil {
		e.g.fleet.closeWriteBack()
		if err := e.g.fleet.sw.Close(); err != nil {
			e.log.Warn("canary: closing the fleet kill switch", "error", err)
		}
	}
	if e.g.tel != nil {
		e.g.tel.close()
	}
}

// guardConfigFor returns the guard configuration that applies under plan p,
// and where it comes from ("plan", "option", or "" when the guard is off).
func (e *Engine) guardConfigFor(p *compiledPlan) (GuardConfig, string) {
	switch {
	case p != nil && p.plan.Guard != nil:
		return *p.plan.Guard, "plan"
	case e.g.base != nil:
		return *e.g.base, "option"
	}
	return GuardConfig{}, ""
}

// applyGuardConfig makes the guard follow plan p: off, on, or reconfigured
// (with an empty window) when its configuration changed. A trip in force
// stays in force: only a re-arm ends it.
func (e *Engine) applyGuardConfig(p *compiledPlan) {
	cfg, src := e.guardConfigFor(p)
	e.g.mu.Lock()
	defer e.g.mu.Unlock()
	cur := e.g.state.Load()
	if !cfg.Enabled {
		if cur != nil {
			e.g.state.Store(nil)
			e.log.Warn("canary: guard off", "source", src)
		}
		return
	}
	if cur != nil && cur.cfg == cfg {
		if cur.source != src {
			e.g.state.Store(&guardState{cfg: cfg, source: src, g: cur.g})
		}
		return
	}
	g, err := guard.New(cfg.internal(), e.g.clock)
	if err != nil { // validated by the plan check or WithGuard; kept as a safety net
		e.log.Error("canary: guard configuration refused; guard unchanged", "error", err)
		return
	}
	e.g.state.Store(&guardState{cfg: cfg, source: src, g: g})
	d := cfg.WithDefaults()
	e.log.Info("canary: guard armed", "source", src, "window", cfg.Window(),
		"failure_ratio", d.FailureRatio, "failure_margin", d.FailureMargin, "failure_evidence", d.FailureEvidence,
		"confidence", d.Confidence,
		"latency_factor", d.LatencyFactor, "cooldown", cfg.Cooldown)
}

// guardLoop evaluates the guard a few times per bucket width until Close.
func (e *Engine) guardLoop() {
	defer close(e.g.done)
	t := time.NewTimer(e.evalInterval())
	defer t.Stop()
	for {
		select {
		case <-e.g.stop:
			return
		case <-t.C:
			e.evaluateGuard()
			t.Reset(e.evalInterval())
		}
	}
}

// evalInterval is a tenth of the bucket width (at least 5ms): the failure
// rule's sequential test stays valid however often it looks, so looking
// often only shortens the wait for a trip. A second while the guard is off,
// to notice a plan that turns it on.
func (e *Engine) evalInterval() time.Duration {
	gs := e.g.state.Load()
	if gs == nil {
		return time.Second
	}
	return max(gs.cfg.WithDefaults().BucketWidth/10, 5*time.Millisecond)
}

// evaluateGuard trips the guard when the window says the canary is worse,
// and re-arms it when its cooldown is over.
func (e *Engine) evaluateGuard() {
	gs := e.g.state.Load()
	if gs == nil {
		return
	}
	if t := e.g.trip.Load(); t != nil {
		if cd := gs.cfg.Cooldown; cd > 0 && e.g.clock.Now().Sub(t.At) >= cd {
			if err := e.rearm(context.Background(), "cooldown"); err != nil {
				e.log.Warn("canary: guard cooldown: re-arming the fleet", "error", err)
			}
		}
		return
	}
	if e.g.kill.Load()&killFleetGuard != 0 {
		return // another instance's guard holds the fleet's switch
	}
	if t, ok := gs.g.Evaluate(); ok {
		e.tripGuard(gs, t)
	}
}

// tripGuard turns the kill switch on for trip t, logs and reports it, and
// tells the fleet.
func (e *Engine) tripGuard(gs *guardState, t guard.Trip) {
	e.g.mu.Lock()
	if e.g.state.Load() != gs || e.g.trip.Load() != nil {
		e.g.mu.Unlock()
		return
	}
	e.g.trip.Store(&t)
	e.g.kill.Store(e.g.kill.Load() | killGuard)
	if e.g.fleet != nil {
		e.g.tripBase = e.g.fleet.sw.State().Version
	}
	e.g.mu.Unlock()

	e.log.Error("canary: guard tripped: kill switch on, every new request is stable until re-armed",
		"trip", t, "summary", t.String(), "cooldown", gs.cfg.Cooldown)
	e.g.tel.tripped(t)
	if e.g.fleet != nil {
		if err := e.g.fleet.set(true, fleetReasonGuard+": "+t.String()); err != nil {
			e.log.Error("canary: guard tripped but the fleet could not be told; only this instance is rolled back",
				"error", err)
		}
	}
}

// RearmGuard re-arms the guard after a trip: the kill switch the guard turned
// on turns off (on every instance with [WithFleetSwitch]), and the guard's
// window is emptied, so the failures that tripped it do not trip it again.
// The operator's switch and the plan's kill_switch are left as they are. It
// returns an error only when the fleet cannot be written; the local guard is
// re-armed even then. Safe for concurrent use.
func (e *Engine) RearmGuard(ctx context.Context) error { return e.rearm(ctx, "operator") }

// rearm re-arms the local guard and, when the fleet's switch is held by a
// guard, the fleet's. by says who (for the log).
func (e *Engine) rearm(ctx context.Context, by string) error {
	e.g.mu.Lock()
	was := e.g.trip.Swap(nil)
	e.g.kill.Store(e.g.kill.Load() &^ killGuard)
	if gs := e.g.state.Load(); gs != nil {
		gs.g.Reset()
	}
	e.g.mu.Unlock()
	if was != nil {
		e.log.Info("canary: guard re-armed: kill switch off", "by", by)
		e.g.tel.rearmed(by)
	}
	if f := e.g.fleet; f != nil {
		if st := f.sw.State(); st.On && isGuardReason(st.Reason) {
			return f.setCtx(ctx, false, "re-armed by "+by)
		}
	}
	return nil
}

// killReason is the Labels.Reason of a request decided while the kill switch
// is on: kill-switch when an operator or the plan holds it, guard when only a
// guard does.
func (e *Engine) killReason(p *compiledPlan) string {
	if e.kill.Load() || p.plan.KillSwitch || e.g.kill.Load()&(killFleetOperator|killOperatorPending) != 0 {
		return tenant.ReasonKillSwitch
	}
	return tenant.ReasonGuard
}

// guardOn reports whether a guard is configured: the engine's middleware and
// server interceptors report outcomes only then, so that an engine without a
// guard reads no clock and wraps no ResponseWriter.
func (e *Engine) guardOn() bool { return e.g.state.Load() != nil }
