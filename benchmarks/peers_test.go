package benchmarks

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	chimw "github.com/go-chi/chi/v5/middleware"
	gb "github.com/growthbook/growthbook-golang"
	"github.com/launchdarkly/go-sdk-common/v3/ldcontext"
	"github.com/launchdarkly/go-sdk-common/v3/ldlog"
	ld "github.com/launchdarkly/go-server-sdk/v7"
	"github.com/launchdarkly/go-server-sdk/v7/ldcomponents"
	"github.com/launchdarkly/go-server-sdk/v7/ldfiledata"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/reqcanary/canary"
	"github.com/reqcanary/canary/tenant"
)

// The peer comparison (issue 17): what a user would mount instead of canary
// to decide a 12.5 % rollout per request, each peer evaluated in process as
// its docs set it up, beside chi's RequestID and otelhttp, all on the same
// chi router and the same reused request (tenant, user and traceparent).
// Each peer middleware puts its decision in the request's context, as
// canary's does, and the handler reads it.

// flagKey is the context key of a peer middleware's decision.
type flagKey struct{}

var sinkFlag bool

// peerRouter is benchRouter whose handler also reads a peer's decision.
func peerRouter(tb testing.TB, mws ...func(http.Handler) http.Handler) http.Handler {
	tb.Helper()
	r := newRouter(mws...)
	r.Get("/checkout", func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		sinkLabels, _ = tenant.FromContext(ctx)
		sinkFlag, _ = ctx.Value(flagKey{}).(bool)
	})
	return r
}

// traceparent is the W3C example trace context every peer request carries.
const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

var peerHeaders = append(slices.Clone(labelledHeaders), tenant.HeaderTraceParent, traceparent)

// flagMiddleware is the middleware a user writes around a flag SDK: read the
// tenant and user headers, evaluate, put the decision in the context.
func flagMiddleware(eval func(ctx context.Context, tenantID, user string) bool) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			on := eval(r.Context(), r.Header.Get(tenant.HeaderTenant), r.Header.Get(tenant.HeaderUser))
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), flagKey{}, on)))
		})
	}
}

// ldFlags is a LaunchDarkly flag in the SDK's file data format (the JSON of
// its flag API): on, fallthrough to a percentage rollout of 12.5 % true by
// the user context's key, salted like canary's plan.
const ldFlags = `{"flags": {"checkout-v2": {
  "key": "checkout-v2", "version": 1, "on": true, "salt": "checkout-v2",
  "variations": [true, false], "offVariation": 1,
  "fallthrough": {"rollout": {"contextKind": "user", "bucketBy": "key",
    "variations": [{"variation": 0, "weight": 12500}, {"variation": 1, "weight": 87500}]}}
}}}`

// newLDClient starts a LaunchDarkly server SDK client in offline file-data
// mode (ldfiledata, no events sent), as its docs describe for running
// without a connection to LaunchDarkly.
func newLDClient(tb testing.TB) *ld.LDClient {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "flags.json")
	if err := os.WriteFile(path, []byte(ldFlags), 0o600); err != nil {
		tb.Fatal(err)
	}
	c, err := ld.MakeCustomClient("sdk-key-benchmark", ld.Config{
		DataSource: ldfiledata.DataSource().FilePaths(path),
		Events:     ldcomponents.NoEvents(),
		Logging:    ldcomponents.Logging().Loggers(ldlog.NewDisabledLoggers()),
	}, 5*time.Second)
	if err != nil {
		tb.Fatal(err)
	}
	if !c.Initialized() {
		tb.Fatal("LaunchDarkly client did not load its file data")
	}
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

// ldMulti evaluates with a multi-kind context: the tenant and the user.
func ldMulti(c *ld.LDClient) func(context.Context, string, string) bool {
	return func(_ context.Context, t, u string) bool {
		lc := ldcontext.NewMulti(ldcontext.NewWithKind("tenant", t), ldcontext.New(u))
		on, _ := c.BoolVariation("checkout-v2", lc, false)
		return on
	}
}

// ldUser evaluates with the user's key alone.
func ldUser(c *ld.LDClient) func(context.Context, string, string) bool {
	return func(_ context.Context, _, u string) bool {
		on, _ := c.BoolVariation("checkout-v2", ldcontext.New(u), false)
		return on
	}
}

// gbFeatures is a GrowthBook feature in the SDK's JSON format: off by
// default, a rollout rule forcing it on for 12.5 % of the "id" attribute.
const gbFeatures = `{"checkout-v2": {"defaultValue": false,
  "rules": [{"force": true, "coverage": 0.125, "hashAttribute": "id", "seed": "checkout-v2", "hashVersion": 2}]}}`

