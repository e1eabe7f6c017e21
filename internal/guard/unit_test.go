package guard

import (
	"strconv"
	"testing"
	"time"

	"github.com/reqcanary/canary/tenant"
)

// Client-cancelled outcomes are counted apart: neither samples nor failures.
func TestClientCancelledCountedApart(t *testing.T) {
	g, _ := newTestGuard(t, Config{})
	feed(g, tenant.Stable, 100, 1, 10*time.Millisecond)
	feed(g, tenant.Canary, 100, 1, 10*time.Millisecond)
	for i := range 1000 {
		g.RecordOutcome(Outcome{Cohort: tenant.Canary, Kind: ClientCancelled, Latency: time.Millisecond, Unit: "u" + strconv.Itoa(i)})
	}
	s := g.Snapshot()
	if s.Canary.Samples != 100 || s.Canary.Failures != 1 || s.Canary.ClientCancelled != 1000 || s.Stable.ClientCancelled != 0 {
		t.Fatalf("canary %+v stable %+v", s.Canary, s.Stable)
	}
	if _, ok := g.Evaluate(); ok {
		t.Fatal("client-cancelled outcomes tripped the guard")
	}
}

// One unit counts at most UnitSamples outcomes per bucket; the rest are left
// out and counted; the next bucket gives it a new allowance; the same unit
// string in another space is another unit.
func TestUnitSamplesPerBucket(t *testing.T) {
	g, clk := newTestGuard(t, Config{UnitSamples: 3})
	for range 100 {
		g.RecordOutcome(Outcome{Cohort: tenant.Canary, Kind: Failure, Unit: "acme"})
		g.RecordOutcome(Outcome{Cohort: tenant.Canary, Kind: Success, Unit: "acme", Space: 1})
	}
	s := g.Snapshot()
	if s.Canary.Samples != 6 || s.Canary.Failures != 3 || s.Canary.OverUnitCap != 194 {
		t.Fatalf("first bucket: %+v, want 6 samples (3 per unit), 3 failures, 194 over the cap", s.Canary)
	}
	if s.Canary.FailingUnits != 1 || s.Canary.TopUnitFailures != 3 {
		t.Fatalf("failing units %d, top %d; want 1 and 3", s.Canary.FailingUnits, s.Canary.TopUnitFailures)
	}
	clk.Advance(time.Second)
	for range 10 {
		g.RecordOutcome(Outcome{Cohort: tenant.Canary, Kind: Failure, Unit: "acme"})
	}
	if s := g.Snapshot(); s.Canary.Samples != 9 || s.Canary.TopUnitFailures != 6 || s.Canary.FailingUnits != 1 {
		t.Fatalf("second bucket: %+v, want 9 samples, one unit with 6 failures", s.Canary)
	}
	g.Reset()
	g.RecordOutcome(Outcome{Cohort: tenant.Canary, Kind: Failure, Unit: "acme"})
	if s := g.Snapshot(); s.Canary.Samples != 1 || s.Canary.OverUnitCap != 0 {
		t.Fatalf("after Reset: %+v, want the unit's allowance back", s.Canary)
	}
}

// Memory is bounded whatever clients send: beyond MaxUnits units in a
// bucket, new units are not tracked; their outcomes are counted (uncapped)
// and reported as untracked, never dropped, so a client that fills the table
// with units of its own cannot hide the others' failures.
func TestMaxUnitsBoundsTheTable(t *testing.T) {
	g, clk := newTestGuard(t, Config{MaxUnits: 16, UnitSamples: 2})
	for i := range 5000 {
		g.RecordOutcome(Outcome{Cohort: tenant.Stable, Kind: Success, Unit: "u" + strconv.Itoa(i)})
	}
	s := g.Snapshot().Stable
	if s.Samples != 5000 || s.UntrackedUnits < 5000-16 || s.UntrackedUnits > 5000-8 {
		t.Fatalf("stable %+v: want all 5000 counted, all but at most 16 units untracked", s)
	}
	// A full table does not hide failures of untracked units.
	for i := range 100 {
		g.RecordOutcome(Outcome{Cohort: tenant.Stable, Kind: Failure, Unit: "f" + strconv.Itoa(i)})
	}
	if f := g.Snapshot().Stable.Failures; f != 100 {
		t.Fatalf("%d failures of untracked units counted, want 100", f)
	}
	// The next bucket tracks units afresh.
	clk.Advance(time.Second)
	before := g.Snapshot().Stable
	g.RecordOutcome(Outcome{Cohort: tenant.Stable, Kind: Success, Unit: "new"})
	if n := g.Snapshot().Stable; n.Samples != before.Samples+1 || n.UntrackedUnits != before.UntrackedUnits {
		t.Fatalf("next bucket: %+v after %+v, want one more tracked sample", n, before)
	}
}

// The failure rule leaves the worst canary unit out: one unit failing at its
// cap beside healthy canary users does not trip; the same failures spread
// over many units do.
func TestFailureRuleLeavesOneUnitOut(t *testing.T) {
	g, clk := newTestGuard(t, Config{})
	for sec := range 10 {
		for i := range 100 {
			g.RecordOutcome(Outcome{Cohort: tenant.Stable, Kind: Success, Unit: "s" + strconv.Itoa(sec*100+i)})
		}
		for i := range 10 {
			g.RecordOutcome(Outcome{Cohort: tenant.Canary, Kind: Success, Unit: "c" + strconv.Itoa(sec*10+i)})
		}
		for range 50 {
			g.RecordOutcome(Outcome{Cohort: tenant.Canary, Kind: Failure, Unit: "mallory"})
		}
		clk.Advance(time.Second)
	}
	if trip, ok := g.Evaluate(); ok {
		t.Fatalf("one unit tripped the guard: %v", trip)
	}
	s := g.Snapshot().Canary
	if s.TopUnitFailures < 36 || s.FailingUnits != 1 {
		t.Fatalf("canary %+v: want mallory's failures bounded and one failing unit", s)
	}
	for i := range 40 {
		g.RecordOutcome(Outcome{Cohort: tenant.Canary, Kind: Failure, Unit: "f" + strconv.Itoa(i)})
	}
	if _, ok := g.Evaluate(); !ok {
		t.Fatalf("40 failing canary units did not trip: %+v", g.Snapshot().Canary)
	}
}

// RecordOutcome allocates nothing.
func TestRecordOutcomeDoesNotAllocate(t *testing.T) {
	g, _ := newTestGuard(t, Config{})
	o := Outcome{Cohort: tenant.Canary, Kind: Failure, Latency: time.Millisecond, Unit: "0123456789abcdef0123456789abcdef"}
	if n := testing.AllocsPerRun(1000, func() { g.RecordOutcome(o) }); n != 0 {
		t.Fatalf("RecordOutcome allocates %v times", n)
	}
}
