package guard

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"
)

// Measurements of the failure rule in simulated time, for docs/guard.md:
// benchmarks, so that they run only when asked (each one plays many
// simulated hours), and report what they measure as metrics:
//
//	go test -run '^$' -bench 'Sim(DetectionTime|EvidenceUnderNull)' -benchtime 1x -timeout 1h ./internal/guard/
//
// GUARD_EVIDENCE=3000 plays them with that FailureEvidence (and the
// Confidence floor out of the way); GUARD_RUNS=50 sets the number of
// half-hours BenchmarkSimEvidenceUnderNull plays per case.

// tuneCfg applies GUARD_EVIDENCE (a FailureEvidence) to cfg, for tuning.
func tuneCfg(cfg Config) Config {
	if v, err := strconv.ParseFloat(os.Getenv("GUARD_EVIDENCE"), 64); err == nil {
		cfg.FailureEvidence, cfg.Confidence = v, 0.5
	}
	return cfg
}

// detection plays sc with seeds 0..n-1, the canary turning bad at onset, and
// returns the detection times (trip − onset), sorted, and how many seeds
// did not trip by the end or tripped before the onset.
func detection(b *testing.B, sc scenario, onset time.Duration, n int) (times []time.Duration, missed, early int) {
	for seed := range uint64(n) {
		trip, ok := sc.run(b, seed)
		switch {
		case !ok:
			missed++
		case trip.At.Sub(simStart) < onset:
			early++
		default:
			times = append(times, trip.At.Sub(simStart)-onset)
		}
	}
	slices.Sort(times)
	return times, missed, early
}

// quantile returns the q-quantile of sorted times (nearest rank), counting
// the missed runs as infinitely slow; -1 when it is one of them.
func quantile(times []time.Duration, missed int, q float64) time.Duration {
	n := len(times) + missed
	i := int(q*float64(n)+0.999999) - 1
	if i < 0 {
		i = 0
	}
	if i >= len(times) {
		return -1
	}
	return times[i]
}

// BenchmarkSimDetectionTime measures the time from the moment the canary
// starts failing to the trip, after a window full of healthy traffic, for
// 200 requests per second in all, at canary shares 1, 5, 10 and 20 %, for a
// large fault (20 % against stable's 1 %; with the defaults, with requests
// from users, and with a 60 s window, which a 1 % share needs) and a small
// one (2 % against 1 %, which the default failure_margin of 8 points ignores
// by design: measured with failure_margin 1e-9 and a 5 min window of 60
// buckets of 5 s).
// Evaluated every 100 ms, as the engine does.
func BenchmarkSimDetectionTime(b *testing.B) {
	type fault struct {
		name   string
		rate   float64
		cfg    Config
		limit  time.Duration
		seeds  int
		others int // canary users; 0: no units
	}
	faults := []fault{
		{"large-20pct", 0.20, Config{}, 30 * time.Second, 400, 0},
		{"large-20pct-users", 0.20, Config{}, 30 * time.Second, 400, 200},
		{"large-20pct-window60s", 0.20, Config{Buckets: 60}, time.Minute, 200, 0},
		{"small-2x", 0.02, Config{FailureMargin: 1e-9, Buckets: 60, BucketWidth: 5 * time.Second}, 10 * time.Minute, 100, 0},
	}
	for _, f := range faults {
		for _, share := range []float64{0.01, 0.05, 0.10, 0.20} {
			b.Run(fmt.Sprintf("%s/share-%g", f.name, share*100), func(b *testing.B) {
				onset := f.cfg.Window()
				canary := traffic{rps: 200 * share, fail: f.rate, healthy: 0.01, failFrom: onset,
					median: 20 * time.Millisecond, sigma: 0.5, users: f.others}
				stable := healthy(200*(1-share), 0.01)
				if f.others > 0 {
					stable.users = 2000
				}
				sc := scenario{cfg: tuneCfg(f.cfg), stable: stable, canary: canary,
					duration: onset + f.limit, evalEvery: 100 * time.Millisecond}
				for b.Loop() {
					times, missed, early := detection(b, sc, onset, f.seeds)
					ms := func(d time.Duration) float64 {
						if d < 0 {
							return -1
						}
						return float64(d) / float64(time.Millisecond)
					}
					b.ReportMetric(ms(quantile(times, missed, 0.5)), "p50-ms")
					b.ReportMetric(ms(quantile(times, missed, 0.95)), "p95-ms")
					b.ReportMetric(ms(quantile(times, missed, 1)), "max-ms")
					b.ReportMetric(float64(missed), "missed")
					b.ReportMetric(float64(early), "early")
				}
			})
		}
	}
}

// BenchmarkSimFalseTrips plays half-hours of equal failure rates (1 % and
// 5 %) and equal latencies, at 200 requests per second with 10 % canary,
// and with 2000 with 10 % canary, and reports the false trips per hour.
func BenchmarkSimFalseTrips(b *testing.B) {
	for _, total := range []float64{200, 2000} {
		for _, rate := range []float64{0.01, 0.05} {
			b.Run(fmt.Sprintf("total-%g/rate-%g", total, rate*100), func(b *testing.B) {
				sc := scenario{
					cfg:       tuneCfg(Config{}),
					stable:    withUsers(healthy(total*0.9, rate), 2000),
					canary:    withUsers(healthy(total*0.1, rate), 200),
					duration:  30 * time.Minute,
					evalEvery: 100 * time.Millisecond,
				}
				runs := 200
				if total > 200 {
					runs = 20
				}
				for b.Loop() {
					trips := 0
					for seed := range uint64(runs) {
						if _, ok := sc.run(b, seed); ok {
							trips++
						}
					}
					hours := float64(runs) * sc.duration.Hours()
					b.ReportMetric(float64(trips), "trips")
					b.ReportMetric(hours, "hours")
					b.ReportMetric(float64(trips)/hours, "trips/hour")
				}
			})
		}
	}
}

// BenchmarkSimEvidenceUnderNull plays half-hours of equal failure rates and
// reports, for thresholds of 6 to 12 nats, the fraction of half-hours in
// which the failure rule's evidence reached it: the false-trip probability
// per half-hour at that threshold (failure_evidence = e^threshold).
func BenchmarkSimEvidenceUnderNull(b *testing.B) {
	for _, total := range []float64{200, 2000} {
		for _, rate := range []float64{0.01, 0.05} {
			b.Run(fmt.Sprintf("total-%g/rate-%g", total, rate*100), func(b *testing.B) {
				runs := 200
				if total > 200 {
					runs = 20
				}
				if v, err := strconv.Atoi(os.Getenv("GUARD_RUNS")); err == nil {
					runs = v
				}
				for b.Loop() {
					var maxes []float64
					for seed := range uint64(runs) {
						m := 0.0
						sc := scenario{
							stable:      withUsers(healthy(total*0.9, rate), 2000),
							canary:      withUsers(healthy(total*0.1, rate), 200),
							duration:    30 * time.Minute,
							evalEvery:   100 * time.Millisecond,
							maxEvidence: &m,
						}
						sc.run(b, seed)
						maxes = append(maxes, m)
					}
					for h := 6.0; h <= 12; h++ {
						n := 0
						for _, m := range maxes {
							if m >= h {
								n++
							}
						}
						b.ReportMetric(float64(n)/float64(runs)*2, fmt.Sprintf("trips/hour@%g", h))
					}
				}
			})
		}
	}
}
