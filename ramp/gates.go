package ramp

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/reqcanary/canary/ramp/spec"
)

// GateFleet is the name of the fleet gate in [GateState.Gate]; a Prometheus
// gate is "prometheus:" and its name.
const GateFleet = "fleet"

// checkGates checks every gate of the step once, recording each in st, and
// returns the gate that failed (nil when none did) and the action its
// failure calls for ("" for the ramp's OnFailure). At 100 % there is no
// stable cohort to compare with: the fleet gate is not checked there.
func (c *Controller) checkGates(ctx context.Context, st *State, g spec.Gates) (*GateState, string) {
	action := ""
	if st.Percent >= 100 {
		g.Fleet = nil
	}
	now := time.Now().UTC().Round(0)
	keep := map[string]bool{}
	var failed *GateState
	record := func(gs *GateState, verdict, summary string, value float64) {
		gs.At, gs.Summary, gs.Value = now, summary, value
		gs.Checks++
		c.tel.checked(gs.Gate, verdict)
		gs.Verdict = verdict
		if verdict == spec.VerdictFail && failed == nil {
			failed = gs
		}
	}
	if f := g.Fleet; f != nil {
		keep[GateFleet] = true
		gs := st.gate(GateFleet)
		figs, n, err := c.fleetFigures(ctx)
		if err != nil {
			record(gs, spec.VerdictPending, "fleet figures not read: "+err.Error(), 0)
		} else if n == 0 {
			gs.Fleet = nil
			record(gs, spec.VerdictPending, "no engine publishes figures (is the guard on and a publisher running?)", 0)
		} else if v, err := f.Evaluate(figs); err != nil {
			record(gs, spec.VerdictFail, err.Error(), 0)
		} else {
			gs.Fleet = &v
			if v.Verdict == spec.VerdictFail {
				gs.Failed++
			}
			record(gs, v.Verdict, v.Summary, v.CanaryFailureRate)
		}
	}
	for _, pg := range g.Prometheus {
		name := "prometheus:" + pg.Name
		keep[name] = true
		gs := st.gate(name)
		val, err := c.queryProm(ctx, pg.Query)
		ok := err == nil
		var summary string
		switch {
		case err != nil:
			summary = err.Error()
		case pg.Max != nil && val > *pg.Max:
			ok, summary = false, fmt.Sprintf("%g is above the maximum %g", val, *pg.Max)
		case pg.Min != nil && val < *pg.Min:
			ok, summary = false, fmt.Sprintf("%g is below the minimum %g", val, *pg.Min)
		default:
			summary = fmt.Sprintf("%g within bounds", val)
		}
		if ok {
			gs.FailedInARow = 0
			record(gs, spec.VerdictPass, summary, val)
			continue
		}
		gs.Failed++
		gs.FailedInARow++
		summary = fmt.Sprintf("%s (failed check %d of %d in a row)", summary, gs.FailedInARow, pg.TriesOf())
		if gs.FailedInARow >= pg.TriesOf() {
			if failed == nil && err != nil {
				action = pg.OnError
			}
			record(gs, spec.VerdictFail, summary, val)
		} else {
			record(gs, spec.VerdictPending, summary, val)
		}
	}
	// Forget the gates the step no longer has.
	out := st.Gates[:0]
	for _, gs := range st.Gates {
		if keep[gs.Gate] {
			out = append(out, gs)
		}
	}
	st.Gates = out
	if failed != nil { // the pointer may have moved with the compaction
		for i := range st.Gates {
			if st.Gates[i].Gate == failed.Gate {
				failed = &st.Gates[i]
			}
		}
	}
	return failed, action
}

func (c *Controller) figuresPrefix() string { return c.cfg.Prefix + "figures/" }

// fleetFigures sums the figures engines published within FiguresMaxAge,
// and says how many were summed.
func (c *Controller) fleetFigures(ctx context.Context) (spec.Figures, int, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.OpTimeout)
	defer cancel()
	resp, err := c.cfg.Client.Get(ctx, c.figuresPrefix(), clientv3.WithPrefix())
	if err != nil {
		return spec.Figures{}, 0, fmt.Errorf("%w: read %s: %w", ErrUnavailable, c.figuresPrefix(), err)
	}
	oldest := time.Now().Add(-c.cfg.FiguresMaxAge)
	var figs []spec.Figures
	var bad []string
	for _, kv := range resp.Kvs {
		var f spec.Figures
		if err := json.Unmarshal(kv.Value, &f); err != nil {
			bad = append(bad, string(kv.Key))
			continue
		}
		if f.At.Before(oldest) {
			continue
		}
		figs = append(figs, f)
	}
	if len(bad) > 0 {
		c.cfg.Logger.Warn("ramp: published figures not readable; left out", "keys", strings.Join(bad, ","))
	}
	return spec.MergeFigures(figs...), len(figs), nil
}
