package guard

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/reqcanary/canary/tenant"
	"google.golang.org/grpc/codes"
)

func newTestGuard(t *testing.T, cfg Config) (*Guard, *ManualClock) {
	t.Helper()
	clk := NewManualClock(simStart)
	g, err := New(cfg, clk)
	if err != nil {
		t.Fatal(err)
	}
	return g, clk
}

// feed records n requests of cohort c, failed of them failing, all taking
// latency.
func feed(g *Guard, c tenant.Cohort, n, failed int, latency time.Duration) {
	for i := range n {
		g.Record(c, i < failed, latency)
	}
}

func TestSnapshotFigures(t *testing.T) {
	g, _ := newTestGuard(t, Config{})
	feed(g, tenant.Canary, 100, 30, 40*time.Millisecond)
	feed(g, tenant.Stable, 1000, 10, 20*time.Millisecond)
	g.RecordHTTP(tenant.Stable, 503, 20*time.Millisecond)
	g.RecordGRPC(tenant.Stable, codes.NotFound, 20*time.Millisecond)
	g.Record("", true, time.Second)     // no cohort: ignored
	g.Record("blue", true, time.Second) // unknown cohort: ignored

	s := g.Snapshot()
	if s.Canary.Samples != 100 || s.Canary.Failures != 30 || s.Canary.FailureRate != 0.3 {
		t.Errorf("canary figures %+v, want 100 samples, 30 failures, rate 0.3", s.Canary)
	}
	if s.Stable.Samples != 1002 || s.Stable.Failures != 11 {
		t.Errorf("stable figures %+v, want 1002 samples, 11 failures", s.Stable)
	}
	within := func(got, want time.Duration) bool {
		return float64(got) >= float64(want)*(1-HistogramMaxError) && float64(got) <= float64(want)*(1+HistogramMaxError)
	}
	if !within(s.Canary.P95, 40*time.Millisecond) || !within(s.Stable.P50, 20*time.Millisecond) {
		t.Errorf("p95 canary %v (want ~40ms), p50 stable %v (want ~20ms)", s.Canary.P95, s.Stable.P50)
	}
	if s.Window != 10*time.Second || !s.At.Equal(simStart) {
		t.Errorf("window %v at %v", s.Window, s.At)
	}
}

func TestWindowSlides(t *testing.T) {
	g, clk := newTestGuard(t, Config{Buckets: 4, BucketWidth: time.Second})
	feed(g, tenant.Canary, 10, 1, time.Millisecond) // bucket 0
	clk.Advance(1500 * time.Millisecond)
	feed(g, tenant.Canary, 20, 2, time.Millisecond) // bucket 1
	clk.Advance(2 * time.Second)                    // 3.5 s: buckets 0..3 in the window
	if got := g.Snapshot().Canary.Samples; got != 30 {
		t.Fatalf("at 3.5s: %d samples, want 30", got)
	}
	clk.Advance(time.Second) // 4.5 s: bucket 0 has left
	if got := g.Snapshot().Canary; got.Samples != 20 || got.Failures != 2 {
		t.Fatalf("at 4.5s: %+v, want the 20 samples of bucket 1", got)
	}
	// Recording in bucket 5 recycles the slot of bucket 1, which is still in
	// the window until 5 s... it is bucket 5 = slot 1, so bucket 1 leaves
	// exactly when bucket 5 begins.
	clk.Advance(time.Second) // 5.5 s
	feed(g, tenant.Canary, 3, 3, time.Millisecond)
	if got := g.Snapshot().Canary; got.Samples != 3 || got.Failures != 3 {
		t.Fatalf("at 5.5s: %+v, want only the 3 new samples", got)
	}
	clk.Advance(time.Hour)
	if got := g.Snapshot().Canary.Samples; got != 0 {
		t.Fatalf("an hour later: %d samples, want 0", got)
	}
}

