package guard

import (
	"math"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/reqcanary/canary/tenant"
)

// traffic describes one cohort's simulated load.
type traffic struct {
	rps      float64       // mean requests per second (Poisson arrivals)
	fail     float64       // probability that a request fails
	median   time.Duration // median latency (log-normal)
	sigma    float64       // log-normal shape of the latency
	failFrom time.Duration // fail applies from this instant; before it, healthy
	healthy  float64       // failure probability before failFrom
	users    int           // requests come from this many users at random; 0: no units
}

// flood is extra traffic of one cohort: requests of one kind, from one unit
// or from the cohort's users at random.
type flood struct {
	cohort tenant.Cohort
	rps    float64
	kind   Kind
	unit   string // "" : a random user of the cohort's traffic
}

// scenario is a deterministic simulation: seeded traffic on a manual clock.
type scenario struct {
	cfg       Config
	stable    traffic
	canary    traffic
	duration  time.Duration // simulated time
	evalEvery time.Duration // how often Evaluate runs
	floods    []flood
	// maxEvidence, when not nil, makes run play the whole duration without
	// tripping on the failure rule and keep there the most evidence the rule
	// saw (for measuring its false-trip rate at every threshold at once).
	maxEvidence *float64
}

// userNames are the names of simulated users, by index.
var userNames = func() []string {
	out := make([]string, 5000)
	for i := range out {
		out[i] = "user-" + strconv.Itoa(i)
	}
	return out
}()

// run plays the scenario with seed and returns the first trip and whether
// there was one.
func (sc scenario) run(t testing.TB, seed uint64) (Trip, bool) {
	t.Helper()
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clk := NewManualClock(start)
	g, err := New(sc.cfg, clk)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	next := func(tr traffic, from time.Duration) time.Duration {
		if tr.rps <= 0 {
			return math.MaxInt64
		}
		return from + time.Duration(rng.ExpFloat64()/tr.rps*float64(time.Second))
	}
	user := func(c tenant.Cohort) string {
		tr, base := sc.stable, 0
		if c == tenant.Canary {
			tr, base = sc.canary, len(userNames)/2 // the cohorts' users are distinct
		}
		if tr.users == 0 {
			return ""
		}
		return userNames[base+rng.IntN(tr.users)]
	}
	req := func(c tenant.Cohort, tr traffic, at time.Duration) {
		p := tr.fail
		if at < tr.failFrom {
			p = tr.healthy
		}
		lat := time.Duration(float64(tr.median) * math.Exp(tr.sigma*rng.NormFloat64()))
		k := Success
		if rng.Float64() < p {
			k = Failure
		}
		g.RecordOutcome(Outcome{Cohort: c, Kind: k, Latency: lat, Unit: user(c)})
	}
	nextF := make([]time.Duration, len(sc.floods))
	for i, f := range sc.floods {
		nextF[i] = next(traffic{rps: f.rps}, 0)
	}
	nextS, nextC, nextE := next(sc.stable, 0), next(sc.canary, 0), sc.evalEvery
	for {
		now := min(nextS, nextC, nextE)
		fi := -1
		for i, t := range nextF {
			if t < now {
				now, fi = t, i
			}
		}
		if now > sc.duration {
			return Trip{}, false
		}
		clk.Advance(start.Add(now).Sub(clk.Now()))
		switch {
		case fi >= 0:
			f := sc.floods[fi]
			u := f.unit
			if u == "" {
				u = user(f.cohort)
			}
			g.RecordOutcome(Outcome{Cohort: f.cohort, Kind: f.kind, Latency: time.Millisecond, Unit: u})
			nextF[fi] = next(traffic{rps: f.rps}, now)
		case now == nextS:
			req(tenant.Stable, sc.stable, now)
			nextS = next(sc.stable, now)
		case now == nextC:
			req(tenant.Canary, sc.canary, now)
			nextC = next(sc.canary, now)
		default:
			if sc.maxEvidence != nil {
				s := g.Snapshot()
				if s.Canary.Samples >= uint64(g.cfg.MinCanarySamples) && s.Stable.Samples >= uint64(g.cfg.MinStableSamples) {
					if v := g.cfg.failureEvidence(s.Spans); v.ok {
						*sc.maxEvidence = max(*sc.maxEvidence, v.evidence)
					}
				}
				nextE += sc.evalEvery
				continue
			}
			if trip, ok := g.Evaluate(); ok {
				return trip, true
			}
			nextE += sc.evalEvery
		}
	}
}

