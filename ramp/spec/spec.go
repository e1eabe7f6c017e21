package spec

import (
	"errors"
	"math"
	"regexp"
	"strconv"
	"time"

	"github.com/reqcanary/canary/internal/guard"
)

// Failure actions, the values of [Ramp.OnFailure].
const (
	// Rollback sets the canary to 0 % and turns the plan's kill switch on.
	Rollback = "rollback"
	// Pause keeps the step's percentage and stops the ramp until an
	// operator resumes or aborts it.
	Pause = "pause"
)

// Defaults and limits of a [Ramp].
const (
	DefaultCheckInterval = time.Second
	MinCheckInterval     = 50 * time.Millisecond
	MaxCheckInterval     = time.Hour
	MaxSteps             = 100
	MaxHold              = 7 * 24 * time.Hour
	DefaultTries         = 3
	MaxTries             = 100
	MaxPromGates         = 20
	MaxQueryLen          = 4096
)

// Ramp is the plan's ramp section: the steps the canary percentage climbs,
// the gates that must hold during each step's hold, and what a failed gate
// does. In a plan:
//
//	ramp:
//	  steps:                   # "PERCENT% [HOLD]" or a mapping
//	    - 1% 2m
//	    - 5% 5m
//	    - percent: 25
//	      hold: 10m
//	      gates: {...}         # this step's gates instead of the ramp's
//	    - 100%
//	  gates:                   # every step's gates, unless the step has its own
//	    fleet:                 # the guard's statistic on the fleet's summed figures
//	      failure_margin: 0.02
//	    prometheus:
//	      - name: error-ratio
//	        query: sum(rate(errors{cohort="canary"}[1m])) / sum(rate(requests{cohort="canary"}[1m]))
//	        max: 0.05
//	        tries: 3
//	        on_error: pause    # Prometheus down or no data: pause instead
//	  on_failure: rollback     # or pause
//	  check_interval: 1s
//
// A step is passed when its hold has elapsed and the latest check of each
// of its gates passed; a gate that fails sends the ramp to OnFailure.
type Ramp struct {
	// Steps, in order: percentages strictly increasing, 1 to MaxSteps.
	Steps []Step `json:"steps"`
	// Gates are the gates of every step that has none of its own.
	Gates Gates `json:"gates"`
	// OnFailure is Rollback (the default) or Pause.
	OnFailure string `json:"on_failure,omitempty"`
	// CheckInterval is how often the controller checks the gates,
	// MinCheckInterval to MaxCheckInterval. Default DefaultCheckInterval.
	CheckInterval time.Duration `json:"check_interval,omitempty"`
}

// Step is one step of a ramp.
type Step struct {
	// Percent is the canary percentage of the step, above 0 and at most
	// 100, with at most two decimals.
	Percent float64 `json:"percent"`
	// Hold is how long the step lasts before the next one, 0 to MaxHold.
	Hold time.Duration `json:"hold,omitempty"`
	// Gates, when not nil, replace the ramp's gates for this step.
	Gates *Gates `json:"gates,omitempty"`
}

// Gates are the checks of a step. A step without any gate passes when its
// hold has elapsed.
type Gates struct {
	// Fleet, when not nil, applies the guard's statistic to the figures the
	// fleet's engines publish, summed.
	Fleet *FleetGate `json:"fleet,omitempty"`
	// Prometheus are PromQL checks.
	Prometheus []PromGate `json:"prometheus,omitempty"`
}

// FleetGate configures the guard's rules applied to the fleet's summed
// figures. Zero fields take the guard's defaults (see the plan's guard
// section and docs/guard.md): min_canary_samples 40, failure_ratio 2,
// failure_margin 0.08, confidence 0.999, latency_factor 1.5,
// latency_min_samples 100. The gate passes once both cohorts hold the
// minimum samples and no rule trips; before that it is pending.
type FleetGate struct {
	MinCanarySamples   int           `json:"min_canary_samples,omitempty"`
	MinStableSamples   int           `json:"min_stable_samples,omitempty"`
	FailureRatio       float64       `json:"failure_ratio,omitempty"`
	FailureMargin      float64       `json:"failure_margin,omitempty"`
	FailureEvidence    float64       `json:"failure_evidence,omitempty"`
	Confidence         float64       `json:"confidence,omitempty"`
	DisableFailureRule bool          `json:"disable_failure_rule,omitempty"`
	LatencyFactor      float64       `json:"latency_factor,omitempty"`
	LatencyMargin      time.Duration `json:"latency_margin,omitempty"`
	LatencyMinSamples  int           `json:"latency_min_samples,omitempty"`
	DisableLatencyRule bool          `json:"disable_latency_rule,omitempty"`
}

