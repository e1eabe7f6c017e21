package guard

import (
	"math"
	"strconv"
	"testing"
	"time"

	"github.com/reqcanary/canary/tenant"
)

// The evidence is a likelihood ratio whose mean under the null is exactly 1:
// over the binomial split of K failures with the canary's share π0, the
// mixed ratio averages to 1, which is what makes it a martingale (and the
// test valid however often it looks).
func TestEvidenceHasMeanOneUnderTheNull(t *testing.T) {
	for _, c := range []struct{ nc, ns, k uint64 }{{20, 180, 5}, {20, 180, 40}, {2, 198, 12}, {100, 100, 30}, {40, 160, 1}} {
		pi0 := float64(c.nc) / float64(c.nc+c.ns)
		mean := 0.0
		for x := range c.k + 1 {
			p := math.Exp(logChoose(c.k, x) + float64(x)*math.Log(pi0) + float64(c.k-x)*math.Log1p(-pi0))
			mean += p * mixtureRatio(x, c.nc, c.k-x, c.ns, 2)
		}
		if math.Abs(mean-1) > 1e-9 {
			t.Errorf("%+v: mean likelihood ratio under the null %v, want 1", c, mean)
		}
	}
}

// mixtureRatio is the mixed likelihood ratio itself, also for x = 0.
func mixtureRatio(x, nc, y, ns uint64, minRatio float64) float64 {
	fc, fs := float64(nc), float64(ns)
	pi0 := fc / (fc + fs)
	sum := 0.0
	for _, m := range ratioGrid {
		r := minRatio * m
		pi := r * fc / (r*fc + fs)
		sum += math.Pow(pi/pi0, float64(x)) * math.Pow((1-pi)/(1-pi0), float64(y))
	}
	return sum / float64(len(ratioGrid))
}

func TestEvidence(t *testing.T) {
	if e := evidence(0, 20, 5, 180, 2); e != 0 {
		t.Errorf("no canary failure: evidence %v, want 0", e)
	}
	if e := evidence(3, 20, 0, 0, 2); e != 0 {
		t.Errorf("no stable samples: evidence %v, want 0", e)
	}
	// More canary failures, more evidence; more stable failures, less.
	prev := math.Inf(-1)
	for x := uint64(1); x <= 10; x++ {
		e := evidence(x, 40, 4, 360, 2)
		if e <= prev {
			t.Fatalf("evidence(%d canary failures) = %v, not above %v", x, e, prev)
		}
		prev = e
	}
	if a, b := evidence(8, 40, 2, 360, 2), evidence(8, 40, 8, 360, 2); b >= a {
		t.Errorf("more stable failures gave more evidence: %v then %v", a, b)
	}
	// Matches the closed form.
	if got, want := evidence(7, 35, 1, 339, 2), math.Log(mixtureRatio(7, 35, 1, 339, 2)); math.Abs(got-want) > 1e-9 {
		t.Errorf("evidence %v, want %v", got, want)
	}
}

// Snapshot.Spans: one per bucket, newest first, each the sum of its
// buckets, with the per-unit bound of its own buckets.
func TestSnapshotSpans(t *testing.T) {
	g, clk := newTestGuard(t, Config{Buckets: 4})
	rec := func(c tenant.Cohort, k Kind, unit string) {
		g.RecordOutcome(Outcome{Cohort: c, Kind: k, Latency: time.Millisecond, Unit: unit})
	}
	// Bucket 0: one unit fails 4 times (its cap); bucket 1: empty; bucket
	// 2: 3 units fail once; bucket 3 (in progress): 2 stable requests.
	for range 4 {
		rec(tenant.Canary, Failure, "acme")
	}
	rec(tenant.Stable, Success, "s0")
	clk.Advance(2 * time.Second)
	for i := range 3 {
		rec(tenant.Canary, Failure, "u"+strconv.Itoa(i))
	}
	rec(tenant.Canary, Success, "v")
	clk.Advance(1500 * time.Millisecond)
	rec(tenant.Stable, Failure, "s1")
	rec(tenant.Stable, Success, "s2")

	s := g.Snapshot()
	if len(s.Spans) != 4 {
		t.Fatalf("%d spans, want 4", len(s.Spans))
	}
	// Unit hashes are random per guard: two units may share a sketch cell,
	// which only raises the bound; hence a range for it.
	want := []struct {
		since                time.Duration
		cn, cf, topLo, topHi uint64
		sn, sf               uint64
	}{
		{3 * time.Second, 0, 0, 0, 0, 2, 1},
		{2 * time.Second, 4, 3, 1, 2, 2, 1},
		{1 * time.Second, 4, 3, 1, 2, 2, 1},
		{0, 8, 7, 4, 5, 3, 1},
	}
	for i, w := range want {
		sp := s.Spans[i]
		if !sp.Since.Equal(simStart.Add(w.since)) || sp.Canary.Samples != w.cn || sp.Canary.Failures != w.cf ||
			sp.Canary.TopUnitFailures < w.topLo || sp.Canary.TopUnitFailures > w.topHi ||
			sp.Stable.Samples != w.sn || sp.Stable.Failures != w.sf {
			t.Errorf("span %d: %+v, want since +%v, canary %d/%d top %d..%d, stable %d/%d",
				i, sp, w.since, w.cf, w.cn, w.topLo, w.topHi, w.sf, w.sn)
		}
	}
	last := s.Spans[len(s.Spans)-1]
	if last.Canary.Samples != s.Canary.Samples || last.Stable.Failures != s.Stable.Failures ||
		last.Canary.TopUnitFailures != s.Canary.TopUnitFailures {
		t.Errorf("the last span %+v is not the window %+v", last, s.Canary)
	}
}

