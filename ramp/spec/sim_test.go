package spec_test

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/reqcanary/canary/internal/guard"
	"github.com/reqcanary/canary/ramp/spec"
	"github.com/reqcanary/canary/tenant"
)

var simTrials = flag.Int("ramp.simtrials", 0, "trials per scenario of TestSimulatedFleetGate (0: a short run); docs/ramp.md quotes -ramp.simtrials=400")

// simScenario is one traffic level of the deterministic simulation: a
// fleet of instances behind a balancer, each recording its own requests in
// its own guard (10 buckets of 1 s: the engine's default window), the
// controller checking the fleet gate on the sum every second of a hold.
type simScenario struct {
	instances int
	rate      int     // requests per second per instance
	pct       float64 // share of requests that are canary
	pStable   float64 // failure probability of stable
	delta     float64 // canary fails pStable+delta (0: healthy)
	hold      int     // seconds: checks per hold
}

func (s simScenario) String() string {
	return fmt.Sprintf("%d × %d req/s, canary %g%%, %ds hold", s.instances, s.rate, 100*s.pct, s.hold)
}

var simUsers = func() []string {
	out := make([]string, 20000)
	for i := range out {
		out[i] = "user-" + strconv.Itoa(i)
	}
	return out
}()

// trial plays one hold and says whether the fleet gate failed at some check,
// and whether any instance's own guard (same thresholds) did.
func (s simScenario) trial(t *testing.T, seed uint64, gate spec.FleetGate, local guard.Config) (fleet, anyLocal bool) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	clk := guard.NewManualClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	gs := make([]*guard.Guard, s.instances)
	for i := range gs {
		g, err := guard.New(local, clk)
		if err != nil {
			t.Fatal(err)
		}
		gs[i] = g
	}
	// A 10 s warm-up fills the windows, then the hold's checks.
	for sec := 0; sec < 10+s.hold; sec++ {
		for _, g := range gs {
			for k := range s.rate {
				at := clk.Now().Add(time.Duration(k) * time.Second / time.Duration(s.rate))
				o := guard.Outcome{Cohort: tenant.Stable, Kind: guard.Success, Latency: 10 * time.Millisecond,
					Unit: simUsers[rng.IntN(len(simUsers))]}
				p := s.pStable
				if rng.Float64() < s.pct {
					o.Cohort, p = tenant.Canary, s.pStable+s.delta
				}
				if rng.Float64() < p {
					o.Kind = guard.Failure
				}
				g.RecordOutcomeAt(at, o)
			}
		}
		clk.Advance(time.Second)
		if sec < 10 {
			continue
		}
		figs := make([]spec.Figures, len(gs))
		for i, g := range gs {
			figs[i] = g.Export()
			if _, ok := g.Evaluate(); ok {
				anyLocal = true
			}
		}
		v, err := gate.Evaluate(spec.MergeFigures(figs...))
		if err != nil {
			t.Fatal(err)
		}
		if v.Verdict == spec.VerdictFail {
			fleet = true
		}
	}
	return fleet, anyLocal
}

// TestSimulatedFleetGate measures, on seeded traffic and a manual clock,
// how often the fleet gate rolls back a healthy canary during one hold
// (false rollback) and how often it misses a canary failing 5 points more
// (missed regression), against each instance's own guard with the same
// thresholds. It asserts the bounds docs/ramp.md states.
func TestSimulatedFleetGate(t *testing.T) {
	trials := *simTrials
	if trials == 0 {
		trials = 10
	}
	gate := spec.FleetGate{MinCanarySamples: 100, MinStableSamples: 100, FailureRatio: 1.5, FailureMargin: 0.02}
	local := guard.Config{MinCanarySamples: 100, MinStableSamples: 100, FailureRatio: 1.5, FailureMargin: 0.02,
		DisableLatencyRule: true}
	gate.DisableLatencyRule = true
	var table []string
	scenarios := []simScenario{
		{instances: 5, rate: 20, pct: 0.10, pStable: 0.01, hold: 30},
		{instances: 5, rate: 40, pct: 0.10, pStable: 0.01, hold: 30},
		{instances: 5, rate: 40, pct: 0.05, pStable: 0.01, hold: 30},
		{instances: 5, rate: 100, pct: 0.10, pStable: 0.01, hold: 30},
		{instances: 20, rate: 20, pct: 0.05, pStable: 0.01, hold: 30},
	}
	if raceEnabled && *simTrials == 0 {
		// The race detector slows the simulation fifty-fold: one trial of
		// the scenario with bounds.
		scenarios, trials = scenarios[3:4], 1
	}
	for _, sc := range scenarios {
		var falseFleet, falseLocal, missFleet, missLocal int
		for i := range trials {
			healthy := sc
			if f, l := healthy.trial(t, uint64(2*i), gate, local); f || l {
				falseFleet += b2i(f)
				falseLocal += b2i(l)
			}
			bad := sc
			bad.delta = 0.05
			f, l := bad.trial(t, uint64(2*i+1), gate, local)
			missFleet += b2i(!f)
			missLocal += b2i(!l)
		}
		row := fmt.Sprintf("| %s | %d/%d | %d/%d | %d/%d | %d/%d |", sc, falseFleet, trials, missFleet, trials,
			falseLocal, trials, missLocal, trials)
		table = append(table, row)
		// Bounds that hold for any seed at these rates: the fleet gate
		// catches what the instances alone mostly miss.
		if sc.instances*sc.rate*10*int(100*sc.pct)/100 >= 300 && missFleet > trials/10 {
			t.Errorf("%s: the fleet gate missed %d of %d regressions", sc, missFleet, trials)
		}
		if falseFleet > trials/10+1 {
			t.Errorf("%s: the fleet gate rolled back %d of %d healthy canaries", sc, falseFleet, trials)
		}
	}
	t.Logf("trials per scenario: %d\n| scenario | fleet: false rollbacks | fleet: missed | one instance alone: false | alone: missed |\n|---|---|---|---|---|\n%s",
		trials, strings.Join(table, "\n"))
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
