package guard

import (
	"time"
)

// This file lets figures leave the process: a guard's window exported as a
// plain value ([Guard.Export]), the exports of several instances summed
// ([Merge]), and the guard's statistic applied to the sum ([EvaluateExport]),
// so that a canary worse only in aggregate (no instance with enough samples
// of its own) is caught by whoever reads the fleet's figures.

// CohortExport is one cohort's counts over a window, in a form that sums
// across instances. Its fields are those of [Figures], plus the latency
// histogram; the rates and quantiles are derived from them.
type CohortExport struct {
	Samples         uint64 `json:"samples"`
	Failures        uint64 `json:"failures"`
	ClientCancelled uint64 `json:"client_cancelled,omitempty"`
	OverUnitCap     uint64 `json:"over_unit_cap,omitempty"`
	UntrackedUnits  uint64 `json:"untracked_units,omitempty"`
	FailingUnits    uint64 `json:"failing_units,omitempty"`
	// TopUnitFailures and TopUnitSamples bound what any one unit counted.
	// Summed over instances they stay bounds (a unit may reach several
	// instances), which the leave-one-out of the rules then uses.
	TopUnitFailures uint64 `json:"top_unit_failures,omitempty"`
	TopUnitSamples  uint64 `json:"top_unit_samples,omitempty"`
	// Latency is the latency histogram as [bin, count] pairs of its
	// non-empty bins, in bin order (see [HistogramBins]).
	Latency [][2]uint64 `json:"latency,omitempty"`
}

// Export is the figures of both cohorts over one guard window (or the sum of
// several instances' windows), as a plain value that encodes to JSON.
type Export struct {
	// At is when the window was read (the newest of a merge).
	At time.Time `json:"at"`
	// Window is the span the window covers (the longest of a merge).
	Window time.Duration `json:"window"`
	// Instances is how many exports were summed (1 for a guard's own).
	Instances int `json:"instances"`
	// Stable and Canary are the cohorts' counts.
	Stable CohortExport `json:"stable"`
	Canary CohortExport `json:"canary"`
	// Spans are the window's suffixes, newest first, as in
	// [Snapshot.Spans]: the failure rule reads them.
	Spans []Span `json:"spans,omitempty"`
}

// Export returns the guard's current window as an [Export].
func (g *Guard) Export() Export {
	var hists [2]Histogram
	s := g.read(&hists)
	return Export{At: s.At, Window: s.Window, Instances: 1,
		Stable: exportCohort(s.Stable, &hists[stableIdx]),
		Canary: exportCohort(s.Canary, &hists[canaryIdx]),
		Spans:  s.Spans}
}

func exportCohort(f Figures, h *Histogram) CohortExport {
	c := CohortExport{Samples: f.Samples, Failures: f.Failures, ClientCancelled: f.ClientCancelled,
		OverUnitCap: f.OverUnitCap, UntrackedUnits: f.UntrackedUnits, FailingUnits: f.FailingUnits,
		TopUnitFailures: f.TopUnitFailures, TopUnitSamples: f.TopUnitSamples}
	for b, n := range h.bins {
		if n > 0 {
			c.Latency = append(c.Latency, [2]uint64{uint64(b), n})
		}
	}
	return c
}

// histogram rebuilds the cohort's histogram; pairs naming a bin out of range
// are dropped, so a corrupt export cannot make it panic.
func (c *CohortExport) histogram() Histogram {
	var h Histogram
	for _, p := range c.Latency {
		if p[0] < HistogramBins {
			h.bins[p[0]] += p[1]
			h.count += p[1]
		}
	}
	return h
}

func (c *CohortExport) add(o *CohortExport) {
	c.Samples += o.Samples
	c.Failures += o.Failures
	c.ClientCancelled += o.ClientCancelled
	c.OverUnitCap += o.OverUnitCap
	c.UntrackedUnits += o.UntrackedUnits
	c.FailingUnits += o.FailingUnits
	c.TopUnitFailures += o.TopUnitFailures
	c.TopUnitSamples += o.TopUnitSamples
}

