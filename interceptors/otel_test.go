package interceptors_test

import (
	"context"
	"strings"
	"testing"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/reqcanary/canary/tenant"
)

func tracer(t *testing.T) (*sdktrace.TracerProvider, *tracetest.SpanRecorder) {
	t.Helper()
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return tp, sr
}

// serverSpan returns the trace id of the last server span the stats handler
// started.
func serverSpan(t *testing.T, sr *tracetest.SpanRecorder) string {
	t.Helper()
	var id string
	for _, s := range sr.Started() {
		if s.SpanKind() == trace.SpanKindServer {
			id = s.SpanContext().TraceID().String()
		}
	}
	if id == "" {
		t.Fatal("the stats handler recorded no server span")
	}
	return id
}

// With otelgrpc's stats handlers on both sides (trace context propagated),
// the labels carry the trace of the server span, which is the client's trace.
func TestServerTraceIDIsTheStatsHandlersTrace(t *testing.T) {
	tp, sr := tracer(t)
	prop := otelgrpc.WithPropagators(propagation.TraceContext{})
	conn, rec := start(t, setup{
		tcp:        true,
		serverOpts: []grpc.ServerOption{grpc.StatsHandler(otelgrpc.NewServerHandler(otelgrpc.WithTracerProvider(tp), prop))},
		dialOpts:   []grpc.DialOption{grpc.WithStatsHandler(otelgrpc.NewClientHandler(otelgrpc.WithTracerProvider(tp), prop))},
	})
	for _, c := range calls {
		t.Run(c.name, func(t *testing.T) {
			ctx, parent := tp.Tracer("test").Start(context.Background(), "parent")
			defer parent.End()
			ctx = metadata.AppendToOutgoingContext(ctx, "x-tenant-id", "acme")
			if err := c.do(ctx, conn); err != nil {
				t.Fatal(err)
			}
			got := rec.last(t).labels.TraceID
			if want := serverSpan(t, sr); got != want {
				t.Fatalf("Labels.TraceID = %q, the stats handler's server span is in trace %q", got, want)
			}
			if want := parent.SpanContext().TraceID().String(); got != want {
				t.Fatalf("Labels.TraceID = %q, want the client's trace %q", got, want)
			}
			if req := rec.lastReq(t); req.TraceID != got {
				t.Fatalf("the decider was given trace %q, the labels carry %q", req.TraceID, got)
			}
		})
	}
}

// When the stats handler does not extract the caller's trace (no
// propagator), its span starts a new trace: the labels follow the span, not
// the traceparent metadata.
func TestServerSpanWinsOverTraceParent(t *testing.T) {
	tp, sr := tracer(t)
	conn, rec := start(t, setup{
		serverOpts: []grpc.ServerOption{grpc.StatsHandler(otelgrpc.NewServerHandler(
			otelgrpc.WithTracerProvider(tp), otelgrpc.WithPropagators(propagation.NewCompositeTextMapPropagator())))},
	})
	for _, c := range calls {
		ctx := metadata.AppendToOutgoingContext(context.Background(), "traceparent", testTraceParent)
		if err := c.do(ctx, conn); err != nil {
			t.Fatal(err)
		}
		got, want := rec.last(t).labels.TraceID, serverSpan(t, sr)
		if got != want || got == testTraceID {
			t.Fatalf("%s: Labels.TraceID = %q, want the server span's trace %q", c.name, got, want)
		}
	}
}

// An otelgrpc client handler that propagates baggage writes the context's
// OpenTelemetry baggage over the metadata: the client interceptor puts
// canary's members there too, so stale or forged ones never go out.
func TestClientOTelBaggage(t *testing.T) {
	conn, rec := start(t, setup{
		dialOpts: []grpc.DialOption{grpc.WithStatsHandler(otelgrpc.NewClientHandler(otelgrpc.WithPropagators(propagation.Baggage{})))},
	})
	forged, err := baggage.Parse("session=42,canary.cohort=canary,canary.bucket=1")
	if err != nil {
		t.Fatal(err)
	}
	l := labelsFor("acme", "alice", "", false, "")
	l.Cohort, l.Bucket = tenant.Stable, 7777
	for _, c := range calls {
		ctx := tenant.NewContext(baggage.ContextWithBaggage(context.Background(), forged), l)
		if err := c.do(ctx, conn); err != nil {
			t.Fatal(err)
		}
		got := rec.last(t).md.Get("baggage")
		if len(got) != 1 {
			t.Fatalf("%s: baggage = %q, want one value", c.name, got)
		}
		bg, err := baggage.Parse(got[0])
		if err != nil {
			t.Fatal(err)
		}
		if bg.Member("session").Value() != "42" || bg.Member(tenant.BaggageCohort).Value() != "stable" ||
			bg.Member(tenant.BaggageBucket).Value() != "7777" || bg.Member(tenant.BaggageTenant).Value() != "acme" ||
			strings.Count(got[0], tenant.BaggageCohort) != 1 {
			t.Fatalf("%s: baggage = %q, want session kept and canary's own members", c.name, got[0])
		}
	}
}
