package fallback

import (
	"context"
	"time"

	"github.com/failsafe-go/failsafe-go/circuitbreaker"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// ScopeName is the instrumentation scope of the meter.
const ScopeName = "github.com/reqcanary/canary/fallback"

// Metric names. Every metric carries the canary.dependency attribute
// (Config.Name).
const (
	// MetricAttempts counts attempts per endpoint (canary.endpoint) and
	// outcome (canary.outcome: success, timeout, connect, circuit-open,
	// deadline, error, 5xx, canceled).
	MetricAttempts = "canary.fallback.attempts"
	// MetricFallbacks counts switches from one step of the chain to the
	// next (canary.fallback.from, canary.fallback.to, canary.fallback.reason).
	MetricFallbacks = "canary.fallback.fallbacks"
	// MetricCircuitState is the state of each endpoint's circuit breaker
	// (canary.endpoint): 0 closed, 1 half-open, 2 open.
	MetricCircuitState = "canary.fallback.circuit.state"
	// MetricCacheLookups counts cache reads (canary.cache.result: hit,
	// miss, error).
	MetricCacheLookups = "canary.fallback.cache.lookups"
	// MetricCacheStores counts cache writes (canary.cache.result: stored,
	// error).
	MetricCacheStores = "canary.fallback.cache.stores"
	// MetricShadowComparisons counts shadow comparisons
	// (canary.shadow.result: match, mismatch, error, skipped, dropped,
	// canceled).
	MetricShadowComparisons = "canary.fallback.shadow.comparisons"
)

// Attribute keys of the metrics and span events.
const (
	AttrDependency     = attribute.Key("canary.dependency")
	AttrEndpoint       = attribute.Key("canary.endpoint")
	AttrOutcome        = attribute.Key("canary.outcome")
	AttrFallbackFrom   = attribute.Key("canary.fallback.from")
	AttrFallbackTo     = attribute.Key("canary.fallback.to")
	AttrFallbackReason = attribute.Key("canary.fallback.reason")
	AttrCacheResult    = attribute.Key("canary.cache.result")
	AttrShadowResult   = attribute.Key("canary.shadow.result")
)

// Span event names, added to the caller's span (trace.SpanFromContext).
const (
	EventFallback = "canary.fallback"       // a step of the chain failed and the next one runs
	EventCacheHit = "canary.fallback.cache" // the answer came from the cache
)

// instruments holds the metric instruments of one transport or interceptor.
type instruments struct {
	dep         attribute.KeyValue
	attempts    metric.Int64Counter
	fallbacks   metric.Int64Counter
	lookups     metric.Int64Counter
	stores      metric.Int64Counter
	comparisons metric.Int64Counter
	reg         metric.Registration

	attemptOpts [numRoles][len(reasonNames)]metric.AddOption
	lookupOpts  [3]metric.AddOption // hit, miss, error
	storeOpts   [2]metric.AddOption // stored, error
}

const (
	lookupHit = iota
	lookupMiss
	lookupError
)

// newInstruments creates the instruments from mp (otel.GetMeterProvider()
// when nil). breakers, indexed by role, are observed by the circuit state
// gauge; nil entries are skipped.
func newInstruments(mp metric.MeterProvider, dependency string, breakers [numRoles]stateful) (*instruments, error) {
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	m := mp.Meter(ScopeName)
	in := &instruments{dep: AttrDependency.String(dependency)}
	var err error
	if in.attempts, err = m.Int64Counter(MetricAttempts, metric.WithUnit("{attempt}"),
		metric.WithDescription("Attempts per endpoint and outcome")); err != nil {
		return nil, err
	}
	if in.fallbacks, err = m.Int64Counter(MetricFallbacks, metric.WithUnit("{fallback}"),
		metric.WithDescription("Switches to the next step of the fallback chain, by reason")); err != nil {
		return nil, err
	}
	if in.lookups, err = m.Int64Counter(MetricCacheLookups, metric.WithUnit("{lookup}"),
		metric.WithDescription("Stale-if-error cache reads by result")); err != nil {
		return nil, err
	}
	if in.stores, err = m.Int64Counter(MetricCacheStores, metric.WithUnit("{store}"),
		metric.WithDescription("Stale-if-error cache writes by result")); err != nil {
		return nil, err
	}
	if in.comparisons, err = m.Int64Counter(MetricShadowComparisons, metric.WithUnit("{comparison}"),
		metric.WithDescription("Shadow comparisons of stable and canary answers by result")); err != nil {
		return nil, err
	}
	for r := range numRoles {
		for o := range reasonNames {
			out := reason(o).String()
			if o == 0 {
				out = "success"
			}
			in.attemptOpts[r][o] = metric.WithAttributeSet(attribute.NewSet(in.dep,
				AttrEndpoint.String(role(r).String()), AttrOutcome.String(out)))
		}
	}
	for i, s := range []string{"hit", "miss", "error"} {
		in.lookupOpts[i] = metric.WithAttributeSet(attribute.NewSet(in.dep, AttrCacheResult.String(s)))
	}
	for i, s := range []string{"stored", "error"} {
		in.storeOpts[i] = metric.WithAttributeSet(attribute.NewSet(in.dep, AttrCacheResult.String(s)))
	}

	gauge, err := m.Int64ObservableGauge(MetricCircuitState, metric.WithUnit("{state}"),
		metric.WithDescription("Circuit breaker state per endpoint: 0 closed, 1 half-open, 2 open"))
	if err != nil {
		return nil, err
	}
	var observed [numRoles]metric.ObserveOption
	for r, cb := range breakers {
		if cb != nil {
			observed[r] = metric.WithAttributeSet(attribute.NewSet(in.dep, AttrEndpoint.String(role(r).String())))
		}
	}
	in.reg, err = m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		for r, cb := range breakers {
			if cb != nil {
				o.ObserveInt64(gauge, circuitValue(cb.State()), observed[r])
			}
		}
		return nil
	}, gauge)
	if err != nil {
		return nil, err
	}
	return in, nil
}

