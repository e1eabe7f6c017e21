package canary

import (
	"context"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/reqcanary/canary/internal/testenv"
	"github.com/reqcanary/canary/planstore"
	"github.com/reqcanary/canary/planstore/etcdstore"
)

// fleetOf starts n engines, each with a store (an etcd client) of its own.
func fleetOf(tb testing.TB, n int, newStore func() planstore.Store) []*Engine {
	tb.Helper()
	var fleet []*Engine
	for range n {
		e, err := New(WithPlanStore(newStore()), WithLogger(slog.New(slog.DiscardHandler)))
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { _ = e.Close() })
		fleet = append(fleet, e)
	}
	return fleet
}

// waitRun waits (at most 10 s) until every engine runs pct.
func waitRun(tb testing.TB, fleet []*Engine, pct float64) {
	for deadline := time.Now().Add(10 * time.Second); !allRun(fleet, pct); time.Sleep(100 * time.Microsecond) {
		if time.Now().After(deadline) {
			tb.Fatalf("the fleet does not run %g %% after 10 s", pct)
		}
	}
}

// allRun reports whether every engine runs pct.
func allRun(fleet []*Engine, pct float64) bool {
	for _, e := range fleet {
		if e.Plan().CanaryPercent != pct {
			return false
		}
	}
	return true
}

// TestPlanStoreTwentyEnginesApplyRollback is the fleet check: 20
// engines run an applied plan, and then the rolled-back one, within 1 s of the
// command.
func TestPlanStoreTwentyEnginesApplyRollback(t *testing.T) {
	pfx := storePrefix(t)
	admin := testStore(t, pfx, ValidatePlan)
	ctx := context.Background()
	if _, err := admin.Apply(ctx, storePlan(5), 0, planstore.Change{Author: "alice"}); err != nil {
		t.Fatal(err)
	}
	fleet := fleetOf(t, 20, func() planstore.Store { return testStore(t, pfx, ValidatePlan) })
	if _, err := admin.Apply(ctx, storePlan(25), 1, planstore.Change{Author: "alice"}); err != nil {
		t.Fatal(err)
	}
	waitPercent(t, 25, time.Second, fleet...)
	if _, err := admin.Apply(ctx, storePlan(50), 1, planstore.Change{Author: "bob"}); err == nil {
		t.Fatal("an apply based on version 1 while version 2 is current was accepted")
	}
	if _, err := admin.Rollback(ctx, 0, 2, planstore.Change{Author: "oncall"}); err != nil {
		t.Fatal(err)
	}
	waitPercent(t, 5, time.Second, fleet...)
}

// BenchmarkPlanStoreFleetRollback measures the time from a rollback command
// to the last of 20 engines deciding on the rolled-back plan (the figure
// docs/benchmarks.md reports), as p50/p99 over the iterations.
func BenchmarkPlanStoreFleetRollback(b *testing.B) {
	pfx := storePrefix(b)
	newStore := func() planstore.Store {
		s, err := etcdstore.New(etcdstore.Config{Endpoints: testenv.EtcdEndpoints(b), Prefix: pfx, Validate: ValidatePlan})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = s.Close() })
		return s
	}
	admin := newStore()
	ctx := context.Background()
	if _, err := admin.Apply(ctx, storePlan(5), planstore.AnyVersion, planstore.Change{}); err != nil {
		b.Fatal(err)
	}
	fleet := fleetOf(b, 20, newStore)
	var lat []time.Duration
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		pct := float64(10 + i%80)
		if _, err := admin.Apply(ctx, storePlan(pct), planstore.AnyVersion, planstore.Change{}); err != nil {
			b.Fatal(err)
		}
		waitRun(b, fleet, pct)
		b.StartTimer()
		t0 := time.Now()
		if _, err := admin.Rollback(ctx, 0, planstore.AnyVersion, planstore.Change{Author: "bench"}); err != nil {
			b.Fatal(err)
		}
		waitRun(b, fleet, 5)
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	slices.Sort(lat)
	q := func(f float64) float64 { return float64(lat[int(f*float64(len(lat)-1))]) / 1e6 }
	b.ReportMetric(q(0.5), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
	b.ReportMetric(0, "ns/op")
}
