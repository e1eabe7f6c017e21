package spec

import (
	"fmt"
	"time"

	"github.com/reqcanary/canary/internal/guard"
)

// Figures are one engine's cohort figures over its guard window (or the sum
// of several engines'): per cohort the samples, failures, the bounds on any
// one randomisation unit and the latency histogram, as the guard counts
// them. They encode to JSON; engines publish them (package ramp) and the
// controller sums them with [MergeFigures].
type Figures = guard.Export

// CohortFigures are one cohort's part of [Figures].
type CohortFigures = guard.CohortExport

// MergeFigures sums the figures of several engines. The bounds on one unit
// add up (a unit may have reached every engine), so the rules' leave-one-out
// stays conservative.
func MergeFigures(fs ...Figures) Figures { return guard.Merge(fs...) }

// Verdicts of a gate check.
const (
	VerdictPass    = "pass"    // the gate holds
	VerdictFail    = "fail"    // the gate failed: the ramp's OnFailure applies
	VerdictPending = "pending" // not enough evidence yet (fleet gate), or failed checks below Tries
)

// FleetVerdict is the result of a fleet gate check.
type FleetVerdict struct {
	// Verdict is VerdictPass, VerdictFail or VerdictPending.
	Verdict string `json:"verdict"`
	// Rule is the guard rule that tripped ("failure-rate",
	// "latency-p95"); "" unless the verdict is fail.
	Rule string `json:"rule,omitempty"`
	// Summary describes the figures in one line.
	Summary string `json:"summary"`
	// Instances is how many engines' figures were summed.
	Instances int `json:"instances"`
	// Window is the span the figures cover (the engines' guard window).
	Window time.Duration `json:"window"`
	// CanarySamples, StableSamples, CanaryFailureRate, StableFailureRate,
	// CanaryP95 and StableP95 are the summed figures.
	CanarySamples     uint64        `json:"canary_samples"`
	StableSamples     uint64        `json:"stable_samples"`
	CanaryFailureRate float64       `json:"canary_failure_rate"`
	StableFailureRate float64       `json:"stable_failure_rate"`
	CanaryP95         time.Duration `json:"canary_p95"`
	StableP95         time.Duration `json:"stable_p95"`
}

// Evaluate applies the guard's rules, with the gate's thresholds, to the
// (summed) figures f: fail when a rule trips, pass when both cohorts hold
// the gate's minimum samples and none trips, pending otherwise. It returns
// an error only for a gate that [Ramp.Check] refuses.
func (g FleetGate) Evaluate(f Figures) (FleetVerdict, error) {
	cfg := g.guardConfig()
	t, tripped, err := guard.EvaluateExport(cfg, f)
	if err != nil {
		return FleetVerdict{}, fmt.Errorf("ramp: fleet gate: %w", err)
	}
	s := f.Snapshot()
	v := FleetVerdict{Instances: f.Instances, Window: f.Window, CanarySamples: s.Canary.Samples, StableSamples: s.Stable.Samples,
		CanaryFailureRate: s.Canary.FailureRate, StableFailureRate: s.Stable.FailureRate,
		CanaryP95: s.Canary.P95, StableP95: s.Stable.P95}
	d := cfg.WithDefaults()
	switch {
	case tripped:
		v.Verdict, v.Rule, v.Summary = VerdictFail, string(t.Rule), t.String()+fmt.Sprintf(" from %d instances", f.Instances)
	case s.Canary.Samples >= uint64(d.MinCanarySamples) && s.Stable.Samples >= uint64(d.MinStableSamples):
		v.Verdict = VerdictPass
	default:
		v.Verdict = VerdictPending
	}
	if v.Summary == "" {
		v.Summary = fmt.Sprintf("canary %.2f%% of %d failed (p95 %v) vs stable %.2f%% of %d (p95 %v) from %d instances",
			100*s.Canary.FailureRate, s.Canary.Samples, s.Canary.P95, 100*s.Stable.FailureRate, s.Stable.Samples,
			s.Stable.P95, f.Instances)
		if v.Verdict == VerdictPending {
			v.Summary += fmt.Sprintf("; waiting for %d canary and %d stable samples", d.MinCanarySamples, d.MinStableSamples)
		}
	}
	return v, nil
}
