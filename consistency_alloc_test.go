package canary

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"google.golang.org/grpc"

	"github.com/reqcanary/canary/interceptors"
	"github.com/reqcanary/canary/middleware"
	"github.com/reqcanary/canary/tenant"
)

// TestConsistencyNoTokenAllocations pins that a request without a
// consistency token costs no allocation for the feature: inbound through the
// middleware of an engine with a signing key, and outbound through the
// engine's Transport and client interceptor, compared with the same adapters
// without a position signer.
func TestConsistencyNoTokenAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under the race detector (make test runs this without it)")
	}
	key := WithSigningKey([]byte("alloc-test-signing-key-0123456789"))

	t.Run("inbound", func(t *testing.T) {
		count := func(opts ...Option) float64 {
			e := newTestEngine(t, planAt("12.5"), opts...)
			h := e.Middleware(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
			req := httptest.NewRequest(http.MethodGet, "/", nil)
			req.RemoteAddr = "192.0.2.1:4000"
			req.Header.Set("X-Tenant-ID", "globex")
			req.Header.Set("X-User-ID", "user-12345")
			w := &nopWriter{h: http.Header{}}
			h.ServeHTTP(w, req)
			return testing.AllocsPerRun(200, func() { clear(w.h); h.ServeHTTP(w, req) })
		}
		if with, without := count(key), count(); with != without {
			t.Fatalf("with a signing key: %v allocations per request, without: %v", with, without)
		}
	})

	e := newTestEngine(t, planAt("12.5"), key)
	ctx := tenant.NewContext(context.Background(), tenant.Labels{Tenant: "acme", UserHash: "0f1e2d3c4b5a69788796a5b4c3d2e1f0", Cohort: tenant.Canary, Bucket: 3})

	t.Run("http", func(t *testing.T) {
		base := roundTripFunc(func(*http.Request) (*http.Response, error) { return &http.Response{StatusCode: 204}, nil })
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://b/", nil)
		count := func(rt http.RoundTripper) float64 {
			return testing.AllocsPerRun(200, func() { _, _ = rt.RoundTrip(req) })
		}
		with, without := count(e.Transport(base)), count(middleware.Transport(base, middleware.WithSigner(e.sig.sign)))
		if with != without {
			t.Fatalf("engine transport: %v allocations per call without a position, decision-only transport: %v", with, without)
		}
	})

	t.Run("grpc", func(t *testing.T) {
		invoker := func(context.Context, string, any, any, *grpc.ClientConn, ...grpc.CallOption) error { return nil }
		count := func(ic grpc.UnaryClientInterceptor) float64 {
			return testing.AllocsPerRun(200, func() { _ = ic(ctx, "/m", nil, nil, nil, invoker) })
		}
		with, without := count(e.UnaryClientInterceptor), count(interceptors.UnaryClient(interceptors.WithSigner(e.sig.sign)))
		if with != without {
			t.Fatalf("engine interceptor: %v allocations per call without a position, decision-only interceptor: %v", with, without)
		}
	})
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