// newGBClient makes a GrowthBook client with its features given as JSON (no
// data source, nothing tracked), as its docs describe for features pulled
// from a cache.
func newGBClient(tb testing.TB) *gb.Client {
	tb.Helper()
	c, err := gb.NewClient(context.Background(), gb.WithJsonFeatures(gbFeatures),
		gb.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

// gbEval evaluates with a child client carrying the request's attributes, as
// GrowthBook's docs recommend per request.
func gbEval(c *gb.Client) func(context.Context, string, string) bool {
	return func(ctx context.Context, t, u string) bool {
		child, err := c.WithAttributes(gb.Attributes{"id": u, "tenant": t})
		if err != nil {
			return false
		}
		return child.EvalFeature(ctx, "checkout-v2").On
	}
}

// otelhttpMiddleware starts a sampled server span per request (an SDK
// tracer provider with no exporter).
func otelhttpMiddleware(tb testing.TB) func(http.Handler) http.Handler {
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()))
	tb.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return otelhttp.NewMiddleware("shop", otelhttp.WithTracerProvider(tp))
}

func floorMiddleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		l := tenant.Labels{Tenant: "globex", Cohort: tenant.Stable, Reason: tenant.ReasonPercent}
		next.ServeHTTP(w, r.WithContext(tenant.NewContext(r.Context(), l)))
	})
}

// peerCase is one row of the comparison.
type peerCase struct {
	name string
	mw   func(tb testing.TB) func(http.Handler) http.Handler
}

func peerCases() []peerCase {
	return []peerCase{
		{"chi+RequestID", func(testing.TB) func(http.Handler) http.Handler { return chimw.RequestID }},
		// floor: what any labelling middleware of the chi shape pays, the
		// labels context and the derived request, nothing decided.
		{"floor", func(testing.TB) func(http.Handler) http.Handler { return floorMiddleware }},
		{"canary", func(tb testing.TB) func(http.Handler) http.Handler { return benchEngine(tb).Middleware }},
		{"canary+guard", func(tb testing.TB) func(http.Handler) http.Handler {
			return benchEngine(tb, canary.WithGuard(canary.GuardConfig{Enabled: true}),
				canary.WithLogger(slog.New(slog.DiscardHandler))).Middleware
		}},
		{"launchdarkly", func(tb testing.TB) func(http.Handler) http.Handler {
			return flagMiddleware(ldMulti(newLDClient(tb)))
		}},
		{"launchdarkly-userkey", func(tb testing.TB) func(http.Handler) http.Handler {
			return flagMiddleware(ldUser(newLDClient(tb)))
		}},
		{"growthbook", func(tb testing.TB) func(http.Handler) http.Handler {
			return flagMiddleware(gbEval(newGBClient(tb)))
		}},
		{"otelhttp", otelhttpMiddleware},
	}
}

// TestPeersDecideARollout checks that no case of the comparison is a no-op:
// canary and each flag SDK, as set up for the benchmarks, put about 12.5 %
// of 1 024 users of one tenant in the rollout.
func TestPeersDecideARollout(t *testing.T) {
	eng := benchEngine(t)
	lc := newLDClient(t)
	cases := map[string]func(context.Context, string, string) bool{
		"canary": func(ctx context.Context, te, u string) bool {
			l, err := eng.Decide(ctx, tenant.Request{Source: exactSource{
				tenant.HeaderTenant: {te}, tenant.HeaderUser: {u}}, Wire: tenant.HTTP})
			if err != nil {
				t.Fatal(err)
			}
			return l.Cohort.IsCanary()
		},
		"launchdarkly":         ldMulti(lc),
		"launchdarkly-userkey": ldUser(lc),
		"growthbook":           gbEval(newGBClient(t)),
	}
	for name, eval := range cases {
		t.Run(name, func(t *testing.T) {
			on := 0
			for i := range 1024 {
				if eval(context.Background(), "globex", "user-"+strconv.Itoa(i)) {
					on++
				}
			}
			// 128 expected; the binomial standard deviation is 10.6.
			if on < 92 || on > 164 {
				t.Fatalf("%d of 1024 users in the rollout, want about 128 (12.5 %%)", on)
			}
			t.Logf("%d of 1024 users in the rollout", on)
		})
	}
	// The middleware path decides too (the handler sees the decision).
	for _, c := range peerCases() {
		t.Run("middleware/"+c.name, func(t *testing.T) {
			var seen bool
			r := newRouter(c.mw(t))
			r.Get("/checkout", func(w http.ResponseWriter, r *http.Request) {
				_, labelled := tenant.FromContext(r.Context())
				_, flagged := r.Context().Value(flagKey{}).(bool)
				seen = labelled || flagged
				_, _ = io.WriteString(w, "ok")
			})
			w := &discardWriter{h: http.Header{}}
			r.ServeHTTP(w, benchRequest(peerHeaders...))
			if want := c.name != "chi+RequestID" && c.name != "otelhttp"; seen != want {
				t.Fatalf("handler saw a decision: %v, want %v", seen, want)
			}
		})
	}
}

