package canary

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/reqcanary/canary/interceptors"
)

// The options serverInterceptorOptions gives the gRPC facade feed the guard:
// the server-side failure codes count as failures, the others do not.
func TestServerInterceptorOptionsFeedTheGuard(t *testing.T) {
	e := newTestEngine(t, "canary_percent: 100\n", WithGuard(GuardConfig{Enabled: true}))
	unary := interceptors.UnaryServer(e, e.serverInterceptorOptions()...)
	all := []codes.Code{codes.OK, codes.NotFound, codes.InvalidArgument, codes.Canceled, codes.PermissionDenied,
		codes.Unavailable, codes.Internal, codes.Unknown, codes.DeadlineExceeded, codes.DataLoss}
	for i, c := range all {
		// Each call from its own user: one user counts at most unit_samples
		// outcomes per bucket.
		ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs("x-tenant-id", "acme", "x-user-id", "bob"+itoa(i)))
		_, _ = unary(ctx, nil, &grpc.UnaryServerInfo{FullMethod: "/shop.Cart/Add"}, func(context.Context, any) (any, error) {
			if c == codes.OK {
				return "ok", nil
			}
			return nil, status.Error(c, "x")
		})
	}
	g := e.Status().Guard
	if g.Canary.Requests != uint64(len(all)) || g.Canary.Failures != 5 {
		t.Fatalf("canary figures %+v, want %d requests and 5 failures", g.Canary, len(all))
	}
}

// An engine reports outcomes from its middleware and server interceptors
// only while a guard is configured: without one, the handler gets the
// original ResponseWriter and canary.outcomes stays empty; a plan reload
// that adds a guard section turns the reporting on for the next requests.
func TestOutcomesOnlyWhileAGuardIsConfigured(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	path := filepath.Join(t.TempDir(), "plan.yaml")
	writePlan := func(text string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writePlan("version: 1\ncanary_percent: 100\n")
	e, err := New(WithPlanFile(path), WithPlanPollInterval(10*time.Millisecond), WithMeterProvider(mp),
		WithUserHashKey(testHashKey))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })

	outcomes := func() int64 {
		t.Helper()
		var rm metricdata.ResourceMetrics
		if err := reader.Collect(context.Background(), &rm); err != nil {
			t.Fatal(err)
		}
		var n int64
		for _, sm := range rm.ScopeMetrics {
			for _, m := range sm.Metrics {
				if s, ok := m.Data.(metricdata.Sum[int64]); ok && m.Name == MetricOutcomes {
					for _, dp := range s.DataPoints {
						n += dp.Value
					}
				}
			}
		}
		return n
	}
	var seen http.ResponseWriter
	h := e.Middleware(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { seen = w }))
	serve := func() *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.Header.Set("X-Tenant-ID", "acme")
		h.ServeHTTP(rec, req)
		return rec
	}
	callGRPC := func() {
		ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs("x-tenant-id", "acme"))
		if _, err := e.UnaryServerInterceptor(ctx, nil, &grpc.UnaryServerInfo{FullMethod: "/shop.Cart/Add"},
			func(context.Context, any) (any, error) { return "ok", nil }); err != nil {
			t.Fatal(err)
		}
		if err := e.StreamServerInterceptor(nil, ctxStream{ctx: ctx}, &grpc.StreamServerInfo{FullMethod: "/shop.Cart/Watch"},
			func(any, grpc.ServerStream) error { return nil }); err != nil {
			t.Fatal(err)
		}
	}

	if rec := serve(); seen != rec {
		t.Errorf("no guard: handler got %T, want the original writer", seen)
	}
	callGRPC()
	if n := outcomes(); n != 0 {
		t.Fatalf("no guard: %s = %d, want 0", MetricOutcomes, n)
	}

	writePlan("version: 2\ncanary_percent: 100\nguard:\n  enabled: true\n")
	deadline := time.Now().Add(5 * time.Second)
	for !e.Status().Guard.Enabled {
		if time.Now().After(deadline) {
			t.Fatalf("the plan's guard section was not applied: %v", e.PlanError())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if rec := serve(); seen == rec {
		t.Error("guard on: handler got the original writer, want the status-recording one")
	}
	callGRPC()
	if n := outcomes(); n != 3 {
		t.Fatalf("guard on: %s = %d, want 3 (one HTTP request, one unary call, one stream)", MetricOutcomes, n)
	}
	if g := e.Status().Guard; g.Canary.Requests != 3 {
		t.Fatalf("guard on: canary requests in the window = %d, want 3", g.Canary.Requests)
	}
}

// ctxStream is a server stream with only a context.
type ctxStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s ctxStream) Context() context.Context { return s.ctx }
