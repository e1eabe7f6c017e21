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
	// Window is the span the window covers.
	Window time.Duration
	// Stable and Canary are the cohorts' figures over the whole window.
	Stable, Canary Figures

	// Since is, for the failure rule, the start of the span of the window
	// it decided on (the bucket where the canary's failures began), and
	// SpanStable and SpanCanary the cohorts' counts over that span.
	Since                  time.Time
	SpanStable, SpanCanary SpanCounts
	// Evidence is, for the failure rule, the log likelihood ratio (in nats)
	// of the span's failures that it found, and Threshold the one it had to
	// reach: the larger of ln FailureEvidence and ln 1/(1−Confidence).
	Evidence, Threshold float64
	// Z is the two-proportion z statistic of the canary's failure rate,
	// without its worst unit's failures, against stable's: over the span
	// for the failure rule, over the window for the latency rule. For the
	// record only; the rules do not use it.
	Z float64
	// PValue is, for the failure rule, e^−Evidence: an always-valid
	// p-value for the span's start (the chance that a canary no worse than
	// stable ever showed that much evidence from there). For the latency
	// rule, the p-value of the binomial test that more than 5 % of the
	// canary's requests are slower than LatencyFactor × stable's p95.
	PValue float64
}

// String describes the trip in one line, e.g. "failure-rate: canary 21.0%
// of 48 failed vs stable 1.1% of 440 over the last 2.3s (evidence 10.2 ≥
// 9.9 nats, p=3.7e-05; window 10s: canary 5.3% of 205, stable 1.0% of
// 2011)".
func (t Trip) String() string {
	switch t.Rule {
	case RuleLatencyP95:
		return fmt.Sprintf("%s: canary p95 %v of %d requests vs stable p95 %v of %d over %v (p=%.2g)",
			t.Rule, t.Canary.P95, t.Canary.Samples, t.Stable.P95, t.Stable.Samples, t.Window, t.PValue)
	default:
		rate := func(c SpanCounts) float64 {
			if c.Samples == 0 {
				return 0
			}
			return 100 * float64(c.Failures) / float64(c.Samples)
		}
		return fmt.Sprintf("%s: canary %.1f%% of %d failed vs stable %.1f%% of %d over the last %v "+
			"(evidence %.1f ≥ %.1f nats, p=%.2g; window %v: canary %.1f%% of %d, stable %.1f%% of %d)",
			t.Rule, rate(t.SpanCanary), t.SpanCanary.Samples, rate(t.SpanStable), t.SpanStable.Samples,
			t.At.Sub(t.Since).Round(time.Millisecond), t.Evidence, t.Threshold, t.PValue,
			t.Window, 100*t.Canary.FailureRate, t.Canary.Samples, 100*t.Stable.FailureRate, t.Stable.Samples)
	}
}

// LogValue groups the trip's figures for log/slog: rule, window, z,
// p_value, and for each cohort samples, failures, failure_rate and p95; for
// the failure rule also the span it decided on (since, length, each cohort's
// samples and failures there), evidence and threshold.
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
	attrs := []slog.Attr{
		slog.String("rule", string(t.Rule)),
		slog.Duration("window", t.Window),
		slog.Float64("z", t.Z),
		slog.Float64("p_value", t.PValue),
		cohort("canary", t.Canary),
		cohort("stable", t.Stable),
	}
	if t.Rule == RuleFailureRate {
		span := func(key string, c SpanCounts) slog.Attr {
			return slog.Group(key, slog.Uint64("samples", c.Samples), slog.Uint64("failures", c.Failures),
				slog.Uint64("top_unit_failures", c.TopUnitFailures))
		}
		attrs = append(attrs,
			slog.Group("span", slog.Time("since", t.Since), slog.Duration("length", t.At.Sub(t.Since)),
				span("canary", t.SpanCanary), span("stable", t.SpanStable)),
			slog.Float64("evidence", t.Evidence), slog.Float64("threshold", t.Threshold))
	}
	return slog.GroupValue(attrs...)
}

var _ slog.LogValuer = Trip{}
