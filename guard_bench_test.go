package canary

import (
	"context"
	"testing"
	"time"

	"github.com/reqcanary/canary/tenant"
)

// BenchmarkRecordOutcome is the cost every labelled request pays, while a
// guard is configured, to feed it and the outcome counter (no-op meter
// provider).
func BenchmarkRecordOutcome(b *testing.B) {
	e := newTestEngine(b, guardPlan, WithGuard(GuardConfig{Enabled: true}))
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			i++
			e.RecordOutcome(ctx, tenant.Canary, i%10 == 0, time.Duration(i%1000)*time.Microsecond)
		}
	})
}
