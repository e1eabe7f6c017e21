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
}

func figuresOf(fails uint64, h *Histogram) Figures {
	f := Figures{Samples: h.Count(), Failures: fails}
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
}
