package guard

import (
	"encoding/json"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/reqcanary/canary/tenant"
)

// The export of one guard, through JSON, evaluates as the guard does.
func TestEvaluateExportMatchesEvaluate(t *testing.T) {
	cfg := Config{MinCanarySamples: 50, MinStableSamples: 50, FailureMargin: 0.02, LatencyMinSamples: 50}
	for seed, pc := range []float64{0.01, 0.04, 0.08, 0.2} {
		clk := NewManualClock(time.Unix(1_700_000_000, 0))
		g, err := New(cfg, clk)
		if err != nil {
			t.Fatal(err)
		}
		rng := rand.New(rand.NewPCG(uint64(seed), 3))
		for i := range 2000 {
			c, p, lat := tenant.Stable, 0.01, 10*time.Millisecond
			if i%4 == 0 {
				c, p, lat = tenant.Canary, pc, time.Duration(10+seed*5)*time.Millisecond
			}
			k := Success
			if rng.Float64() < p {
				k = Failure
			}
			g.RecordOutcome(Outcome{Cohort: c, Kind: k, Latency: lat, Unit: "u" + strconv.Itoa(rng.IntN(300))})
		}
		want, wantOK := g.Evaluate()
		b, _ := json.Marshal(g.Export())
		var x Export
		if err := json.Unmarshal(b, &x); err != nil {
			t.Fatal(err)
		}
		got, ok, err := EvaluateExport(cfg, x)
		if err != nil || ok != wantOK || got.Rule != want.Rule || got.Canary.Samples != want.Canary.Samples ||
			got.Canary.P95 != want.Canary.P95 || got.Z != want.Z {
			t.Fatalf("canary failing %g: EvaluateExport = %v %+v, %v; Evaluate = %v %+v", pc, ok, got, err, wantOK, want)
		}
	}
}

func TestMergeSumsAndBoundsUnits(t *testing.T) {
	a := Export{At: time.Unix(10, 0), Window: 10 * time.Second, Instances: 1,
		Canary: CohortExport{Samples: 3, Failures: 1, TopUnitFailures: 1, TopUnitSamples: 2, Latency: [][2]uint64{{5, 2}, {40, 1}}}}
	b := Export{At: time.Unix(12, 0), Window: 5 * time.Second, Instances: 1,
		Canary: CohortExport{Samples: 2, Failures: 2, TopUnitFailures: 2, TopUnitSamples: 2, Latency: [][2]uint64{{5, 1}, {41, 1}, {HistogramBins + 7, 9}}}}
	m := Merge(a, b)
	if m.Instances != 2 || !m.At.Equal(time.Unix(12, 0)) || m.Window != 10*time.Second {
		t.Fatalf("merged header = %+v", m)
	}
	if m.Canary.Failures != 3 || m.Canary.TopUnitFailures != 3 || m.Canary.TopUnitSamples != 4 {
		t.Fatalf("merged canary = %+v", m.Canary)
	}
	want := [][2]uint64{{5, 3}, {40, 1}, {41, 1}} // the out-of-range bin is dropped
	if len(m.Canary.Latency) != len(want) {
		t.Fatalf("latency = %v, want %v", m.Canary.Latency, want)
	}
	for i := range want {
		if m.Canary.Latency[i] != want[i] {
			t.Fatalf("latency = %v, want %v", m.Canary.Latency, want)
		}
	}
	if s := m.Snapshot(); s.Canary.Samples != 5 || s.Canary.Failures != 3 {
		t.Fatalf("snapshot = %+v", s.Canary)
	}
	if _, _, err := EvaluateExport(Config{Confidence: 7}, m); err == nil {
		t.Fatal("EvaluateExport accepted confidence 7")
	}
}

// TestAddSpansByRankStaysNested: an instance with fewer spans (it started
// later) counts its whole window in every older rank of the merge, so that
// each merged span holds the newer ones.
func TestAddSpansByRankStaysNested(t *testing.T) {
	t0 := time.Unix(1000, 0)
	sp := func(sec int, ss, sf, cs, cf uint64) Span {
		return Span{Since: t0.Add(time.Duration(-sec) * time.Second), Stable: SpanCounts{Samples: ss, Failures: sf},
			Canary: SpanCounts{Samples: cs, Failures: cf}}
	}
	a := []Span{sp(1, 1000, 50, 100, 10)}
	b := []Span{sp(1, 100, 0, 10, 0), sp(2, 200, 0, 20, 0), sp(3, 300, 0, 30, 0)}
	m := addSpansByRank(a, b)
	if len(m) != 3 {
		t.Fatalf("%d spans", len(m))
	}
	for i := 1; i < len(m); i++ {
		if m[i].Stable.Samples < m[i-1].Stable.Samples || m[i].Stable.Failures < m[i-1].Stable.Failures ||
			m[i].Canary.Samples < m[i-1].Canary.Samples {
			t.Fatalf("span %d %+v holds less than span %d %+v", i, m[i], i-1, m[i-1])
		}
	}
	if m[2].Stable != (SpanCounts{Samples: 1300, Failures: 50}) || m[2].Canary != (SpanCounts{Samples: 130, Failures: 10}) {
		t.Fatalf("oldest merged span %+v", m[2])
	}
}