// Merge sums exports of several instances: counts and histograms add up,
// At is the newest, Window the longest, Instances the total. Spans add up
// by rank (the i-th newest span of each, as the instances' buckets are not
// aligned in time: each starts its window when it starts, so spans of the
// same rank cover the same period to within one bucket width), each with
// the earliest Since. The bounds on
// one unit (TopUnitFailures, TopUnitSamples) add up too, because each
// instance hashes units with a seed of its own, so that the same unit cannot
// be recognised across instances: the sum is the bound that holds when one
// unit reached every instance.
func Merge(xs ...Export) Export {
	var out Export
	var hs [2]Histogram
	for i := range xs {
		x := &xs[i]
		if x.At.After(out.At) {
			out.At = x.At
		}
		out.Window = max(out.Window, x.Window)
		out.Instances += max(x.Instances, 1)
		out.Stable.add(&x.Stable)
		out.Canary.add(&x.Canary)
		hs[stableIdx].mergeChecked(x.Stable.histogram())
		hs[canaryIdx].mergeChecked(x.Canary.histogram())
		out.Spans = addSpansByRank(out.Spans, x.Spans)
	}
	out.Stable.Latency = exportCohort(Figures{}, &hs[stableIdx]).Latency
	out.Canary.Latency = exportCohort(Figures{}, &hs[canaryIdx]).Latency
	return out
}

func (h *Histogram) mergeChecked(o Histogram) { h.Merge(&o) }

// addSpansByRank adds b's spans to a's, rank by rank (newest first); the
// result has the longer length and, per rank, the earlier Since. Spans
// are suffixes of a window, each holding the newer ones, so past the end of
// the shorter list (an instance that started or re-armed more recently) its
// oldest span, all it has, counts in every older rank: the merged spans stay
// nested. Neither input is modified.
func addSpansByRank(a, b []Span) []Span {
	out := make([]Span, max(len(a), len(b)))
	for i := range out {
		x, y := rankSpan(a, i), rankSpan(b, i)
		switch {
		case x == nil:
			out[i] = *y
		case y == nil:
			out[i] = *x
		default:
			out[i] = AddSpans([]Span{*x}, []Span{{Since: x.Since, Stable: y.Stable, Canary: y.Canary}})[0]
			if y.Since.Before(x.Since) {
				out[i].Since = y.Since
			}
		}
	}
	return out
}

// rankSpan is s[i], or s's oldest span past its end; nil when s is empty.
func rankSpan(s []Span, i int) *Span {
	if len(s) == 0 {
		return nil
	}
	return &s[min(i, len(s)-1)]
}

// figures derives a cohort's [Figures] from its export: the samples are the
// histogram's count, failures at most the samples.
func (c *CohortExport) figures(h *Histogram) Figures {
	f := Figures{Samples: h.Count(), Failures: min(c.Failures, h.Count()), ClientCancelled: c.ClientCancelled,
		OverUnitCap: c.OverUnitCap, UntrackedUnits: c.UntrackedUnits, FailingUnits: c.FailingUnits,
		TopUnitFailures: c.TopUnitFailures, TopUnitSamples: c.TopUnitSamples}
	if f.Samples > 0 {
		f.FailureRate = float64(f.Failures) / float64(f.Samples)
		f.P50 = h.Quantile(0.50)
		f.P95 = h.Quantile(0.95)
		f.P99 = h.Quantile(0.99)
	}
	return f
}

// Snapshot returns the figures the export holds, as [Guard.Snapshot] would.
func (x Export) Snapshot() Snapshot {
	hs := [2]Histogram{x.Stable.histogram(), x.Canary.histogram()}
	return Snapshot{At: x.At, Window: x.Window,
		Stable: x.Stable.figures(&hs[stableIdx]), Canary: x.Canary.figures(&hs[canaryIdx]), Spans: x.Spans}
}

// EvaluateExport applies the guard's rules, configured by cfg (zero fields
// take their defaults; only the rule thresholds matter, not the window's
// shape), to the figures of x, as [Guard.Evaluate] does to its own window.
// It returns the errors of [Config.Validate].
func EvaluateExport(cfg Config, x Export) (Trip, bool, error) {
	if err := cfg.Validate(); err != nil {
		return Trip{}, false, err
	}
	cfg = cfg.WithDefaults()
	g := &Guard{cfg: cfg, threshold: cfg.evidenceThreshold()}
	hs := [2]Histogram{x.Stable.histogram(), x.Canary.histogram()}
	s := Snapshot{At: x.At, Window: x.Window,
		Stable: x.Stable.figures(&hs[stableIdx]), Canary: x.Canary.figures(&hs[canaryIdx]), Spans: x.Spans}
	t, ok := g.evaluate(s, &hs)
	return t, ok, nil
}
