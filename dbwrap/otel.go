package dbwrap

import (
	"context"
	"sync"
	"sync/atomic"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// Telemetry names. Attributes go on the active span of each routed
// statement; metrics go to Config.MeterProvider.
const (
	instrumentationName = "github.com/reqcanary/canary/dbwrap"

	AttrDBSystem = attribute.Key("db.system")               // the dialect's system, e.g. "postgresql"
	AttrTarget   = attribute.Key("canary.db.target")        // "primary" or "replica"
	AttrServer   = attribute.Key("canary.db.server")        // "primary", "replica-0", ...
	AttrReason   = attribute.Key("canary.db.reason")        // why it went there
	AttrFrom     = attribute.Key("canary.db.failover.from") // the server a read failed on

	MetricRoutes        = "canary.db.routes"         // counter: statements routed, by target, server and reason
	MetricFailovers     = "canary.db.failovers"      // counter: reads retried elsewhere, by from, server and reason
	MetricReplicaLag    = "canary.db.replica.lag"    // gauge (s): last measured replay lag, by server
	MetricReplicaUp     = "canary.db.replica.up"     // gauge: 1 while the replica serves reads, 0 while it is out, by server; not reported before its first poll verdict
	MetricReplicaEvents = "canary.db.replica.events" // counter: replicas taken out ("down", also when the first poll finds one unfit) or back ("up"; not the first admission)
	MetricTokenErrors   = "canary.db.token_store.errors"
)

type metrics struct {
	c           *connector
	system      attribute.KeyValue
	hasSystem   bool
	routes      metric.Int64Counter
	failovers   metric.Int64Counter
	events      metric.Int64Counter
	tokenErrors metric.Int64Counter
	meter       metric.Meter
	lag         metric.Float64ObservableGauge
	up          metric.Int64ObservableGauge
	reg         metric.Registration                             // the replica gauges' callback; nil until register
	opts        []atomic.Pointer[map[string][]metric.AddOption] // by server index: reason -> options
	mu          sync.Mutex                                      // serialises writers of opts
}

func newMetrics(c *connector) *metrics {
	mp := c.set.meterProvider
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	meter := mp.Meter(instrumentationName)
	m := &metrics{c: c, opts: make([]atomic.Pointer[map[string][]metric.AddOption], len(c.servers))}
	if c.system != "" {
		m.system, m.hasSystem = AttrDBSystem.String(c.system), true
	}
	// Instrument errors only happen with invalid names; the no-op
	// instruments returned alongside keep working.
	m.routes, _ = meter.Int64Counter(MetricRoutes, metric.WithDescription("Statements routed by dbwrap, by target, server and reason."))
	m.failovers, _ = meter.Int64Counter(MetricFailovers, metric.WithDescription("Reads retried on another server after a replica failed them."))
	m.events, _ = meter.Int64Counter(MetricReplicaEvents, metric.WithDescription("Replicas taken out of service, or found unfit by their first poll (down), or put back after RecoverAfter (up)."))
	m.tokenErrors, _ = meter.Int64Counter(MetricTokenErrors, metric.WithDescription("Token store calls that failed; the reads went to the primary."))
	m.lag, _ = meter.Float64ObservableGauge(MetricReplicaLag, metric.WithUnit("s"), metric.WithDescription("Last measured replay lag of each replica."))
	m.up, _ = meter.Int64ObservableGauge(MetricReplicaUp, metric.WithDescription("1 while the replica serves reads, else 0; not reported before the replica's first poll verdict."))
	m.meter = meter
	return m
}

// register reports the replica gauges until close. The connector calls it
// when it starts, so that a database never started leaves no callback
// behind on the meter provider.
func (m *metrics) register() {
	c := m.c
	if len(c.replicas) == 0 || m.reg != nil {
		return
	}
	lag, up := m.lag, m.up
	m.reg, _ = m.meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		for _, s := range c.replicas {
			set := metric.WithAttributes(AttrServer.String(s.name))
			if l := s.lag.Load(); l >= 0 {
				o.ObserveFloat64(lag, float64(l)/1e9, set)
			}
			if !s.polled.Load() {
				continue // no verdict yet: neither up nor down
			}
			v := int64(0)
			if s.healthy.Load() {
				v = 1
			}
			o.ObserveInt64(up, v, set)
		}
		return nil
	}, lag, up)
}

// close unregisters the replica gauges' callback.
func (m *metrics) close() error {
	if m.reg != nil {
		reg := m.reg
		m.reg = nil
		return reg.Unregister()
	}
	return nil
}

// routed records where a statement went: attributes on the active span (when
// it records) and the routes counter. It does not allocate once the
// (server, reason) pair has been seen.
func (m *metrics) routed(ctx context.Context, d decision) {
	if span := trace.SpanFromContext(ctx); span.IsRecording() {
		kv := [4]attribute.KeyValue{
			AttrTarget.String(d.srv.target.String()),
			AttrServer.String(d.srv.name),
			AttrReason.String(d.reason),
			m.system,
		}
		n := 3
		if m.hasSystem {
			n = 4
		}
		span.SetAttributes(kv[:n]...)
	}
	m.routes.Add(ctx, 1, m.routeOptions(d.srv, d.reason)...)
}

func (m *metrics) routeOptions(s *server, reason string) []metric.AddOption {
	if p := m.opts[s.idx].Load(); p != nil {
		if o, ok := (*p)[reason]; ok {
			return o
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	old := m.opts[s.idx].Load()
	next := make(map[string][]metric.AddOption, 8)
	if old != nil {
		if o, ok := (*old)[reason]; ok {
			return o
		}
		for k, v := range *old {
			next[k] = v
		}
	}
	attrs := []attribute.KeyValue{AttrTarget.String(s.target.String()), AttrServer.String(s.name), AttrReason.String(reason)}
	if m.hasSystem {
		attrs = append(attrs, m.system)
	}
	o := []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(attrs...))}
	next[reason] = o
	m.opts[s.idx].Store(&next)
	return o
}

func (m *metrics) failover(ctx context.Context, from, to *server, reason string) {
	m.failovers.Add(ctx, 1, metric.WithAttributes(AttrFrom.String(from.name), AttrServer.String(to.name), AttrReason.String(reason)))
	if span := trace.SpanFromContext(ctx); span.IsRecording() {
		span.SetAttributes(AttrFrom.String(from.name))
	}
}

func (m *metrics) replicaDown(ctx context.Context, s *server) {
	m.events.Add(ctx, 1, metric.WithAttributes(AttrServer.String(s.name), attribute.String("canary.db.event", "down")))
}

func (m *metrics) replicaUp(ctx context.Context, s *server) {
	m.events.Add(ctx, 1, metric.WithAttributes(AttrServer.String(s.name), attribute.String("canary.db.event", "up")))
}

func (m *metrics) tokenStoreError(ctx context.Context) { m.tokenErrors.Add(ctx, 1) }

// polled is called after each poll round (a hook for tests and gauges).
func (m *metrics) polled() {}