// seeds returns n, or a tenth of it (at least 5) under the race detector,
// which slows the simulations about tenfold. The two targets always
// play all their seeds.
func seeds(n int) int {
	if raceEnabled {
		return max(n/10, 5)
	}
	return n
}

// healthy is a cohort with log-normal latencies around 20 ms.
func healthy(rps, fail float64) traffic {
	return traffic{rps: rps, fail: fail, median: 20 * time.Millisecond, sigma: 0.5}
}

// simStart is the instant every simulation starts at.
var simStart = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// The target: a canary failing 20 % against stable's 1 %, with 20
// canary requests per second, trips within 5 s, whatever the seed.
func TestSimulationFailingCanaryTripsWithin5s(t *testing.T) {
	sc := scenario{
		stable:    healthy(200, 0.01),
		canary:    healthy(20, 0.20),
		duration:  5 * time.Second,
		evalEvery: 250 * time.Millisecond,
	}
	const n = 200
	var worst time.Duration
	for seed := range uint64(n) {
		trip, ok := sc.run(t, seed)
		if !ok {
			t.Fatalf("seed %d: no trip within %v", seed, sc.duration)
		}
		if trip.Rule != RuleFailureRate {
			t.Fatalf("seed %d: tripped on %s, want %s: %v", seed, trip.Rule, RuleFailureRate, trip)
		}
		worst = max(worst, trip.At.Sub(simStart))
	}
	t.Logf("%d seeds: every one tripped, the slowest after %v", n, worst)
}

// A canary that turns bad after a minute of health must overcome the healthy
// samples still in the window; it trips within 8 s of the change.
func TestSimulationCanaryTurningBadTrips(t *testing.T) {
	const onset = time.Minute
	sc := scenario{
		stable:    healthy(200, 0.01),
		canary:    traffic{rps: 20, fail: 0.20, healthy: 0.01, failFrom: onset, median: 20 * time.Millisecond, sigma: 0.5},
		duration:  onset + 8*time.Second,
		evalEvery: 250 * time.Millisecond,
	}
	n := seeds(100)
	var worst time.Duration
	for seed := range uint64(n) {
		trip, ok := sc.run(t, seed)
		if !ok {
			t.Fatalf("seed %d: no trip within 8s of the canary turning bad", seed)
		}
		if trip.At.Sub(simStart) < onset {
			t.Fatalf("seed %d: tripped at %v, before the canary turned bad: %v", seed, trip.At.Sub(simStart), trip)
		}
		worst = max(worst, trip.At.Sub(simStart)-onset)
	}
	t.Logf("%d seeds: the slowest tripped %v after the change", n, worst)
}

// The target: equal 2 % failure rates over 10 simulated minutes never
// trip, evaluated ten times per second.
func TestSimulationEqualFailureRatesNeverTrip(t *testing.T) {
	sc := scenario{
		stable:    healthy(200, 0.02),
		canary:    healthy(20, 0.02),
		duration:  10 * time.Minute,
		evalEvery: 100 * time.Millisecond,
	}
	for seed := range uint64(50) {
		if trip, ok := sc.run(t, seed); ok {
			t.Fatalf("seed %d: tripped at %v: %v", seed, trip.At.Sub(simStart), trip)
		}
	}
}

// A canary better than stable never trips, however much better.
func TestSimulationBetterCanaryNeverTrips(t *testing.T) {
	sc := scenario{
		stable:    healthy(200, 0.20),
		canary:    traffic{rps: 20, fail: 0, median: 5 * time.Millisecond, sigma: 0.5},
		duration:  2 * time.Minute,
		evalEvery: 250 * time.Millisecond,
	}
	for seed := range uint64(seeds(20)) {
		if trip, ok := sc.run(t, seed); ok {
			t.Fatalf("seed %d: tripped: %v", seed, trip)
		}
	}
}

