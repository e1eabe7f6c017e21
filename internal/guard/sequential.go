package guard

import (
	"math"
	"time"
)

// Span is one suffix of the window: the figures from the start of one of its
// buckets up to the instant the window was read. [Snapshot.Spans] lists one
// per bucket, newest first, so the first holds the bucket in progress alone
// and the last the whole window. The failure rule looks for the span where
// the canary's failures began.
//
// Every field is a sum over requests, so the spans of several instances'
// snapshots with the same Since add up to the fleet's span (the per-unit
// bounds then add up to a bound that is at least as large: safe).
type Span struct {
	// Since is the start of the span's oldest bucket.
	Since time.Time `json:"since"`
	// Stable and Canary are the cohorts' counts over the span.
	Stable SpanCounts `json:"stable"`
	Canary SpanCounts `json:"canary"`
}

// SpanCounts are one cohort's counts over a [Span].
type SpanCounts struct {
	// Samples and Failures count the outcomes recorded (successes and
	// failures, as in [Figures]).
	Samples  uint64 `json:"samples"`
	Failures uint64 `json:"failures"`
	// TopUnitFailures bounds the failures of any one unit over the span
	// (see [Figures.TopUnitFailures]); the failure rule leaves them out.
	TopUnitFailures uint64 `json:"top_unit_failures,omitempty"`
}

// spanAcc sums the counts of consecutive buckets, newest first, with the
// canary's failure sketch summed cell by cell for the per-unit bound.
type spanAcc struct {
	samples, fails [2]uint64
	units          bool                // the canary's sketch may be non-zero
	sketch         [sketchCells]uint32 // the canary's failures by unit cell
	inSketch       uint64              // failures in the sketch
	top            uint32              // largest cell
}

// add adds one bucket's counts.
func (a *spanAcc) add(c *counts) {
	for ci := range a.samples {
		a.samples[ci] += c.hists[ci].count
		a.fails[ci] += c.fails[ci]
	}
	if !c.units[canaryIdx] {
		return
	}
	a.units = true
	for i, n := range c.sketch[canaryIdx] {
		if n == 0 {
			continue
		}
		v := a.sketch[i] + n
		a.sketch[i] = v
		a.inSketch += uint64(n)
		a.top = max(a.top, v)
	}
}

// span returns the sums so far as the span that starts at since.
func (a *spanAcc) span(since time.Time) Span {
	cohort := func(ci int) SpanCounts {
		f := min(a.fails[ci], a.samples[ci]) // a Record caught between its counters
		return SpanCounts{Samples: a.samples[ci], Failures: f}
	}
	s := Span{Since: since, Stable: cohort(stableIdx), Canary: cohort(canaryIdx)}
	// As counts.unitFailures: failures without a unit are units of one
	// failure each; without any unit in the sketch, one such failure.
	f := s.Canary.Failures
	top := uint64(a.top)
	if !a.units {
		top = 0
	}
	if f > min(a.inSketch, f) {
		top = max(top, 1)
	}
	s.Canary.TopUnitFailures = min(top, f)
	return s
}

// The failure rule's sequential test.
//
// Within a span, condition on the failures: under the null hypothesis that
// the canary fails no more often than stable, each failure is the canary's
// with probability at most π0 = nc/(nc+ns), the canary's share of the span's
// samples, whatever the common failure rate is and however it moves (a
// shared outage makes both cohorts fail and changes nothing). When the
// canary fails r times as often as stable, a failure is the canary's with
// probability π(r) = r·nc/(r·nc+ns). The evidence of a span is the log of
// the likelihood ratio of its x canary and y stable failures, mixed over a
// grid of ratios r:
//
//	Λ = Σ_k w_k · (π(r_k)/π0)^x · ((1−π(r_k))/(1−π0))^y
//
// Read failure by failure from the start of the span, Λ is a non-negative
// martingale (a supermartingale when the canary is better) under the null,
// so by Ville's inequality the chance that it ever reaches 1/α is at most α,
// however often it is looked at: an always-valid test per start. The rule
// trips when some span's Λ reaches the threshold; the spans start at the
// window's bucket boundaries, so a change is found within one bucket of
// when it began, and the evidence from before it (healthy traffic) does not
// dilute it. The false-trip rate is then at most α per bucket of start, i.e.
// per hour at most α·3600 s/BucketWidth; docs/guard.md gives what is
// measured, far lower.

