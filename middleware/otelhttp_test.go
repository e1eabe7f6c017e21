package middleware_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/go-chi/chi/v5"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/reqcanary/canary/middleware"
	"github.com/reqcanary/canary/tenant"
)

// TestOtelhttpInsideChiContinuesTheTrace mounts the canary middleware on a
// chi router and a real otelhttp middleware inside it, with no global
// propagator: the server span otelhttp starts must continue the caller's
// traceparent, and middleware.Annotate must put the labels on it.
func TestOtelhttpInsideChiContinuesTheTrace(t *testing.T) {
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })

	d := tenant.DeciderFunc(func(_ context.Context, req tenant.Request) (tenant.Labels, error) {
		ten, err := tenant.ReadTenant(req.Source, req.Wire)
		return tenant.Labels{Tenant: ten, Cohort: tenant.Canary, Reason: tenant.ReasonTenantCanary,
			Bucket: tenant.NoBucket, TraceID: req.TraceID, PlanVersion: 7}, err
	})
	var handlerTrace trace.SpanContext
	r := chi.NewRouter()
	r.Use(middleware.New(d))
	r.Use(otelhttp.NewMiddleware("shop", otelhttp.WithTracerProvider(tp)), middleware.Annotate)
	r.Get("/checkout", func(w http.ResponseWriter, r *http.Request) {
		handlerTrace = trace.SpanContextFromContext(r.Context())
	})

	req := httptest.NewRequest(http.MethodGet, "/checkout", nil)
	req.Header.Set("Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	req.Header.Set("X-Tenant-ID", "acme")
	rec := httptest.NewRecorder()
	r.ServeHTTP(rec, req)

	if rec.Code != http.StatusOK || rec.Header().Get("X-Canary-Cohort") != "canary" {
		t.Fatalf("response %d, cohort %q", rec.Code, rec.Header().Get("X-Canary-Cohort"))
	}
	spans := sr.Ended()
	if len(spans) != 1 {
		t.Fatalf("%d spans ended, want otelhttp's server span", len(spans))
	}
	s := spans[0]
	if got := s.SpanContext().TraceID().String(); got != "4bf92f3577b34da6a3ce929d0e0e4736" {
		t.Fatalf("server span trace id %s: otelhttp started a new trace instead of continuing the caller's", got)
	}
	if p := s.Parent(); !p.IsRemote() || p.SpanID().String() != "00f067aa0ba902b7" {
		t.Fatalf("server span parent %v (remote %v), want the caller's span 00f067aa0ba902b7", p.SpanID(), p.IsRemote())
	}
	if handlerTrace.SpanID() != s.SpanContext().SpanID() {
		t.Fatalf("handler sees span %v, want the server span %v", handlerTrace.SpanID(), s.SpanContext().SpanID())
	}
	attrs := map[string]string{}
	for _, kv := range s.Attributes() {
		attrs[string(kv.Key)] = kv.Value.Emit()
	}
	for k, v := range map[string]string{
		"feature_flag.key": "canary", "feature_flag.result.variant": "canary",
		"feature_flag.result.reason": "targeting_match", "tenant.id": "acme", "feature_flag.version": "7",
	} {
		if attrs[k] != v {
			t.Errorf("server span attribute %s = %q, want %q", k, attrs[k], v)
		}
	}
}