// Below the minimum samples nothing trips, even a canary that always fails:
// 2 canary requests per second leave about 20 in a 10 s window, fewer than
// the default 40.
func TestSimulationLowTrafficNeverTrips(t *testing.T) {
	sc := scenario{
		stable:    healthy(200, 0),
		canary:    traffic{rps: 2, fail: 1, median: 2 * time.Second, sigma: 0.1},
		duration:  10 * time.Minute,
		evalEvery: 250 * time.Millisecond,
	}
	for seed := range uint64(seeds(20)) {
		if trip, ok := sc.run(t, seed); ok {
			t.Fatalf("seed %d: tripped with %d canary samples: %v", seed, trip.Canary.Samples, trip)
		}
	}
	// The same canary with more traffic trips, so the floor is what held it.
	sc.canary.rps = 20
	if _, ok := sc.run(t, 1); !ok {
		t.Fatal("an always-failing canary at 20 requests per second did not trip")
	}
}

// The latency rule, both ways: a markedly slower canary trips (twice as slow
// with moderate tails, three times as slow with heavy tails, where a p95 from
// 20 requests per second is noisier); equal latency distributions, or a
// canary 20 % slower (below the factor 1.5), never trip.
func TestSimulationLatencyRule(t *testing.T) {
	slow := func(mult, sigma float64) scenario {
		return scenario{
			stable:    traffic{rps: 200, fail: 0.01, median: 20 * time.Millisecond, sigma: sigma},
			canary:    traffic{rps: 20, fail: 0.01, median: time.Duration(mult * float64(20*time.Millisecond)), sigma: sigma},
			evalEvery: 250 * time.Millisecond,
		}
	}
	t.Run("slower trips", func(t *testing.T) {
		for _, c := range []struct{ mult, sigma float64 }{{2, 0.5}, {3, 1}} {
			mult, sigma := c.mult, c.sigma
			sc := slow(mult, sigma)
			sc.duration = 2 * time.Minute
			var worst time.Duration
			for seed := range uint64(seeds(50)) {
				trip, ok := sc.run(t, seed)
				if !ok {
					t.Fatalf("sigma %v seed %d: no trip within %v", sigma, seed, sc.duration)
				}
				if trip.Rule != RuleLatencyP95 {
					t.Fatalf("sigma %v seed %d: tripped on %s: %v", sigma, seed, trip.Rule, trip)
				}
				if trip.Canary.P95 <= trip.Stable.P95*3/2 {
					t.Fatalf("sigma %v seed %d: trip figures do not show the rule: %v", sigma, seed, trip)
				}
				worst = max(worst, trip.At.Sub(simStart))
			}
			t.Logf("%vx slower, sigma %v: the slowest seed tripped after %v", mult, sigma, worst)
		}
	})
	t.Run("equal or slightly slower never trips", func(t *testing.T) {
		for _, c := range []struct{ mult, sigma float64 }{{1, 0.5}, {1, 1}, {1.2, 0.5}} {
			sc := slow(c.mult, c.sigma)
			sc.duration = 10 * time.Minute
			for seed := range uint64(seeds(20)) {
				if trip, ok := sc.run(t, seed); ok {
					t.Fatalf("%+v seed %d: tripped: %v", c, seed, trip)
				}
			}
		}
	})
}

// fewSeeds is n, or 2 under the race detector: for the long simulations
// added with units, which the seeds of the targets already cover.
func fewSeeds(n int) int {
	if raceEnabled {
		return 2
	}
	return n
}

// withUsers is healthy traffic from users users.
func withUsers(tr traffic, users int) traffic {
	tr.users = users
	return tr
}

