package canary

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// ErrFleetPending is matched by the error [Engine.TurnKillSwitch] returns
// when it turned the kill switch on in this process but could not write it
// to the fleet (its store, such as Redis, is down or slow): the switch is on
// here, and the engine writes it to the fleet as soon as the store answers
// again.
var ErrFleetPending = errors.New("canary: kill switch on in this process; the fleet is not told yet")

// Back-off of the write-back of an operator's ON to the fleet.
const (
	writeBackFirst = 50 * time.Millisecond
	writeBackMax   = 500 * time.Millisecond
)

// writeBack is the operator's switch as the fleet owes it: an ON that could
// not be written, retried in the background until the fleet's store takes it.
type writeBack struct {
	mu      sync.Mutex  // serialises the operator's writes: TurnKillSwitch and the write-back
	owed    bool        // an ON is owed to the fleet; under mu
	owedNow atomic.Bool // owed, readable without mu (Status must not wait for a stalled write)
	reason  string      // its reason; under mu
	running bool        // the retry goroutine runs; under mu
	started bool        // the fleet switch is started, so a goroutine may run; under mu
	closed  bool        // under mu
	stop    chan struct{}
	wg      sync.WaitGroup
}

// TurnKillSwitch is the operator's kill switch. On: every new request is
// stable with reason kill-switch. Off: the operator's switch turns off and
// the guard is re-armed (see [Engine.RearmGuard]); a plan whose kill_switch
// is true keeps everyone stable. note says why, for the logs and the fleet
// state (at most 200 bytes are kept).
//
// With [WithFleetSwitch] it acts on every instance. Turning the switch on
// never waits for the fleet's store (Redis, with fleetswitch/redisswitch):
// it takes effect in this process before the fleet is written, and when the
// fleet cannot be written (the store down or slow, or the engine not
// started yet) it stays on here, the engine writes it to the fleet as soon
// as the store answers (retrying every half second at most), and the error
// matches [ErrFleetPending]; [Status] shows fleet.pending meanwhile. Turning
// it off needs the fleet: when the store cannot be written, nothing changes
// and the error says so. Without a fleet switch it acts on
// this process, like [Engine.SetKillSwitch], and returns nil. Safe for
// concurrent use.
func (e *Engine) TurnKillSwitch(ctx context.Context, on bool, note string) error {
	if len(note) > 200 {
		note = note[:200]
	}
	reason := fleetReasonOperator
	if note != "" {
		reason += ": " + note
	}
	f := e.g.fleet
	if f == nil {
		e.kill.Store(on)
		if on {
			e.log.Warn("canary: kill switch turned on by an operator", "note", note, "fleet", false)
			return nil
		}
		e.log.Info("canary: kill switch turned off by an operator", "note", note, "fleet", false)
		return e.rearm(ctx, "operator")
	}
	if on {
		e.g.kill.Or(killOperatorPending) // at once, before any network call
		e.log.Warn("canary: kill switch turned on by an operator", "note", note, "fleet", true)
		return f.turnOn(ctx, reason)
	}
	if err := f.turnOff(ctx, reason); err != nil {
		return err
	}
	e.kill.Store(false)
	e.log.Info("canary: kill switch turned off by an operator", "note", note, "fleet", true)
	return e.rearm(ctx, "operator")
}

// turnOn writes the operator's ON to the fleet; when that fails it owes it
// and starts the write-back.
func (f *fleetLink) turnOn(ctx context.Context, reason string) error {
	wb := &f.wb
	wb.mu.Lock()
	defer wb.mu.Unlock()
	err := f.setCtx(ctx, true, reason)
	if err == nil {
		wb.owed = false
		wb.owedNow.Store(false)
		f.e.g.kill.And(^killOperatorPending) // the fleet's state holds it now
		return nil
	}
	wb.owed, wb.reason = true, reason
	wb.owedNow.Store(true)
	f.startWriteBackLocked()
	f.e.log.Error("canary: kill switch on in this process only; it is written to the fleet when Redis answers",
		"error", err)
	return fmt.Errorf("%w: %w", ErrFleetPending, err)
}

// turnOff writes the operator's OFF to the fleet, and drops an owed ON.
func (f *fleetLink) turnOff(ctx context.Context, reason string) error {
	wb := &f.wb
	wb.mu.Lock()
	defer wb.mu.Unlock()
	if err := f.setCtx(ctx, false, reason); err != nil {
		return fmt.Errorf("canary: kill switch stays on: turning it off needs the fleet's Redis: %w", err)
	}
	wb.owed = false
	wb.owedNow.Store(false)
	f.e.g.kill.And(^killOperatorPending)
	return nil
}

// pending reports whether an ON is owed to the fleet, without waiting for a
// write in progress.
func (f *fleetLink) pending() bool { return f.wb.owedNow.Load() }

// startWriteBackLocked starts the retry goroutine when an ON is owed, the
// switch is started and none runs. wb.mu is held.
func (f *fleetLink) startWriteBackLocked() {
	wb := &f.wb
	if !wb.owed || !wb.started || wb.running || wb.closed {
		return
	}
	if wb.stop == nil {
		wb.stop = make(chan struct{})
	}
	wb.running = true
	wb.wg.Add(1)
	go f.writeBackLoop(wb.stop)
}

// writeBackStarted is called once the fleet switch is started: an ON owed
// from before Start is written from now on.
func (f *fleetLink) writeBackStarted() {
	f.wb.mu.Lock()
	defer f.wb.mu.Unlock()
	f.wb.started = true
	f.startWriteBackLocked()
}

// closeWriteBack stops the retry goroutine and waits for it.
func (f *fleetLink) closeWriteBack() {
	f.wb.mu.Lock()
	f.wb.closed = true
	if f.wb.stop != nil {
		close(f.wb.stop)
	}
	f.wb.mu.Unlock()
	f.wb.wg.Wait()
}

// writeBackLoop writes the owed ON until the fleet's store takes it, the
// operator turns the switch off, or the engine closes.
func (f *fleetLink) writeBackLoop(stop <-chan struct{}) {
	wb := &f.wb
	defer wb.wg.Done()
	delay := writeBackFirst
	t := time.NewTimer(delay)
	defer t.Stop()
	for {
		select {
		case <-stop:
			wb.mu.Lock()
			wb.running = false
			wb.mu.Unlock()
			return
		case <-t.C:
		}
		wb.mu.Lock()
		if !wb.owed {
			wb.running = false
			wb.mu.Unlock()
			return
		}
		err := f.set(true, wb.reason)
		if err == nil {
			wb.owed, wb.running = false, false
			wb.owedNow.Store(false)
			f.e.g.kill.And(^killOperatorPending)
			wb.mu.Unlock()
			f.e.log.Info("canary: the operator's kill switch is written to the fleet", "key", f.sw.Key())
			return
		}
		wb.mu.Unlock()
		delay = min(2*delay, writeBackMax)
		t.Reset(delay)
	}
}