// PromGate is a PromQL query whose value must stay within a bound. A check
// fails when the value is out of bounds, when the query fails or returns no
// data, or when it returns more than one series; the gate fails after Tries
// failed checks in a row.
type PromGate struct {
	// Name identifies the gate in the status and the history: 1 to 64 of
	// a-z, 0-9, '-', '_', unique in its gates.
	Name string `json:"name"`
	// Query is an instant PromQL query returning one sample.
	Query string `json:"query"`
	// Max and Min bound the value (either or both; at least one).
	Max *float64 `json:"max,omitempty"`
	Min *float64 `json:"min,omitempty"`
	// Tries is how many failed checks in a row fail the gate, 1 to
	// MaxTries. Default DefaultTries.
	Tries int `json:"tries,omitempty"`
	// OnError, when set (Rollback or Pause), replaces the ramp's
	// OnFailure when the gate fails because Prometheus could not answer
	// (an error, a timeout, no data): e.g. roll back on a breach, pause on
	// an outage. Default: the ramp's OnFailure.
	OnError string `json:"on_error,omitempty"`
}

// Problem is one thing wrong with a ramp section: the dotted key (with list
// indexes, e.g. "ramp.steps[2].percent") and, for a section read from YAML,
// its line and column.
type Problem struct {
	Key          string
	Line, Column int
	Reason       string
}

// Error returns "line L: key: reason".
func (p Problem) Error() string {
	s := ""
	if p.Line > 0 {
		s = "line " + strconv.Itoa(p.Line) + ": "
	}
	return s + p.Key + ": " + p.Reason
}

// ErrInvalid is matched by the errors of [Parse] and [Ramp.Validate].
var ErrInvalid = errors.New("ramp: invalid ramp section")

// WithDefaults returns r with OnFailure, CheckInterval and each Prometheus
// gate's Tries filled in.
func (r Ramp) WithDefaults() Ramp {
	if r.OnFailure == "" {
		r.OnFailure = Rollback
	}
	if r.CheckInterval == 0 {
		r.CheckInterval = DefaultCheckInterval
	}
	return r
}

// GatesOf returns the gates of step i: its own, else the ramp's.
func (r *Ramp) GatesOf(i int) Gates {
	if i >= 0 && i < len(r.Steps) && r.Steps[i].Gates != nil {
		return *r.Steps[i].Gates
	}
	return r.Gates
}

// TriesOf returns the gate's Tries, defaulted.
func (g PromGate) TriesOf() int {
	if g.Tries == 0 {
		return DefaultTries
	}
	return g.Tries
}

// GuardConfig returns the guard configuration of the gate's rules.
func (f FleetGate) guardConfig() guard.Config {
	return guard.Config{MinCanarySamples: f.MinCanarySamples, MinStableSamples: f.MinStableSamples,
		FailureRatio: f.FailureRatio, FailureMargin: f.FailureMargin, FailureEvidence: f.FailureEvidence, Confidence: f.Confidence,
		DisableFailureRule: f.DisableFailureRule, LatencyFactor: f.LatencyFactor,
		LatencyMargin: f.LatencyMargin, LatencyMinSamples: f.LatencyMinSamples,
		DisableLatencyRule: f.DisableLatencyRule}
}

var gateName = regexp.MustCompile(`^[a-z0-9_-]{1,64}$`)