// The targets hold when the requests come from users, each capped
// at UnitSamples per bucket: 20 % vs 1 % trips within 5 s; equal rates over
// 10 minutes never trip.
func TestSimulationWithUnits(t *testing.T) {
	t.Run("20 % vs 1 % trips within 5 s", func(t *testing.T) {
		sc := scenario{
			stable:    withUsers(healthy(200, 0.01), 2000),
			canary:    withUsers(healthy(20, 0.20), 200),
			duration:  5 * time.Second,
			evalEvery: 250 * time.Millisecond,
		}
		for seed := range uint64(seeds(100)) {
			if trip, ok := sc.run(t, seed); !ok || trip.Rule != RuleFailureRate {
				t.Fatalf("seed %d: no failure-rate trip within 5 s (%v)", seed, trip)
			}
		}
	})
	t.Run("equal rates never trip", func(t *testing.T) {
		sc := scenario{
			stable:    withUsers(healthy(200, 0.02), 2000),
			canary:    withUsers(healthy(20, 0.02), 200),
			duration:  10 * time.Minute,
			evalEvery: 100 * time.Millisecond,
		}
		for seed := range uint64(fewSeeds(20)) {
			if trip, ok := sc.run(t, seed); ok {
				t.Fatalf("seed %d: tripped: %v", seed, trip)
			}
		}
	})
}

// Hidden proof: a flood of client-cancelled canary requests beside normal
// traffic never trips the guard; a real 20 % canary fault still trips
// within 5 s while a client floods the stable cohort with cancelled requests.
func TestSimulationClientCancelledFloods(t *testing.T) {
	t.Run("cancelled canary flood never trips", func(t *testing.T) {
		sc := scenario{
			stable:    withUsers(healthy(200, 0.01), 2000),
			canary:    withUsers(healthy(20, 0.01), 200),
			duration:  10 * time.Minute,
			evalEvery: 250 * time.Millisecond,
			floods:    []flood{{cohort: tenant.Canary, rps: 200, kind: ClientCancelled}},
		}
		for seed := range uint64(fewSeeds(5)) {
			if trip, ok := sc.run(t, seed); ok {
				t.Fatalf("seed %d: tripped: %v", seed, trip)
			}
		}
	})
	t.Run("20 % canary trips despite a cancelled stable flood", func(t *testing.T) {
		sc := scenario{
			stable:    withUsers(healthy(200, 0.01), 2000),
			canary:    withUsers(healthy(20, 0.20), 200),
			duration:  5 * time.Second,
			evalEvery: 250 * time.Millisecond,
			floods:    []flood{{cohort: tenant.Stable, rps: 2000, kind: ClientCancelled}},
		}
		for seed := range uint64(fewSeeds(50)) {
			trip, ok := sc.run(t, seed)
			if !ok {
				t.Fatalf("seed %d: no trip within 5 s", seed)
			}
			if trip.Stable.ClientCancelled == 0 || trip.Stable.FailureRate > 0.05 {
				t.Fatalf("seed %d: stable figures %+v: the flood is not counted apart", seed, trip.Stable)
			}
		}
	})
}

// Hidden proof: one user, or one tenant without users, sending many failing
// canary requests cannot trip the guard alone, beside healthy traffic of
// other users (or none at all).
func TestSimulationOneUnitCannotTrip(t *testing.T) {
	for _, canaryUsers := range []int{0, 200} {
		sc := scenario{
			stable:    withUsers(healthy(200, 0.01), 2000),
			canary:    withUsers(healthy(20, 0.01), 200),
			duration:  10 * time.Minute,
			evalEvery: 250 * time.Millisecond,
			floods:    []flood{{cohort: tenant.Canary, rps: 300, kind: Failure, unit: "acme"}},
		}
		if canaryUsers == 0 {
			sc.canary.rps = 0
		}
		for seed := range uint64(fewSeeds(5)) {
			if trip, ok := sc.run(t, seed); ok {
				t.Fatalf("other canary users %d, seed %d: one unit tripped the guard: %v", canaryUsers, seed, trip)
			}
		}
	}
	// Three such units are enough: the floor is MinFailingUnits.
	sc := scenario{
		stable:    withUsers(healthy(200, 0.01), 2000),
		canary:    withUsers(healthy(20, 0.01), 200),
		duration:  10 * time.Second,
		evalEvery: 250 * time.Millisecond,
	}
	for _, u := range []string{"a", "b", "c"} {
		sc.floods = append(sc.floods, flood{cohort: tenant.Canary, rps: 100, kind: Failure, unit: u})
	}
	if _, ok := sc.run(t, 1); !ok {
		t.Fatal("three failing canary units did not trip")
	}
}
