package fallback

import (
	"context"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/reqcanary/canary/tenant"
)

// metrics is a collected snapshot: metric name → attributes (without the
// dependency, "k=v,k=v" sorted) → value.
type metrics map[string]map[string]int64

func newReader() (*sdkmetric.ManualReader, *sdkmetric.MeterProvider) {
	r := sdkmetric.NewManualReader()
	return r, sdkmetric.NewMeterProvider(sdkmetric.WithReader(r))
}

func collect(t *testing.T, r *sdkmetric.ManualReader) metrics {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	out := metrics{}
	key := func(s attribute.Set) string {
		var parts []string
		for _, kv := range s.ToSlice() {
			if kv.Key != AttrDependency {
				parts = append(parts, string(kv.Key)+"="+kv.Value.Emit())
			}
		}
		sort.Strings(parts)
		return strings.Join(parts, ",")
	}
	for _, sm := range rm.ScopeMetrics {
		if sm.Scope.Name != ScopeName {
			continue
		}
		for _, m := range sm.Metrics {
			vals := map[string]int64{}
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, p := range d.DataPoints {
					vals[key(p.Attributes)] += p.Value
				}
			case metricdata.Gauge[int64]:
				for _, p := range d.DataPoints {
					vals[key(p.Attributes)] = p.Value
				}
			}
			out[m.Name] = vals
		}
	}
	return out
}

func TestMetrics(t *testing.T) {
	reader, mp := newReader()
	sw := &switchable{serve: ok200}
	cache := memCache(t)
	tr := mustTransport(t, Config{
		Canary: newServer(t, "canary", hang(5*time.Second)).URL, Stable: newServer(t, "stable", sw.handler).URL,
		Timeout: 100 * time.Millisecond, Cache: cache, MeterProvider: mp,
		Breaker: BreakerConfig{Failures: 2, Delay: time.Minute},
	})
	canaryCtx := labelled(tenant.Canary, "acme", "")
	stableCtx := labelled(tenant.Stable, "acme", "")
	do(t, tr, canaryCtx, "GET", "http://dep/a", "") // canary timeout → stable, stored
	do(t, tr, stableCtx, "GET", "http://dep/b", "") // stable, stored
	sw.broken.Store(true)
	do(t, tr, stableCtx, "GET", "http://dep/b", "") // stable 503 → cache hit
	do(t, tr, stableCtx, "GET", "http://dep/c", "") // stable 503 → cache miss
	do(t, tr, canaryCtx, "GET", "http://dep/a", "") // canary timeout, its circuit opens → stable circuit open → cache hit
	do(t, tr, canaryCtx, "GET", "http://dep/a", "") // both circuits open → cache hit

	got := collect(t, reader)
	for _, tc := range []struct {
		metric, attrs string
		want          int64
	}{
		{MetricAttempts, "canary.endpoint=canary,canary.outcome=timeout", 2},
		{MetricAttempts, "canary.endpoint=canary,canary.outcome=circuit-open", 1},
		{MetricAttempts, "canary.endpoint=stable,canary.outcome=success", 2},
		{MetricAttempts, "canary.endpoint=stable,canary.outcome=5xx", 2},
		{MetricAttempts, "canary.endpoint=stable,canary.outcome=circuit-open", 2}, // stable's breaker opened too
		{MetricFallbacks, "canary.fallback.from=canary,canary.fallback.reason=timeout,canary.fallback.to=stable", 2},
		{MetricFallbacks, "canary.fallback.from=canary,canary.fallback.reason=circuit-open,canary.fallback.to=stable", 1},
		{MetricFallbacks, "canary.fallback.from=stable,canary.fallback.reason=5xx,canary.fallback.to=cache", 2},
		{MetricFallbacks, "canary.fallback.from=stable,canary.fallback.reason=circuit-open,canary.fallback.to=cache", 2},
		{MetricCacheLookups, "canary.cache.result=hit", 3},
		{MetricCacheLookups, "canary.cache.result=miss", 1},
		{MetricCacheStores, "canary.cache.result=stored", 2},
		{MetricCircuitState, "canary.endpoint=canary", 2},
		{MetricCircuitState, "canary.endpoint=stable", 2},
	} {
		if v := got[tc.metric][tc.attrs]; v != tc.want {
			t.Errorf("%s{%s} = %d, want %d (all: %v)", tc.metric, tc.attrs, v, tc.want, got[tc.metric])
		}
	}
	// Close unregisters the circuit state callback.
	tr.Close()
	if g := collect(t, reader)[MetricCircuitState]; len(g) != 0 {
		t.Errorf("circuit state still observed after Close: %v", g)
	}
}

func TestSpanEvents(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer tp.Shutdown(context.Background())
	tr := mustTransport(t, Config{Canary: refusedURL(t), Stable: newServer(t, "stable", nil).URL})
	ctx, span := tp.Tracer("test").Start(labelled(tenant.Canary, "acme", ""), "call dependency")
	do(t, tr, ctx, "GET", "http://dep/a", "")
	span.End()
	spans := rec.Ended()
	if len(spans) != 1 {
		t.Fatalf("%d spans", len(spans))
	}
	var found bool
	for _, ev := range spans[0].Events() {
		if ev.Name != EventFallback {
			continue
		}
		attrs := attribute.NewSet(ev.Attributes...)
		from, _ := attrs.Value(AttrFallbackFrom)
		to, _ := attrs.Value(AttrFallbackTo)
		why, _ := attrs.Value(AttrFallbackReason)
		if from.AsString() == "canary" && to.AsString() == "stable" && why.AsString() == "connect" {
			found = true
		}
	}
	if !found {
		t.Fatalf("no %s event canary→stable (connect) in %+v", EventFallback, spans[0].Events())
	}

	// A cached answer adds EventCacheHit.
	ctr, sw := cacheSetup(t, memCache(t), nil, nil)
	ctx = labelled(tenant.Stable, "acme", "")
	do(t, ctr, ctx, "GET", "http://dep/c", "")
	sw.broken.Store(true)
	ctx, span = tp.Tracer("test").Start(ctx, "cached call")
	if r := do(t, ctr, ctx, "GET", "http://dep/c", ""); r.servedBy != "cache" {
		t.Fatalf("%+v", r)
	}
	span.End()
	var names []string
	for _, ev := range rec.Ended()[1].Events() {
		names = append(names, ev.Name)
	}
	if strings.Join(names, ",") != EventFallback+","+EventCacheHit {
		t.Fatalf("events %v, want %s then %s", names, EventFallback, EventCacheHit)
	}
}

// TestMeterProviderDefaultIsGlobal: without a MeterProvider, the transport
// uses the global one (a no-op unless set) and works.
func TestMeterProviderDefaultIsGlobal(t *testing.T) {
	tr := mustTransport(t, Config{Stable: newServer(t, "stable", nil).URL})
	if r := do(t, tr, context.Background(), http.MethodGet, "http://dep/a", ""); r.servedBy != "stable" {
		t.Fatalf("%+v", r)
	}
}
