package benchmarks

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

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
	r := newRouter(mws...)
	r.Get("/checkout", func(w http.ResponseWriter, r *http.Request) {
		sinkLabels, _ = tenant.FromContext(r.Context())
	})
	return r
}

// newRouter returns a chi router using mws, with no routes yet.
func newRouter(mws ...func(http.Handler) http.Handler) *chi.Mux {
	r := chi.NewRouter()
	r.Use(mws...)
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

func benchEngine(b testing.TB, opts ...canary.Option) *canary.Engine {
	b.Helper()
	plan, err := canary.ParsePlan([]byte("version: 7\nsalt: checkout-v2\ncanary_percent: 12.5\n" +
		"tenants:\n  canary: [acme]\n  stable: [bigbank]\noverride:\n  trusted_cidrs: [10.0.0.0/8]\n"))
	if err != nil {
		b.Fatal(err)
	}
	eng, err := canary.New(append([]canary.Option{canary.WithPlan(plan),
		canary.WithUserHashKey([]byte("benchmark-key-0123456789abcdef"))}, opts...)...)
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

// BenchmarkMiddlewarePaired measures what the middleware adds to bare chi
// with the two sides interleaved: each iteration serves a block of requests
// through bare chi and a block through the case's router, in alternating
// order, and times each block. Load from other jobs on the machine then hits
// both sides alike, which separate runs of BenchmarkMiddleware cannot
// promise. Reported: the median per-request time of each side's blocks
// (chi-ns/req, case-ns/req) and the median of the per-block differences
// (added-ns/req), which is the figure the target is about. Read the
// ns/op column as the cost of one iteration (both blocks), not a result;
// allocation counts are BenchmarkMiddleware's.
//
//	cd benchmarks && go test -run '^$' -bench MiddlewarePaired -benchtime 200x -count 5
func BenchmarkMiddlewarePaired(b *testing.B) {
	const block = 8192
	hasher, err := tenant.NewUserHasher([]byte("benchmark-key-0123456789abcdef"))
	if err != nil {
		b.Fatal(err)
	}
	// floor: the labels context and the derived request, nothing else.
	floor := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			l := tenant.Labels{Tenant: "globex", Cohort: tenant.Stable, Reason: tenant.ReasonPercent}
			next.ServeHTTP(w, r.WithContext(tenant.NewContext(r.Context(), l)))
		})
	}
	// floor+hash: the floor plus the keyed user hash every request with a
	// user needs (the headers read directly, no validation).
	floorHash := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h := r.Header
			l := tenant.Labels{Tenant: h["X-Tenant-Id"][0], Cohort: tenant.Stable, Reason: tenant.ReasonPercent}
			l.UserHash = hasher.Hash(l.Tenant, h["X-User-Id"][0])
			next.ServeHTTP(w, r.WithContext(tenant.NewContext(r.Context(), l)))
		})
	}
	cases := []struct {
		name string
		mw   func(b *testing.B) func(http.Handler) http.Handler
	}{
		{"floor=chi+NewContext+WithContext", func(*testing.B) func(http.Handler) http.Handler { return floor }},
		{"floor=chi+NewContext+WithContext+UserHash", func(*testing.B) func(http.Handler) http.Handler { return floorHash }},
		{"canary/tenant+user", func(b *testing.B) func(http.Handler) http.Handler { return benchEngine(b).Middleware }},
		// With a guard configured, the middleware also records each
		// request's status and latency for it.
		{"canary/tenant+user+guard", func(b *testing.B) func(http.Handler) http.Handler {
			return benchEngine(b, canary.WithGuard(canary.GuardConfig{Enabled: true}),
				canary.WithLogger(slog.New(slog.DiscardHandler))).Middleware
		}},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			base, subject := benchRouter(b), benchRouter(b, c.mw(b))
			req := benchRequest(labelledHeaders...)
			w := &discardWriter{h: http.Header{}}
			run := func(h http.Handler) time.Duration {
				start := time.Now()
				for range block {
					clear(w.h)
					h.ServeHTTP(w, req)
				}
				return time.Since(start)
			}
			run(base) // warm up both sides
			run(subject)
			var bases, subjects, diffs []float64
			i := 0
			b.ResetTimer()
			for b.Loop() {
				var tb, ts time.Duration
				if i%2 == 0 {
					tb, ts = run(base), run(subject)
				} else {
					ts, tb = run(subject), run(base)
				}
				i++
				nb, ns := float64(tb.Nanoseconds())/block, float64(ts.Nanoseconds())/block
				bases, subjects, diffs = append(bases, nb), append(subjects, ns), append(diffs, ns-nb)
			}
			median := func(v []float64) float64 {
				slices.Sort(v)
				return v[len(v)/2]
			}
			b.ReportMetric(median(bases), "chi-ns/req")
			b.ReportMetric(median(subjects), "case-ns/req")
			b.ReportMetric(median(diffs), "added-ns/req")
		})
	}
}