// BenchmarkPeers gives each case's allocations (and a single-run ns/op,
// which is not comparable across runs on a shared machine; the paired
// figures are BenchmarkPeersInterleaved's).
//
//	cd benchmarks && go test -run '^$' -bench '^BenchmarkPeers$' -benchmem
func BenchmarkPeers(b *testing.B) {
	b.Run("baseline=chi", func(b *testing.B) {
		runBench(b, peerRouter(b), benchRequest(peerHeaders...))
	})
	for _, c := range peerCases() {
		b.Run(c.name, func(b *testing.B) {
			runBench(b, peerRouter(b, c.mw(b)), benchRequest(peerHeaders...))
		})
	}
}

// BenchmarkPeersInterleaved runs every case of the comparison and bare chi
// in one loop: each iteration serves a block of requests through each
// router, in an order rotated every iteration, and measures each block. Load
// from other jobs then hits every case alike. Each block is measured twice:
// wall time, and the process's CPU time (getrusage: user + system, every
// thread, so the garbage collector's background work during the block
// counts, but time the machine spent on other processes does not). On a
// shared machine the CPU figures are the steadier ones; the ratios use
// them.
//
// Reported, per case, the median over the iterations of the per-request CPU
// time added to bare chi's block of the same iteration (cpu-added-ns/<case>)
// and the same in wall time (added-ns/<case>); bare chi's medians
// (chi-cpu-ns/req, chi-ns/req); and, from the CPU figures, canary's added
// cost as a share of the cheapest flag SDK's (canary/fastest-sdk), of
// RequestID's (canary/requestid), and the guard's extra share (guard-extra).
//
//	cd benchmarks && go test -run '^$' -bench PeersInterleaved -benchtime 30x -count 3
func BenchmarkPeersInterleaved(b *testing.B) {
	const block = 4096
	cases := peerCases()
	routers := []http.Handler{peerRouter(b)}
	for _, c := range cases {
		routers = append(routers, peerRouter(b, c.mw(b)))
	}
	req := benchRequest(peerHeaders...)
	w := &discardWriter{h: http.Header{}}
	run := func(h http.Handler) (wall, cpu float64) {
		c0 := processCPU(b)
		start := time.Now()
		for range block {
			clear(w.h)
			h.ServeHTTP(w, req)
		}
		return float64(time.Since(start).Nanoseconds()) / block, float64(processCPU(b)-c0) / block
	}
	for _, h := range routers { // warm up
		run(h)
	}
	wallAdded := make([][]float64, len(cases))
	cpuAdded := make([][]float64, len(cases))
	var bases, cpuBases []float64
	ratios := map[string][]float64{}
	it := 0
	b.ResetTimer()
	for b.Loop() {
		wall, cpu := make([]float64, len(routers)), make([]float64, len(routers))
		for k := range routers {
			i := (k + it) % len(routers)
			wall[i], cpu[i] = run(routers[i])
		}
		it++
		bases, cpuBases = append(bases, wall[0]), append(cpuBases, cpu[0])
		byName := map[string]float64{}
		for i, c := range cases {
			wallAdded[i] = append(wallAdded[i], wall[i+1]-wall[0])
			d := cpu[i+1] - cpu[0]
			cpuAdded[i] = append(cpuAdded[i], d)
			byName[c.name] = d
		}
		fastest := min(byName["launchdarkly"], byName["launchdarkly-userkey"], byName["growthbook"])
		ratios["canary/fastest-sdk"] = append(ratios["canary/fastest-sdk"], byName["canary"]/fastest)
		ratios["canary/requestid"] = append(ratios["canary/requestid"], byName["canary"]/byName["chi+RequestID"])
		ratios["guard-extra"] = append(ratios["guard-extra"], byName["canary+guard"]/byName["canary"]-1)
	}
	median := func(v []float64) float64 {
		v = slices.Clone(v)
		slices.Sort(v)
		return v[len(v)/2]
	}
	b.ReportMetric(median(bases), "chi-ns/req")
	b.ReportMetric(median(cpuBases), "chi-cpu-ns/req")
	for i, c := range cases {
		b.ReportMetric(median(wallAdded[i]), "added-ns/"+c.name)
		b.ReportMetric(median(cpuAdded[i]), "cpu-added-ns/"+c.name)
	}
	for k, v := range ratios {
		b.ReportMetric(median(v), k)
	}
}

// processCPU returns the CPU time the process has used (user + system, all
// threads), in nanoseconds.
func processCPU(tb testing.TB) int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
