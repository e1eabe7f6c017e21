package guard

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/reqcanary/canary/tenant"
)

// BenchmarkRecord measures the hot path: one outcome recorded from many
// goroutines at once, with the system clock.
func BenchmarkRecord(b *testing.B) {
	g, err := New(Config{}, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		rng := rand.New(rand.NewPCG(rand.Uint64(), 1))
		for pb.Next() {
			c := tenant.Stable
			if rng.IntN(10) == 0 {
				c = tenant.Canary
			}
			g.Record(c, rng.IntN(50) == 0, time.Duration(5e6+rng.IntN(20e6)))
		}
	})
}

// BenchmarkRecordSerial is Record from one goroutine.
func BenchmarkRecordSerial(b *testing.B) {
	g, err := New(Config{}, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		g.Record(tenant.Canary, i%50 == 0, time.Duration(5e6+i%20e6))
	}
}

// BenchmarkEvaluate reads a full default window (10 buckets, both cohorts).
func BenchmarkEvaluate(b *testing.B) {
	clk := NewManualClock(simStart)
	g, err := New(Config{}, clk)
	if err != nil {
		b.Fatal(err)
	}
	for range 10 {
		for i := range 2000 {
			g.Record(tenant.Stable, i%100 == 0, time.Duration(i)*10*time.Microsecond)
			if i%10 == 0 {
				g.Record(tenant.Canary, i%100 == 0, time.Duration(i)*10*time.Microsecond)
			}
		}
		clk.Advance(time.Second)
	}
	b.ReportAllocs()
	for b.Loop() {
		g.Evaluate()
	}
}

// BenchmarkRecordAt is the hot path for a caller that passes the time it
// already read to measure the latency.
func BenchmarkRecordAt(b *testing.B) {
	g, err := New(Config{}, nil)
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			i++
			g.RecordAt(now, tenant.Canary, i%50 == 0, time.Duration(5e6+i%20e6))
		}
	})
}
