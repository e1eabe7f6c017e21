package interceptors_test

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/metadata"

	"github.com/reqcanary/canary/interceptors"
	"github.com/reqcanary/canary/tenant"
)

func TestServerWithStripDecision(t *testing.T) {
	for _, strip := range []bool{false, true} {
		var opts []interceptors.Option
		if strip {
			opts = append(opts, interceptors.WithStripDecision())
		}
		conn, rec := start(t, setup{interceptorOpts: opts})
		for _, c := range calls {
			ctx := metadata.AppendToOutgoingContext(context.Background(),
				"x-tenant-id", "acme", "x-canary-decision", "v1;c=canary")
			if err := c.do(ctx, conn); err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			if got := rec.lastReq(t).Source.Values("x-canary-decision"); len(got) != 1 {
				t.Errorf("strip=%v %s: decider saw x-canary-decision %q, want the inbound value", strip, c.name, got)
			}
			got := rec.last(t)
			if !got.ok || got.labels.Tenant != "acme" {
				t.Errorf("strip=%v %s: handler's labels %+v, %v, want the decided ones", strip, c.name, got.labels, got.ok)
			}
			if n := len(got.md.Get("x-canary-decision")); strip && n != 0 || !strip && n != 1 {
				t.Errorf("strip=%v %s: handler saw x-canary-decision %q", strip, c.name, got.md.Get("x-canary-decision"))
			}
			if got.md.Get("x-tenant-id")[0] != "acme" {
				t.Errorf("strip=%v %s: other metadata lost: %v", strip, c.name, got.md)
			}
		}
	}
}

func TestClientWritesTraceParentOfTheSpanContext(t *testing.T) {
	conn, rec := start(t, setup{})
	sc := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID:    trace.TraceID{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36},
		SpanID:     trace.SpanID{0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7},
		TraceFlags: trace.FlagsSampled, Remote: true,
	})
	labelled := tenant.NewContext(context.Background(), tenant.Labels{Tenant: "acme", Cohort: tenant.Canary,
		Bucket: 12, Reason: tenant.ReasonPercent, TraceID: testTraceID})
	ctx := trace.ContextWithRemoteSpanContext(labelled, sc)
	for _, c := range calls {
		for _, tc := range []struct {
			name string
			ctx  context.Context
			want []string
		}{
			{"span context", ctx, []string{testTraceParent}},
			{"caller's kept", metadata.AppendToOutgoingContext(ctx, "traceparent", "00-11111111111111111111111111111111-2222222222222222-00"),
				[]string{"00-11111111111111111111111111111111-2222222222222222-00"}},
			{"caller's kept on rewrite", metadata.AppendToOutgoingContext(ctx, "traceparent", "00-11111111111111111111111111111111-2222222222222222-00", "x-user-id", "alice"),
				[]string{"00-11111111111111111111111111111111-2222222222222222-00"}},
			{"no span context", labelled, nil},
		} {
			if err := c.do(tc.ctx, conn); err != nil {
				t.Fatalf("%s %s: %v", c.name, tc.name, err)
			}
			got := rec.last(t)
			if tp := got.md.Get("traceparent"); len(tp) != len(tc.want) || len(tp) == 1 && tp[0] != tc.want[0] {
				t.Errorf("%s %s: traceparent %q, want %q", c.name, tc.name, tp, tc.want)
			}
			if len(tc.want) == 1 && got.labels.TraceID != tc.want[0][3:35] {
				t.Errorf("%s %s: server labels trace %q, want %q", c.name, tc.name, got.labels.TraceID, tc.want[0][3:35])
			}
		}
	}
}