// Check returns what is wrong with r, keys under prefix (e.g. "ramp"). It
// does not change r.
func (r *Ramp) Check(prefix string) []Problem {
	var out []Problem
	fail := func(key, reason string) { out = append(out, Problem{Key: key, Reason: reason}) }
	switch n := len(r.Steps); {
	case n == 0:
		fail(prefix+".steps", "at least one step is required")
	case n > MaxSteps:
		fail(prefix+".steps", "more than "+strconv.Itoa(MaxSteps)+" steps")
	}
	for i, s := range r.Steps {
		key := prefix + ".steps[" + strconv.Itoa(i) + "]"
		if why := checkPercent(s.Percent); why != "" {
			fail(key+".percent", why)
		} else if i > 0 && s.Percent <= r.Steps[i-1].Percent {
			fail(key+".percent", "must be more than the previous step's "+fmtF(r.Steps[i-1].Percent)+
				", got "+fmtF(s.Percent))
		}
		if s.Hold < 0 || s.Hold > MaxHold {
			fail(key+".hold", "must be between 0s and "+MaxHold.String()+", got "+s.Hold.String())
		}
		if s.Gates != nil {
			s.Gates.check(key+".gates", fail)
		}
	}
	r.Gates.check(prefix+".gates", fail)
	switch r.OnFailure {
	case "", Rollback, Pause:
	default:
		fail(prefix+".on_failure", "must be rollback or pause, got "+strconv.Quote(r.OnFailure))
	}
	if d := r.CheckInterval; d != 0 && (d < MinCheckInterval || d > MaxCheckInterval) {
		fail(prefix+".check_interval", "must be between "+MinCheckInterval.String()+" and "+
			MaxCheckInterval.String()+", got "+d.String())
	}
	return out
}

func (g *Gates) check(prefix string, fail func(key, reason string)) {
	if f := g.Fleet; f != nil {
		if err := f.guardConfig().Validate(); err != nil {
			for _, e := range unjoin(err) {
				var ce *guard.ConfigError
				if errors.As(e, &ce) {
					fail(prefix+".fleet."+ce.Key, ce.Reason)
				}
			}
		}
	}
	if len(g.Prometheus) > MaxPromGates {
		fail(prefix+".prometheus", "more than "+strconv.Itoa(MaxPromGates)+" gates")
	}
	names := map[string]bool{}
	for i, p := range g.Prometheus {
		key := prefix + ".prometheus[" + strconv.Itoa(i) + "]"
		switch {
		case !gateName.MatchString(p.Name):
			fail(key+".name", "must be 1 to 64 of a-z, 0-9, '-' and '_', got "+strconv.Quote(p.Name))
		case names[p.Name]:
			fail(key+".name", "gate "+strconv.Quote(p.Name)+" is named twice")
		}
		names[p.Name] = true
		switch {
		case p.Query == "":
			fail(key+".query", "required: a PromQL query returning one sample")
		case len(p.Query) > MaxQueryLen:
			fail(key+".query", "longer than "+strconv.Itoa(MaxQueryLen)+" bytes")
		}
		if p.Max == nil && p.Min == nil {
			fail(key, "needs max or min (or both): the bound the query's value must keep")
		}
		for _, b := range []struct {
			k string
			v *float64
		}{{"max", p.Max}, {"min", p.Min}} {
			if b.v != nil && (math.IsNaN(*b.v) || math.IsInf(*b.v, 0)) {
				fail(key+"."+b.k, "must be a finite number")
			}
		}
		if p.Max != nil && p.Min != nil && *p.Min > *p.Max {
			fail(key+".min", "is more than max ("+fmtF(*p.Min)+" > "+fmtF(*p.Max)+")")
		}
		switch p.OnError {
		case "", Rollback, Pause:
		default:
			fail(key+".on_error", "must be rollback or pause, got "+strconv.Quote(p.OnError))
		}
		if p.Tries < 0 || p.Tries > MaxTries {
			fail(key+".tries", "must be between 1 and "+strconv.Itoa(MaxTries)+", got "+strconv.Itoa(p.Tries))
		}
	}
}

func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

func checkPercent(pct float64) string {
	switch {
	case math.IsNaN(pct) || math.IsInf(pct, 0):
		return "must be a number above 0 and at most 100"
	case pct <= 0 || pct > 100:
		return "must be above 0 and at most 100, got " + fmtF(pct)
	case math.Abs(pct*100-math.Round(pct*100)) > 1e-6:
		return "must have at most two decimals, got " + fmtF(pct)
	}
	return ""
}

func fmtF(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }
