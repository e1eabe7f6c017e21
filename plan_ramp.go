package canary

import (
	"slices"

	yaml "go.yaml.in/yaml/v3"

	"github.com/reqcanary/canary/ramp/spec"
)

// ramp reads the plan's ramp section with package ramp/spec's parser, which
// checks it too; its problems become PlanErrors with their lines.
func (w *planWalker) ramp(p *Plan, path string, n *yaml.Node) {
	r, problems := spec.ParseNode(path, n)
	for _, pr := range problems {
		w.errs = append(w.errs, &PlanError{Key: pr.Key, Line: pr.Line, Column: pr.Column, Reason: pr.Reason})
	}
	if len(problems) == 0 {
		p.Ramp = r
	}
}

// cloneRamp returns a deep copy of r.
func cloneRamp(r *spec.Ramp) *spec.Ramp {
	c := *r
	c.Steps = slices.Clone(r.Steps)
	for i, s := range c.Steps {
		if s.Gates != nil {
			g := cloneGates(*s.Gates)
			c.Steps[i].Gates = &g
		}
	}
	c.Gates = cloneGates(r.Gates)
	return &c
}

func cloneGates(g spec.Gates) spec.Gates {
	if g.Fleet != nil {
		f := *g.Fleet
		g.Fleet = &f
	}
	g.Prometheus = slices.Clone(g.Prometheus)
	for i, pg := range g.Prometheus {
		if pg.Max != nil {
			v := *pg.Max
			g.Prometheus[i].Max = &v
		}
		if pg.Min != nil {
			v := *pg.Min
			g.Prometheus[i].Min = &v
		}
	}
	return g
}

// GuardFigures returns the figures of the engine's guard window (both
// cohorts' counts and latency histograms, per randomisation unit as the
// guard counts them) for the fleet's ramp controller to sum (see
// ramp.NewPublisher); false when the guard is off. Safe for concurrent use.
func (e *Engine) GuardFigures() (spec.Figures, bool) {
	gs := e.g.state.Load()
	if gs == nil {
		return spec.Figures{}, false
	}
	return gs.g.Export(), true
}
