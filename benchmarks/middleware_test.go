package benchmarks

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/go-chi/chi/v5"
	chimw "github.com/go-chi/chi/v5/middleware"

	"github.com/reqcanary/canary"
	"github.com/reqcanary/canary/tenant"
)

// The middleware benchmarks serve one GET through a chi router whose handler
// does nothing, with the tenant and user headers a labelled request carries.
// Baselines in the same run: bare chi, and chi with middleware.RequestID.
// The request is reused: its headers and context are not modified by the
// middlewares (they derive new requests), so each iteration starts equal.

var sinkLabels tenant.Labels

func benchRouter(b *testing.B, mws ...func(http.Handler) http.Handler) http.Handler {
	b.Helper()
	r := chi.NewRouter()
	r.Use(mws...)
	r.Get("/checkout", func(w http.ResponseWriter, r *http.Request) {
		sinkLabels, _ = tenant.FromContext(r.Context())
	})
	return r
}

func benchRequest(kv ...string) *http.Request {
	req := httptest.NewRequest(http.MethodGet, "/checkout", nil)
	req.RemoteAddr = "192.0.2.10:40000"
	for i := 0; i+1 < len(kv); i += 2 {
		req.Header.Set(kv[i], kv[i+1])
	}
	return req
}

// discardWriter is a ResponseWriter that keeps nothing but a reusable header
// map, so the benchmarks measure the middleware, not the recorder.
type discardWriter struct{ h http.Header }

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *discardWriter) WriteHeader(int)             {}

func runBench(b *testing.B, h http.Handler, req *http.Request) {
	w := &discardWriter{h: http.Header{}}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		clear(w.h)
		h.ServeHTTP(w, req)
	}
}

func benchEngine(b *testing.B) *canary.Engine {
	b.Helper()
	plan, err := canary.ParsePlan([]byte("version: 7\nsalt: checkout-v2\ncanary_percent: 12.5\n" +
		"tenants:\n  canary: [acme]\n  stable: [bigbank]\noverride:\n  trusted_cidrs: [10.0.0.0/8]\n"))
	if err != nil {
		b.Fatal(err)
	}
	eng, err := canary.New(canary.WithPlan(plan), canary.WithUserHashKey([]byte("benchmark-key-0123456789abcdef")))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = eng.Close() })
	return eng
}

var labelledHeaders = []string{tenant.HeaderTenant, "globex", tenant.HeaderUser, "user-12345"}

func BenchmarkMiddleware(b *testing.B) {
	b.Run("baseline=chi", func(b *testing.B) {
		runBench(b, benchRouter(b), benchRequest(labelledHeaders...))
	})
	b.Run("baseline=chi+RequestID", func(b *testing.B) {
		runBench(b, benchRouter(b, chimw.RequestID), benchRequest(labelledHeaders...))
	})
	// floor: the two allocations any labelling middleware of this shape
	// makes (the labels context and the derived request), and nothing else.
	b.Run("floor=chi+NewContext+WithContext", func(b *testing.B) {
		floor := func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				l := tenant.Labels{Tenant: "globex", Cohort: tenant.Stable, Reason: tenant.ReasonPercent}
				next.ServeHTTP(w, r.WithContext(tenant.NewContext(r.Context(), l)))
			})
		}
		runBench(b, benchRouter(b, floor), benchRequest(labelledHeaders...))
	})
	b.Run("canary/tenant+user", func(b *testing.B) {
		runBench(b, benchRouter(b, benchEngine(b).Middleware), benchRequest(labelledHeaders...))
	})
	b.Run("canary/tenant+user+traceparent", func(b *testing.B) {
		runBench(b, benchRouter(b, benchEngine(b).Middleware), benchRequest(append(labelledHeaders,
			"Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")...))
	})
	b.Run("canary/tenant-only", func(b *testing.B) {
		runBench(b, benchRouter(b, benchEngine(b).Middleware), benchRequest(tenant.HeaderTenant, "acme"))
	})
	b.Run("canary/Default", func(b *testing.B) {
		runBench(b, benchRouter(b, canary.Middleware), benchRequest(labelledHeaders...))
	})
}

// exactSource is a tenant.Source keyed by the exact wire names, as the
// middleware's header adapter looks them up (http.Header.Values would
// canonicalize "X-Tenant-ID" and allocate on every call).
type exactSource map[string][]string

func (s exactSource) Values(k string) []string { return s[k] }

// BenchmarkDecide measures the engine alone, without HTTP: header reads,
// user hash (AES-CMAC), bucket (murmur3) and rules.
func BenchmarkDecide(b *testing.B) {
	eng := benchEngine(b)
	src := exactSource{tenant.HeaderTenant: {"globex"}, tenant.HeaderUser: {"user-12345"}}
	req := tenant.Request{Source: src, Wire: tenant.HTTP}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		sinkLabels, _ = eng.Decide(ctx, req)
	}
}