// ratioGrid is the canary/stable failure-rate ratios the evidence is mixed
// over, as multiples of FailureRatio: 1, 3, 9, 27 and 81 times it (2 to 162
// times stable's rate for the default FailureRatio). Five ratios cost ln 5 =
// 1.6 nats of evidence against the best of them; a ratio between two of
// them loses little more.
var ratioGrid = [...]float64{1, 3, 9, 27, 81}

// logRatioWeight is the log of each ratio's weight in the mixture (equal).
var logRatioWeight = -math.Log(float64(len(ratioGrid)))

// evidence returns the log likelihood ratio, mixed over the ratio grid, of x
// canary failures among nc samples and y stable failures among ns samples,
// the alternatives being canary failure rates minRatio × ratioGrid times
// stable's; 0 when the span says nothing (no canary failure, or an empty
// cohort).
func evidence(x, nc, y, ns uint64, minRatio float64) float64 {
	if x == 0 || nc == 0 || ns == 0 {
		return 0
	}
	fc, fs := float64(nc), float64(ns)
	pi0 := fc / (fc + fs)
	lnPi0, ln1Pi0 := math.Log(pi0), math.Log1p(-pi0)
	fx, fy := float64(x), float64(y)
	best := math.Inf(-1)
	var terms [len(ratioGrid)]float64
	for k, m := range ratioGrid {
		r := minRatio * m
		pi := r * fc / (r*fc + fs)
		t := fx*(math.Log(pi)-lnPi0) + fy*(math.Log1p(-pi)-ln1Pi0)
		terms[k] = t
		best = max(best, t)
	}
	sum := 0.0
	for _, t := range terms {
		sum += math.Exp(t - best)
	}
	return best + math.Log(sum) + logRatioWeight
}

// failureVerdict is the failure rule's reading of a snapshot: the span with
// the most evidence among those that pass the rate gates.
type failureVerdict struct {
	span     Span
	evidence float64
	x, nc    uint64 // the canary's failures and samples without its worst unit
	ok       bool   // some span passed the gates
}

// failureEvidence reads the spans of s and returns the one with the most
// evidence whose rates pass the gates: the canary's failure rate, without
// its worst unit over the span, above FailureRatio × stable's and stable's
// + FailureMargin over the same span.
func (cfg *Config) failureEvidence(spans []Span) failureVerdict {
	var v failureVerdict
	for _, sp := range spans {
		c, st := sp.Canary, sp.Stable
		top := min(c.TopUnitFailures, c.Failures)
		x, nc := c.Failures-top, c.Samples-top
		if x == 0 || nc == 0 || st.Samples == 0 {
			continue
		}
		crate := float64(x) / float64(nc)
		srate := float64(st.Failures) / float64(st.Samples)
		if crate <= srate*cfg.FailureRatio || crate-srate <= cfg.FailureMargin {
			continue
		}
		e := evidence(x, nc, st.Failures, st.Samples, cfg.FailureRatio)
		if !v.ok || e > v.evidence {
			v = failureVerdict{span: sp, evidence: e, x: x, nc: nc, ok: true}
		}
	}
	return v
}

// AddSpans returns the spans of two snapshots added up, for judging the
// figures of several guards (instances) as one: spans with the same Since
// are summed (their per-unit bounds too, which bounds the sum safely), and a
// span only one side has is kept as it is. Both inputs are newest first, as
// in [Snapshot.Spans], and so is the result. Neither input is modified.
func AddSpans(a, b []Span) []Span {
	out := make([]Span, 0, max(len(a), len(b)))
	i, j := 0, 0
	add := func(x, y SpanCounts) SpanCounts {
		return SpanCounts{Samples: x.Samples + y.Samples, Failures: x.Failures + y.Failures,
			TopUnitFailures: x.TopUnitFailures + y.TopUnitFailures}
	}
	for i < len(a) || j < len(b) {
		switch {
		case j == len(b) || i < len(a) && a[i].Since.After(b[j].Since):
			out = append(out, a[i])
			i++
		case i == len(a) || b[j].Since.After(a[i].Since):
			out = append(out, b[j])
			j++
		default:
			out = append(out, Span{Since: a[i].Since, Stable: add(a[i].Stable, b[j].Stable), Canary: add(a[i].Canary, b[j].Canary)})
			i, j = i+1, j+1
		}
	}
	return out
}
