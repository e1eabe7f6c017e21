package benchmarks

import (
	"context"
	"testing"
	"time"

	"github.com/reqcanary/canary/tenant"
)

// BenchmarkDecideUpstream measures the engine deciding a request at an
// internal hop: baseline, a request with the tenant and no decision (decided
// from the plan); upstream, the same request carrying a valid signed
// decision, which is verified (HMAC-SHA256) and adopted.
func BenchmarkDecideUpstream(b *testing.B) {
	eng := signingEngine(b)
	signer, err := tenant.NewDecisionSigner([]byte("benchmark-decision-key-0123456789"))
	if err != nil {
		b.Fatal(err)
	}
	v, err := signer.SignLabels(grpcLabels, time.Now().Add(time.Hour))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	run := func(b *testing.B, src exactSource, want string) {
		req := tenant.Request{Source: src, Wire: tenant.HTTP}
		b.ReportAllocs()
		for b.Loop() {
			sinkLabels, _ = eng.Decide(ctx, req)
		}
		if sinkLabels.Reason != want {
			b.Fatalf("reason %q, want %q", sinkLabels.Reason, want)
		}
	}
	b.Run("baseline=plan", func(b *testing.B) {
		run(b, exactSource{tenant.HeaderTenant: {"globex"}}, tenant.ReasonPercent)
	})
	b.Run("canary=upstream", func(b *testing.B) {
		run(b, exactSource{tenant.HeaderTenant: {"globex"}, tenant.HeaderDecision: {v}}, tenant.ReasonUpstream)
	})
}