// stateful is what the circuit state gauge observes of a breaker.
type stateful interface{ State() circuitbreaker.State }

// circuitValue maps a breaker state to the gauge's value.
func circuitValue(s circuitbreaker.State) int64 {
	switch s {
	case circuitbreaker.HalfOpenState:
		return 1
	case circuitbreaker.OpenState:
		return 2
	}
	return 0
}

func (in *instruments) attempt(ctx context.Context, r role, why reason) {
	in.attempts.Add(ctx, 1, in.attemptOpts[r][why])
}

func (in *instruments) fallback(ctx context.Context, from, to role, why reason) {
	in.fallbacks.Add(ctx, 1, metric.WithAttributes(in.dep,
		AttrFallbackFrom.String(from.String()), AttrFallbackTo.String(to.String()),
		AttrFallbackReason.String(why.String())))
	if span := trace.SpanFromContext(ctx); span.IsRecording() {
		span.AddEvent(EventFallback, trace.WithAttributes(in.dep,
			AttrFallbackFrom.String(from.String()), AttrFallbackTo.String(to.String()),
			AttrFallbackReason.String(why.String())))
	}
}

// cacheHit adds the EventCacheHit span event: the answer came from the
// cache, stored age ago.
func (in *instruments) cacheHit(ctx context.Context, age time.Duration) {
	if span := trace.SpanFromContext(ctx); span.IsRecording() {
		span.AddEvent(EventCacheHit, trace.WithAttributes(in.dep, attribute.Int64("canary.cache.age_seconds", int64(age/time.Second))))
	}
}

func (in *instruments) comparison(ctx context.Context, result string) {
	in.comparisons.Add(ctx, 1, metric.WithAttributes(in.dep, AttrShadowResult.String(result)))
}

// close unregisters the gauge's callback.
func (in *instruments) close() error {
	if in.reg == nil {
		return nil
	}
	return in.reg.Unregister()
}
