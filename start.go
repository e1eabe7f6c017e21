package canary

import "context"

// WithDeferredStart makes [New] start nothing in the background: the engine
// watches its plan file, evaluates its guard, follows the fleet's switch
// ([WithFleetSwitch]) and reports its guard gauges only once [Engine.Start]
// has been called. It is for applications with a start phase, such as
// go.uber.org/fx (fxmodule uses it): an engine that is built but never
// started, because the application failed to build, holds no goroutine, no
// connection and no metric callback, so dropping it without Close leaks
// nothing.
//
// Before Start the engine decides as a started one would: New has loaded
// the plan (from [WithPlan] or the file of [WithPlanFile]) and, with
// [WithFleetSwitch], read the fleet's kill switch once (New still fails when
// the fleet's store cannot be reached). What waits for Start: a changed plan file is not
// read, the guard records outcomes but is not evaluated (it cannot trip),
// changes to the fleet's switch are not seen, and, with WithFleetSwitch,
// [Engine.TurnKillSwitch] (and [Engine.RearmGuard] when a guard holds the
// fleet's switch) return an error matching [ErrNotStarted], since the fleet
// cannot be written yet.
//
// Default: New starts the background work before it returns, so Start is
// not needed.
func WithDeferredStart() Option {
	return optionFunc(func(c *config) { c.deferStart = true })
}

// Start starts the engine's background work: watching the plan file
// ([WithPlanFile]), evaluating the guard, following the fleet's kill switch
// ([WithFleetSwitch]) and reporting the guard gauges. New calls it unless
// [WithDeferredStart] is given; call it for an engine made with that option,
// and [Engine.Close] it when done.
//
// With WithFleetSwitch, Start subscribes to the fleet's changes and re-reads
// its state; ctx and FleetConfig.StartTimeout bound that first contact, and
// Start returns an error when the fleet's store cannot be reached. A failed Start leaves
// nothing running and may be retried.
//
// Start is idempotent: once it has succeeded, later calls return nil. After
// Close it returns [ErrClosed]. It is safe to call concurrently, with Close
// too.
func (e *Engine) Start(ctx context.Context) error {
	e.life.Lock()
	defer e.life.Unlock()
	switch {
	case e.closed:
		return ErrClosed
	case e.started:
		return nil
	}
	if err := e.startGuard(ctx); err != nil {
		return err
	}
	if e.watcher != nil {
		e.watcher.start()
	}
	if e.ps != nil {
		e.ps.start()
	}
	e.started = true
	return nil
}
