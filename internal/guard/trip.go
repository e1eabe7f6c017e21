package guard

import (
	"fmt"
	"log/slog"
	"time"
)

// Rule names the rule that tripped the guard.
type Rule string

const (
	// RuleFailureRate: the canary's failure rate is worse than stable's.
	RuleFailureRate Rule = "failure-rate"
	// RuleLatencyP95: the canary's p95 latency is worse than stable's.
	RuleLatencyP95 Rule = "latency-p95"
)

// Trip says why the guard found the canary worse than stable, with the
// figures it decided on, for the log record and the telemetry event.
type Trip struct {
	// Rule is the rule that tripped.
	Rule Rule
	// At is the instant of the decision.
	At time.Time
	// Window is the span the figures cover.
	Window time.Duration
	// Stable and Canary are the cohorts' figures over the window.
	Stable, Canary Figures
	// Z is the two-proportion z statistic of the canary's failure rate,
	// without its worst unit's failures (Figures.TopUnitFailures), against
	// stable's (computed whichever rule tripped), and ZCrit the
	// value it had to exceed at the configured confidence.
	Z, ZCrit float64
	// PValue is the p-value of the exact test that confirmed the rule:
	// Fisher's exact test of the failure rates for the failure rule; for the
	// latency rule, the binomial test that more than 5 % of the canary's
	// requests are slower than LatencyFactor × stable's p95.
	PValue float64
}

// String describes the trip in one line, e.g. "failure-rate: canary 21.0%
// of 100 failed vs stable 1.1% of 1000 over 10s (z=8.9 > 3.09)".
func (t Trip) String() string {
	switch t.Rule {
	case RuleLatencyP95:
		return fmt.Sprintf("%s: canary p95 %v of %d requests vs stable p95 %v of %d over %v (p=%.2g)",
			t.Rule, t.Canary.P95, t.Canary.Samples, t.Stable.P95, t.Stable.Samples, t.Window, t.PValue)
	default:
		return fmt.Sprintf("%s: canary %.1f%% of %d failed vs stable %.1f%% of %d over %v (z=%.2f > %.2f, p=%.2g)",
			t.Rule, 100*t.Canary.FailureRate, t.Canary.Samples, 100*t.Stable.FailureRate, t.Stable.Samples,
			t.Window, t.Z, t.ZCrit, t.PValue)
	}
}

// LogValue groups the trip's figures for log/slog: rule, window, z, and for
// each cohort samples, failures, failure_rate and p95.
func (t Trip) LogValue() slog.Value {
	cohort := func(key string, f Figures) slog.Attr {
		return slog.Group(key,
			slog.Uint64("samples", f.Samples),
			slog.Uint64("failures", f.Failures),
			slog.Float64("failure_rate", f.FailureRate),
			slog.Duration("p95", f.P95),
			slog.Uint64("client_cancelled", f.ClientCancelled),
			slog.Uint64("over_unit_cap", f.OverUnitCap),
			slog.Uint64("failing_units", f.FailingUnits),
			slog.Uint64("top_unit_failures", f.TopUnitFailures),
		)
	}
	return slog.GroupValue(
		slog.String("rule", string(t.Rule)),
		slog.Duration("window", t.Window),
		slog.Float64("z", t.Z),
		slog.Float64("p_value", t.PValue),
		cohort("canary", t.Canary),
		cohort("stable", t.Stable),
	)
}

var _ slog.LogValuer = Trip{}