func TestClockGoingBackDropsOnlyStaleSamples(t *testing.T) {
	g, clk := newTestGuard(t, Config{Buckets: 2, BucketWidth: time.Second})
	clk.Advance(10 * time.Second)
	feed(g, tenant.Stable, 5, 0, time.Millisecond)
	clk.Advance(-2 * time.Second) // bucket 8 shares a slot with bucket 10
	feed(g, tenant.Stable, 5, 0, time.Millisecond)
	clk.Advance(2 * time.Second)
	if got := g.Snapshot().Stable.Samples; got != 5 {
		t.Errorf("%d samples, want the 5 recorded in bucket 10 (the stale ones dropped)", got)
	}
	// Before the guard's origin works too.
	g2, clk2 := newTestGuard(t, Config{})
	clk2.Advance(-1500 * time.Millisecond)
	feed(g2, tenant.Stable, 4, 1, time.Millisecond)
	if got := g2.Snapshot().Stable; got.Samples != 4 || got.Failures != 1 {
		t.Errorf("before the origin: %+v", got)
	}
}

func TestReset(t *testing.T) {
	g, _ := newTestGuard(t, Config{})
	feed(g, tenant.Canary, 100, 50, time.Millisecond)
	feed(g, tenant.Stable, 100, 0, time.Millisecond)
	if _, ok := g.Evaluate(); !ok {
		t.Fatal("half the canary failing did not trip")
	}
	g.Reset()
	if s := g.Snapshot(); s.Canary.Samples != 0 || s.Stable.Samples != 0 {
		t.Fatalf("after Reset: %+v", s)
	}
	if trip, ok := g.Evaluate(); ok {
		t.Fatalf("tripped after Reset: %v", trip)
	}
	feed(g, tenant.Canary, 7, 0, time.Millisecond)
	if got := g.Snapshot().Canary.Samples; got != 7 {
		t.Fatalf("recording after Reset: %d samples, want 7", got)
	}
}

func TestEvaluateFailureRule(t *testing.T) {
	g, _ := newTestGuard(t, Config{})
	feed(g, tenant.Canary, 100, 30, 20*time.Millisecond)
	feed(g, tenant.Stable, 1000, 10, 20*time.Millisecond)
	trip, ok := g.Evaluate()
	if !ok {
		t.Fatal("30% against 1% did not trip")
	}
	if trip.Rule != RuleFailureRate || trip.Canary.FailureRate != 0.3 || trip.Stable.FailureRate != 0.01 ||
		trip.Canary.Samples != 100 || trip.Stable.Samples != 1000 || trip.Window != 10*time.Second {
		t.Errorf("trip figures: %+v", trip)
	}
	if trip.Evidence < trip.Threshold || trip.PValue > 0.001 {
		t.Errorf("trip statistics: evidence %v (threshold %v), p %v", trip.Evidence, trip.Threshold, trip.PValue)
	}
	want := "failure-rate: canary 30.0% of 100 failed vs stable 1.0% of 1000 over the last 0s (evidence "
	if !strings.HasPrefix(trip.String(), want) {
		t.Errorf("String() = %q, want it to start with %q", trip.String(), want)
	}
}

func TestEvaluateFailureRuleThresholds(t *testing.T) {
	for _, c := range []struct {
		name             string
		cfg              Config
		canaryN, canaryF int
		stableN, stableF int
		want             bool
	}{
		{"clear regression", Config{}, 200, 40, 2000, 20, true},
		{"below min canary samples", Config{}, 39, 39, 2000, 0, false},
		{"below min stable samples", Config{}, 200, 100, 39, 0, false},
		{"lower min samples", Config{MinCanarySamples: 10, MinStableSamples: 10}, 39, 39, 39, 0, true},
		{"within the margin", Config{}, 200, 30, 2000, 160, false},                // 15% vs 8%: 7 points
		{"within the ratio", Config{FailureRatio: 3}, 200, 60, 2000, 200, false},  // 30% vs 10%: ×3
		{"not significant", Config{MinCanarySamples: 10}, 10, 2, 2000, 40, false}, // 2 of 10 vs 2%
		{"rule off", Config{DisableFailureRule: true}, 200, 200, 2000, 0, false},
		{"canary better", Config{}, 200, 0, 2000, 1000, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.cfg.DisableLatencyRule = true
			g, _ := newTestGuard(t, c.cfg)
			feed(g, tenant.Canary, c.canaryN, c.canaryF, time.Millisecond)
			feed(g, tenant.Stable, c.stableN, c.stableF, time.Millisecond)
			trip, ok := g.Evaluate()
			if ok != c.want {
				t.Fatalf("tripped = %v, want %v (%v)", ok, c.want, trip)
			}
		})
	}
}

