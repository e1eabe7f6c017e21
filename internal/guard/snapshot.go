package guard

import "time"

// Figures are one cohort's numbers over a window.
type Figures struct {
	// Samples is the number of requests recorded.
	Samples uint64
	// Failures is how many of them failed.
	Failures uint64
	// FailureRate is Failures / Samples, 0 when there are no samples.
	FailureRate float64
	// P50, P95 and P99 are latency quantiles, within [HistogramMaxError];
	// 0 when there are no samples.
	P50, P95, P99 time.Duration

	// ClientCancelled counts the requests whose client went away before the
	// answer: neither samples nor failures.
	ClientCancelled uint64
	// OverUnitCap counts outcomes left out because their unit had already
	// counted Config.UnitSamples outcomes in their bucket.
	OverUnitCap uint64
	// UntrackedUnits counts outcomes of units not tracked (counted without
	// the per-unit cap) because their bucket already tracked Config.MaxUnits
	// units.
	UntrackedUnits uint64
	// FailingUnits estimates how many distinct units had a failure counted
	// (an outcome without a unit is a unit of its own); exact but for hash
	// collisions for a few, within a few percent up to a few hundred.
	FailingUnits uint64
	// TopUnitFailures bounds the failures counted for any one unit: the
	// failure rule leaves that many failures out, so that no single unit
	// can trip the guard alone.
	TopUnitFailures uint64
	// TopUnitSamples bounds the samples counted for any one unit: the
	// latency rule leaves that many slow requests out.
	TopUnitSamples uint64
}

func figuresOf(n *counts, c int) Figures {
	h := &n.hists[c]
	f := Figures{Samples: h.Count(), Failures: n.fails[c], ClientCancelled: n.cancelled[c],
		OverUnitCap: n.capped[c], UntrackedUnits: n.untracked[c]}
	f.FailingUnits, f.TopUnitFailures = n.unitFailures(c)
	f.TopUnitSamples = n.topUnitSamples(c)
	if f.Failures > f.Samples {
		f.Failures = f.Samples // a Record caught between its two counters
	}
	if f.Samples > 0 {
		f.FailureRate = float64(f.Failures) / float64(f.Samples)
		f.P50 = h.Quantile(0.50)
		f.P95 = h.Quantile(0.95)
		f.P99 = h.Quantile(0.99)
	}
	return f
}

// Snapshot is what the guard's window holds at one instant.
type Snapshot struct {
	// At is the instant the window was read.
	At time.Time
	// Window is the span the window covers (Buckets × BucketWidth; its newest
	// bucket is the one in progress).
	Window time.Duration
	// Stable and Canary are the cohorts' figures.
	Stable, Canary Figures
	// Spans are the window's suffixes, one per bucket, newest first: the
	// bucket in progress alone, then with each older bucket in turn, the
	// last being the whole window. The failure rule reads them.
	Spans []Span
}
