package canary

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/reqcanary/canary/tenant"
)

// Each request counts once: a handler that marks its request failed
// (MarkFailed) makes the middleware's one outcome a failure; a handler that
// calls RecordOutcome with its request's context makes that the request's
// outcome, and the middleware does not count it again (issue 12: the demo's
// pricing report counted canary fallbacks a second time).
func TestOutcomeCountedOnce(t *testing.T) {
	for _, tc := range []struct {
		name          string
		handler       func(e *Engine) http.HandlerFunc
		wantRequests  uint64
		wantFailures  uint64
		wantCancelled uint64
	}{
		{"plain 200", func(*Engine) http.HandlerFunc {
			return func(http.ResponseWriter, *http.Request) {}
		}, 1, 0, 0},
		{"MarkFailed", func(*Engine) http.HandlerFunc {
			return func(_ http.ResponseWriter, r *http.Request) {
				if !MarkFailed(r.Context()) {
					panic("MarkFailed: not a labelled request")
				}
			}
		}, 1, 1, 0},
		{"RecordOutcome inside the request", func(e *Engine) http.HandlerFunc {
			return func(_ http.ResponseWriter, r *http.Request) {
				l, _ := tenant.FromContext(r.Context())
				e.RecordOutcome(r.Context(), l.Cohort, true, time.Millisecond)
			}
		}, 1, 1, 0},
		{"MarkFailed, then the client goes away", func(*Engine) http.HandlerFunc {
			return func(_ http.ResponseWriter, r *http.Request) { MarkFailed(r.Context()) }
		}, 0, 0, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, _ := newGuardEngine(t, WithGuard(GuardConfig{Enabled: true}))
			u := canaryUser(t, e)
			ctx := context.Background()
			if tc.wantCancelled > 0 {
				ctx = cancelledCtx
			}
			req := httptest.NewRequestWithContext(ctx, http.MethodGet, "/", nil)
			req.Header.Set("X-Tenant-ID", "shop")
			req.Header.Set("X-User-ID", u)
			e.Middleware(tc.handler(e)).ServeHTTP(httptest.NewRecorder(), req)
			c := e.Status().Guard.Canary
			if c.Requests != tc.wantRequests || c.Failures != tc.wantFailures || c.ClientCancelled != tc.wantCancelled {
				t.Fatalf("canary figures %+v, want %d requests, %d failures, %d client-cancelled",
					c, tc.wantRequests, tc.wantFailures, tc.wantCancelled)
			}
		})
	}
	if MarkFailed(context.Background()) {
		t.Error("MarkFailed on a context without labels reported true")
	}
}

// canary.outcomes counts client-cancelled requests under their own value of
// the canary.outcome attribute.
func TestOutcomeMetricClientCancelled(t *testing.T) {
	reader := metric.NewManualReader()
	mp := metric.NewMeterProvider(metric.WithReader(reader))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	e, _ := newGuardEngine(t, WithGuard(GuardConfig{Enabled: true}), WithMeterProvider(mp))
	h := e.Middleware(shopHandler)
	stable := cohortUsers(t, e, tenant.Stable, "s", 3)
	serve(h, context.Background(), "shop", stable[0], false)
	serve(h, context.Background(), "shop", stable[1], true)
	serve(h, cancelledCtx, "shop", stable[2], false)
	e.Record(context.Background(), Outcome{Cohort: tenant.Canary, Kind: OutcomeClientCancelled, Unit: "job-7"})

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if s, ok := m.Data.(metricdata.Sum[int64]); ok && m.Name == MetricOutcomes {
				for _, dp := range s.DataPoints {
					v, _ := dp.Attributes.Value(attribute.Key("feature_flag.result.variant"))
					o, _ := dp.Attributes.Value(attribute.Key("canary.outcome"))
					got[v.AsString()+"/"+o.AsString()] += dp.Value
				}
			}
		}
	}
	want := map[string]int64{"stable/success": 1, "stable/failure": 1, "stable/client-cancelled": 1, "canary/client-cancelled": 1}
	for k, n := range want {
		if got[k] != n {
			t.Errorf("%s{%s} = %d, want %d (all: %v)", MetricOutcomes, k, got[k], n, got)
		}
	}
	if s := e.Status().Guard; s.Stable.ClientCancelled != 1 || s.Canary.ClientCancelled != 1 || s.Stable.Requests != 2 {
		t.Errorf("guard figures stable %+v canary %+v", s.Stable, s.Canary)
	}
}
