package spec_test

import (
	"encoding/json"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/reqcanary/canary/internal/guard"
	"github.com/reqcanary/canary/ramp/spec"
	"github.com/reqcanary/canary/tenant"
)

// fleetFigures runs n guards on seeded traffic: each sees perInstance
// requests per cohort, stable failing at pStable and canary at pCanary, and
// returns each guard's own verdict and its figures, through JSON as the
// engines publish them.
func fleetFigures(t *testing.T, seed uint64, n, perInstance int, pStable, pCanary float64, cfg guard.Config) (tripped int, figs []spec.Figures) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 1))
	clk := guard.NewManualClock(time.Unix(1_700_000_000, 0))
	for i := range n {
		g, err := guard.New(cfg, clk)
		if err != nil {
			t.Fatal(err)
		}
		for j := range perInstance {
			for _, c := range []struct {
				cohort tenant.Cohort
				p      float64
			}{{tenant.Stable, pStable}, {tenant.Canary, pCanary}} {
				k := guard.Success
				if rng.Float64() < c.p {
					k = guard.Failure
				}
				g.RecordOutcome(guard.Outcome{Cohort: c.cohort, Kind: k, Latency: time.Duration(5+rng.IntN(10)) * time.Millisecond,
					Unit: "u" + strconv.Itoa(i) + "-" + strconv.Itoa(j)})
			}
		}
		if _, ok := g.Evaluate(); ok {
			tripped++
		}
		b, err := json.Marshal(g.Export())
		if err != nil {
			t.Fatal(err)
		}
		var f spec.Figures
		if err := json.Unmarshal(b, &f); err != nil {
			t.Fatal(err)
		}
		figs = append(figs, f)
	}
	return tripped, figs
}

// A canary failing 5 points more than stable, over 5 instances that each
// hold fewer samples than their own guard's minimum: no instance trips, the
// fleet gate on the summed figures does.
func TestFleetGateCatchesWhatNoInstanceCan(t *testing.T) {
	local := guard.Config{MinCanarySamples: 400, MinStableSamples: 400, FailureMargin: 0.02}
	tripped, figs := fleetFigures(t, 7, 5, 300, 0.01, 0.06, local)
	if tripped != 0 {
		t.Fatalf("%d instances tripped on their own; the test wants none to", tripped)
	}
	sum := spec.MergeFigures(figs...)
	if sum.Instances != 5 || sum.Canary.Samples != 1500 || sum.Stable.Samples != 1500 {
		t.Fatalf("merged = %d instances, %d canary, %d stable samples", sum.Instances, sum.Canary.Samples, sum.Stable.Samples)
	}
	gate := spec.FleetGate{MinCanarySamples: 400, MinStableSamples: 400, FailureMargin: 0.02}
	v, err := gate.Evaluate(sum)
	if err != nil {
		t.Fatal(err)
	}
	if v.Verdict != spec.VerdictFail || v.Rule != "failure-rate" {
		t.Fatalf("verdict = %+v, want fail on failure-rate", v)
	}
	t.Log(v.Summary)
}

func TestFleetGateHealthyPassesAndFewSamplesPend(t *testing.T) {
	gate := spec.FleetGate{MinCanarySamples: 400, MinStableSamples: 400, FailureMargin: 0.02}
	_, figs := fleetFigures(t, 8, 5, 300, 0.01, 0.01, guard.Config{})
	v, err := gate.Evaluate(spec.MergeFigures(figs...))
	if err != nil || v.Verdict != spec.VerdictPass {
		t.Fatalf("healthy fleet: %+v, %v; want pass", v, err)
	}
	v, err = gate.Evaluate(spec.MergeFigures(figs[:1]...))
	if err != nil || v.Verdict != spec.VerdictPending {
		t.Fatalf("one instance of 300 samples: %+v, %v; want pending", v, err)
	}
	if _, err := (spec.FleetGate{Confidence: 2}).Evaluate(figs[0]); err == nil {
		t.Fatal("a gate with confidence 2 evaluated without error")
	}
}