// The failure rule decides on the span where the failures began: after
// nine healthy seconds, two bad ones trip it, and the trip names the span.
func TestFailureRuleFindsTheRecentSpan(t *testing.T) {
	g, clk := newTestGuard(t, Config{DisableLatencyRule: true})
	for sec := range 12 {
		bad := sec >= 9
		for i := range 180 {
			g.Record(tenant.Stable, i%100 == 0, time.Millisecond)
		}
		for i := range 20 {
			g.Record(tenant.Canary, bad && i%4 == 0 || !bad && sec%5 == 0 && i == 0, time.Millisecond)
		}
		clk.Advance(time.Second)
		trip, ok := g.Evaluate()
		if ok != (sec >= 10) {
			t.Fatalf("second %d: tripped %v (%v)", sec, ok, trip)
		}
		if ok {
			if !trip.Since.Equal(simStart.Add(9*time.Second)) || trip.SpanCanary.Failures != 10 ||
				trip.Evidence < trip.Threshold || trip.PValue != math.Exp(-trip.Evidence) {
				t.Fatalf("trip %v: want the span since 9 s with its 10 canary failures", trip)
			}
			return
		}
	}
}

// AddSpans sums the spans of two guards by their start; two guards that each
// saw half of a failing canary trip as one when their figures are added.
func TestAddSpans(t *testing.T) {
	cfg := Config{DisableLatencyRule: true}
	a, clkA := newTestGuard(t, cfg)
	b, clkB := newTestGuard(t, cfg)
	for sec := range 10 {
		for _, g := range []*Guard{a, b} {
			for i := range 90 {
				g.Record(tenant.Stable, i%100 == 0 && sec%2 == 0, time.Millisecond)
			}
			for i := range 10 {
				g.Record(tenant.Canary, sec >= 8 && i%4 == 0, time.Millisecond)
			}
		}
		clkA.Advance(time.Second)
		clkB.Advance(time.Second)
	}
	sa, sb := a.Snapshot(), b.Snapshot()
	if _, ok := a.Evaluate(); ok {
		t.Fatal("one guard's half tripped alone; the test needs it not to")
	}
	sum := AddSpans(sa.Spans, sb.Spans)
	if len(sum) != len(sa.Spans) || sum[1].Canary.Samples != 20 || sum[2].Canary.Failures != 2*sa.Spans[2].Canary.Failures {
		t.Fatalf("summed spans %+v", sum)
	}
	// A span on one side only is kept; the order stays newest first.
	odd := AddSpans(sa.Spans[:2], sb.Spans[1:3])
	if len(odd) != 3 || !odd[0].Since.Equal(sa.Spans[0].Since) || !odd[2].Since.Equal(sb.Spans[2].Since) ||
		odd[1].Canary.Samples != sa.Spans[1].Canary.Samples+sb.Spans[1].Canary.Samples {
		t.Fatalf("partly overlapping spans summed to %+v", odd)
	}
	merged := Snapshot{At: sa.At, Window: sa.Window, Spans: sum}
	merged.Canary = Figures{Samples: sa.Canary.Samples + sb.Canary.Samples}
	merged.Stable = Figures{Samples: sa.Stable.Samples + sb.Stable.Samples}
	var hists [2]Histogram
	if trip, ok := a.evaluate(merged, &hists); !ok || trip.Rule != RuleFailureRate {
		t.Fatalf("the summed figures did not trip: %+v", sum[:3])
	}
}