func TestEvaluateLatencyRule(t *testing.T) {
	for _, c := range []struct {
		name   string
		cfg    Config
		canary time.Duration
		n      int
		want   bool
	}{
		{"three times slower", Config{}, 60 * time.Millisecond, 200, true},
		{"below the factor", Config{}, 28 * time.Millisecond, 200, false},
		{"factor raised", Config{LatencyFactor: 4}, 60 * time.Millisecond, 200, false},
		{"within the margin", Config{LatencyMargin: 50 * time.Millisecond}, 60 * time.Millisecond, 200, false},
		{"too few samples", Config{}, 60 * time.Millisecond, 99, false},
		{"rule off", Config{DisableLatencyRule: true}, time.Second, 200, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			g, _ := newTestGuard(t, c.cfg)
			feed(g, tenant.Canary, c.n, 0, c.canary)
			feed(g, tenant.Stable, 2000, 0, 20*time.Millisecond)
			trip, ok := g.Evaluate()
			if ok != c.want {
				t.Fatalf("tripped = %v, want %v (%v)", ok, c.want, trip)
			}
			if ok && (trip.Rule != RuleLatencyP95 || trip.Canary.P95 < 55*time.Millisecond || trip.Stable.P95 > 22*time.Millisecond) {
				t.Errorf("trip: %v", trip)
			}
		})
	}
}

func TestTripLogValue(t *testing.T) {
	g, _ := newTestGuard(t, Config{})
	feed(g, tenant.Canary, 100, 30, 40*time.Millisecond)
	feed(g, tenant.Stable, 1000, 10, 20*time.Millisecond)
	trip, ok := g.Evaluate()
	if !ok {
		t.Fatal("no trip")
	}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Warn("guard tripped", "trip", trip)
	var rec struct {
		Trip struct {
			Rule   string
			Window float64
			Canary struct {
				Samples     uint64
				Failures    uint64
				FailureRate float64 `json:"failure_rate"`
				P95         float64
			}
			Stable struct{ Samples, Failures uint64 }
		}
	}
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
		t.Fatalf("%v: %s", err, buf.Bytes())
	}
	tr := rec.Trip
	if tr.Rule != "failure-rate" || tr.Window != float64(10*time.Second) || tr.Canary.Samples != 100 ||
		tr.Canary.Failures != 30 || tr.Canary.FailureRate != 0.3 || tr.Canary.P95 == 0 ||
		tr.Stable.Samples != 1000 || tr.Stable.Failures != 10 {
		t.Errorf("log record: %s", buf.Bytes())
	}
}

// Concurrent Records, Evaluates, Resets and a moving clock: no race, no
// panic, and without rotation or reset nothing is lost.
func TestConcurrentRecording(t *testing.T) {
	g, clk := newTestGuard(t, Config{Buckets: 3, BucketWidth: 10 * time.Millisecond})
	const workers, per = 8, 2000
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var bg sync.WaitGroup
	bg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			clk.Advance(3 * time.Millisecond)
			g.Evaluate()
			if i%50 == 0 {
				g.Reset()
			}
		}
	})
	for w := range workers {
		wg.Go(func() {
			for i := range per {
				g.Record(tenant.Canary, i%2 == 0, time.Duration(w+i)*time.Microsecond)
			}
		})
	}
	wg.Wait()
	close(stop)
	bg.Wait()

	// Now with the clock still: every sample counted.
	g2, _ := newTestGuard(t, Config{})
	for w := range workers {
		wg.Go(func() {
			for i := range per {
				c := tenant.Stable
				if w%2 == 0 {
					c = tenant.Canary
				}
				g2.Record(c, i%4 == 0, time.Duration(i)*time.Microsecond)
			}
		})
	}
	wg.Wait()
	s := g2.Snapshot()
	if s.Canary.Samples != workers/2*per || s.Stable.Samples != workers/2*per ||
		s.Canary.Failures != workers/2*per/4 || s.Stable.Failures != workers/2*per/4 {
		t.Errorf("lost samples: %+v", s)
	}
}

func TestRecordDoesNotAllocate(t *testing.T) {
	g, err := New(Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(1000, func() {
		g.Record(tenant.Canary, true, 12*time.Millisecond)
		g.RecordHTTP(tenant.Stable, 200, 3*time.Millisecond)
		g.RecordAt(time.Time{}, tenant.Stable, false, time.Second)
	}); n != 0 {
		t.Errorf("Record allocates %v times per call", n)
	}
}
