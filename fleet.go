package canary

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/reqcanary/canary/fleetswitch"
)

// Reasons the engine writes in the fleet state; a reason is a guard's when it
// is fleetReasonGuard or starts with it and a colon.
const (
	fleetReasonGuard    = "guard"
	fleetReasonOperator = "operator"
)

func isGuardReason(r string) bool {
	return r == fleetReasonGuard || strings.HasPrefix(r, fleetReasonGuard+":")
}

// fleetLink is the engine's fleet-wide kill switch.
type fleetLink struct {
	e            *Engine
	sw           fleetswitch.Switch
	timeout      time.Duration
	startTimeout time.Duration
	warned       bool      // the fleet's switch was found on and said so; under the engine's start
	wb           writeBack // an operator's ON owed to the fleet (killswitch.go)
}

// newFleetLink opens the engine's fleet switch on backend; it contacts
// nothing.
func newFleetLink(e *Engine, backend fleetswitch.Backend, cfg FleetConfig) (*fleetLink, error) {
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultFleetPrefix
	}
	if cfg.StartTimeout == 0 {
		cfg.StartTimeout = DefaultFleetStartTimeout
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = fleetswitch.DefaultTimeout
	}
	sw, err := backend.Open(fleetswitch.Options{Prefix: cfg.Prefix, ResyncInterval: cfg.ResyncInterval,
		Timeout: cfg.Timeout, Logger: e.log})
	if err != nil {
		return nil, fmt.Errorf("%w: WithFleetSwitch: %w", ErrInvalidOption, err)
	}
	if sw == nil {
		return nil, fmt.Errorf("%w: WithFleetSwitch: backend: Open returned no switch", ErrInvalidOption)
	}
	sw.OnChange(e.applyFleet)
	return &fleetLink{e: e, sw: sw, timeout: cfg.Timeout, startTimeout: cfg.StartTimeout}, nil
}

// load reads the fleet's state once, within ctx and the start timeout, and
// applies it; nothing runs in the background afterwards.
func (f *fleetLink) load(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, f.startTimeout)
	defer cancel()
	if err := f.sw.Load(ctx); err != nil {
		return fmt.Errorf("canary: WithFleetSwitch: cannot read the fleet's kill switch: %w", err)
	}
	f.learnt()
	return nil
}

// start starts following the fleet's switch and applies the state it holds
// before returning. When it fails nothing is left running, and it may be
// called again.
func (f *fleetLink) start(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, f.startTimeout)
	defer cancel()
	if err := f.sw.Start(ctx); err != nil {
		return fmt.Errorf("canary: WithFleetSwitch: cannot read the fleet's kill switch: %w", err)
	}
	f.learnt()
	f.writeBackStarted()
	return nil
}

// learnt applies the state just read and warns, once, when it is on.
func (f *fleetLink) learnt() {
	st := f.sw.State()
	f.e.applyFleet(st)
	if st.On && !f.warned {
		f.warned = true
		f.e.log.Warn("canary: the fleet's kill switch is on: every request is stable",
			"key", f.sw.Key(), "reason", st.Reason, "actor", st.Actor, "at", st.At)
	}
}

// set writes the fleet state with the link's timeout.
func (f *fleetLink) set(on bool, reason string) error {
	ctx, cancel := context.WithTimeout(context.Background(), f.timeout)
	defer cancel()
	return f.setCtx(ctx, on, reason)
}

// setCtx writes the fleet state and applies it here at once.
func (f *fleetLink) setCtx(ctx context.Context, on bool, reason string) error {
	if len(reason) > fleetswitch.MaxReasonLen {
		reason = reason[:fleetswitch.MaxReasonLen]
	}
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	if err := f.sw.Set(ctx, on, reason, f.e.g.instance); err != nil {
		if errors.Is(err, fleetswitch.ErrNotStarted) {
			return fmt.Errorf("%w: WithDeferredStart: call Engine.Start before writing the fleet's kill switch", ErrNotStarted)
		}
		return fmt.Errorf("canary: fleet kill switch: %w", err)
	}
	f.e.applyFleet(f.sw.State())
	return nil
}

// applyFleet makes the engine follow the fleet's state st. An off state newer
// than this instance's trip re-arms the local guard too: the fleet holds one
// switch, and whoever turned it off meant it for every instance.
func (e *Engine) applyFleet(st fleetswitch.State) {
	e.g.mu.Lock()
	if st.Version < e.g.fleetSeen {
		e.g.mu.Unlock()
		return // a state older than one already applied
	}
	e.g.fleetSeen = st.Version
	bits := e.g.kill.Load() &^ (killFleetOperator | killFleetGuard)
	switch {
	case st.On && isGuardReason(st.Reason):
		bits |= killFleetGuard
	case st.On:
		bits |= killFleetOperator
	}
	rearmed := false
	if !st.On && e.g.trip.Load() != nil && st.Version > e.g.tripBase {
		e.g.trip.Store(nil)
		bits &^= killGuard
		if gs := e.g.state.Load(); gs != nil {
			gs.g.Reset()
		}
		rearmed = true
	}
	e.g.kill.Store(bits)
	e.g.mu.Unlock()
	if rearmed {
		e.log.Info("canary: guard re-armed by the fleet", "reason", st.Reason, "actor", st.Actor)
		e.g.tel.rearmed("fleet")
	}
}

// defaultInstance names this process: host name and process id.
func defaultInstance() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		h = "unknown-host"
	}
	return h + ":" + strconv.Itoa(os.Getpid())
}
