package canary

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	otellog "go.opentelemetry.io/otel/log"
	logglobal "go.opentelemetry.io/otel/log/global"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"

	"github.com/reqcanary/canary/internal/guard"
	"github.com/reqcanary/canary/middleware"
	"github.com/reqcanary/canary/tenant"
)

// Metric and event names, and attribute keys, of the engine's telemetry. The
// feature_flag.* keys (OpenTelemetry's feature-flag semantic conventions) and
// canary.reason are the ones the middleware's span attributes use
// (middleware.AttrVariant…); the others are canary's own. See
// docs/operations.md.
const (
	MetricDecisions     = "canary.decisions"                 // counter: decisions by cohort and reason
	MetricOutcomes      = "canary.outcomes"                  // counter: outcomes by cohort, success, failure or client-cancelled (while a guard is configured)
	MetricGuardTrips    = "canary.guard.trips"               // counter: guard trips by rule
	MetricGuardState    = "canary.guard.state"               // gauge: 0 off, 1 armed, 2 tripped
	MetricKillSwitch    = "canary.kill_switch"               // gauge: 1 while the kill switch is on
	MetricWindowReqs    = "canary.guard.window.requests"     // gauge: requests in the window, by cohort
	MetricWindowFailure = "canary.guard.window.failure_rate" // gauge: failure rate in the window, by cohort
	MetricWindowP95     = "canary.guard.window.latency.p95"  // gauge: p95 latency in the window (s), by cohort
	EventGuardTrip      = "canary.guard.trip"                // event: the guard tripped, and why
	EventGuardRearm     = "canary.guard.rearm"               // event: the guard was re-armed

	attrOutcome = attribute.Key("canary.outcome")
	attrRule    = attribute.Key("canary.guard.rule")
	attrKillWhy = attribute.Key("canary.kill_switch.reason")
)

// cohortIdx indexes stable 0, canary 1.
func cohortIdx(c tenant.Cohort) int {
	if c == tenant.Canary {
		return 1
	}
	return 0
}

var cohorts = [2]tenant.Cohort{tenant.Stable, tenant.Canary}

// knownReasons are the reasons whose decisions are counted in fixed cells
// (decisionCounts); the index of a reason is its position here.
var knownReasons = [...]string{tenant.ReasonKillSwitch, tenant.ReasonGuard, tenant.ReasonOverride,
	tenant.ReasonTenantStable, tenant.ReasonTenantCanary, tenant.ReasonPercent, tenant.ReasonNoKey,
	tenant.ReasonUpstream, tenant.ReasonPlanError}

// reasonIdx returns the index of r in knownReasons, or -1.
func reasonIdx(r string) int {
	switch r {
	case tenant.ReasonPercent: // the common case first
		return 5
	case tenant.ReasonKillSwitch:
		return 0
	case tenant.ReasonGuard:
		return 1
	case tenant.ReasonOverride:
		return 2
	case tenant.ReasonTenantStable:
		return 3
	case tenant.ReasonTenantCanary:
		return 4
	case tenant.ReasonNoKey:
		return 6
	case tenant.ReasonUpstream:
		return 7
	case tenant.ReasonPlanError:
		return 8
	}
	return -1
}

// paddedCount is a counter alone on its cache line, so that requests
// counting different cells on different cores do not contend.
type paddedCount struct {
	n atomic.Int64
	_ [56]byte
}

// telemetry holds the engine's instruments, with their attribute sets built
// once so that counting allocates nothing.
//
// Decisions are counted in atomic cells by reason and cohort
// (decisionCounts) and exported by an observable counter's callback
// (canary.decisions, cumulative), instead of an Int64Counter.Add with an
// attribute set per request: a decision then costs one atomic add.
type telemetry struct {
	decisionCounts [len(knownReasons)][2]paddedCount
	otherMu        sync.Mutex
	otherCounts    map[string]*[2]int64 // decisions by a reason this version does not know: rare
	decReg         metric.Registration  // the decisions' callback; nil until register

	outcomeCounts [2][3]paddedCount // by cohort, then OutcomeKind; exported like decisions
	trips         metric.Int64Counter
	reg           metric.Registration // the guard gauges' callback; nil until register
	logger        otellog.Logger
	meter         metric.Meter
	warn          func(name string, err error)

	decOpts [len(knownReasons)][2]metric.ObserveOption // by reason index, then cohort
	outOpts [2][3]metric.ObserveOption                 // by cohort, then OutcomeKind
}

func newTelemetry(e *Engine, mp metric.MeterProvider, lp otellog.LoggerProvider) *telemetry {
	if lp == nil {
		lp = logglobal.GetLoggerProvider()
	}
	t := &telemetry{logger: lp.Logger(instrumentationName)}
	m := mp.Meter(instrumentationName)
	nm := noop.NewMeterProvider().Meter(instrumentationName)
	warn := func(name string, err error) {
		e.log.Warn("canary: cannot create the "+name+" instrument", "error", err)
	}
	var err error
	if t.trips, err = m.Int64Counter(MetricGuardTrips, metric.WithUnit("{trip}"),
		metric.WithDescription("Times the guard turned the kill switch on, by rule")); err != nil {
		warn(MetricGuardTrips, err)
		t.trips, _ = nm.Int64Counter(MetricGuardTrips)
	}
	for i, r := range knownReasons {
		t.decOpts[i] = decisionOpts(r)
	}
	for ci, c := range cohorts {
		for k := range t.outOpts[ci] {
			t.outOpts[ci][k] = metric.WithAttributeSet(attribute.NewSet(
				middleware.AttrVariant.String(string(c)), attrOutcome.String(OutcomeKind(k).String())))
		}
	}

	t.meter, t.warn = m, warn
	return t
}

// register reports the engine's guard gauges on the meter until close. The
// engine calls it when it starts, so that an engine that is never started
// leaves no callback behind on the meter provider.
func (t *telemetry) register(e *Engine) {
	if t.decReg == nil {
		t.registerDecisions()
	}
	if t.reg != nil {
		return
	}
	m, warn := t.meter, t.warn
	state, err1 := m.Int64ObservableGauge(MetricGuardState, metric.WithUnit("1"),
		metric.WithDescription("The guard: 0 off, 1 armed, 2 tripped (it holds the kill switch)"))
	kill, err2 := m.Int64ObservableGauge(MetricKillSwitch, metric.WithUnit("1"),
		metric.WithDescription("1 while the kill switch is on (every request stable), by reason"))
	reqs, err3 := m.Int64ObservableGauge(MetricWindowReqs, metric.WithUnit("{request}"),
		metric.WithDescription("Requests in the guard's sliding window, by cohort"))
	fr, err4 := m.Float64ObservableGauge(MetricWindowFailure, metric.WithUnit("1"),
		metric.WithDescription("Failure rate in the guard's sliding window, by cohort"))
	p95, err5 := m.Float64ObservableGauge(MetricWindowP95, metric.WithUnit("s"),
		metric.WithDescription("p95 latency in the guard's sliding window, by cohort"))
	for _, err := range []error{err1, err2, err3, err4, err5} {
		if err != nil {
			warn("guard gauge", err)
			return
		}
	}
	cohortSets := [2]metric.ObserveOption{
		metric.WithAttributeSet(attribute.NewSet(middleware.AttrVariant.String(string(tenant.Stable)))),
		metric.WithAttributeSet(attribute.NewSet(middleware.AttrVariant.String(string(tenant.Canary)))),
	}
	var err error
	t.reg, err = m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		s := e.Status()
		gs := int64(0)
		switch {
		case s.Guard.Tripped:
			gs = 2
		case s.Guard.Enabled:
			gs = 1
		}
		o.ObserveInt64(state, gs)
		on := int64(0)
		if s.KillSwitch.On {
			on = 1
		}
		o.ObserveInt64(kill, on, metric.WithAttributes(attrKillWhy.String(s.KillSwitch.Reason)))
		if s.Guard.Enabled {
			for i, f := range [2]CohortFigures{s.Guard.Stable, s.Guard.Canary} {
				o.ObserveInt64(reqs, int64(f.Requests), cohortSets[i])
				o.ObserveFloat64(fr, f.FailureRate, cohortSets[i])
				o.ObserveFloat64(p95, f.P95Millis/1000, cohortSets[i])
			}
		}
		return nil
	}, state, kill, reqs, fr, p95)
	if err != nil {
		warn("guard gauge callback", err)
	}
}

// registerDecisions reports the decision and outcome counts as the
// observable counters canary.decisions and canary.outcomes until close.
func (t *telemetry) registerDecisions() {
	dec, err := t.meter.Int64ObservableCounter(MetricDecisions, metric.WithUnit("{request}"),
		metric.WithDescription("Cohort decisions, by cohort and reason"))
	if err != nil {
		t.warn(MetricDecisions, err)
		return
	}
	out, err := t.meter.Int64ObservableCounter(MetricOutcomes, metric.WithUnit("{request}"),
		metric.WithDescription("Request outcomes seen by the guard, by cohort and outcome"))
	if err != nil {
		t.warn(MetricOutcomes, err)
		return
	}
	t.decReg, err = t.meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		for ci := range t.outcomeCounts {
			for k := range t.outcomeCounts[ci] {
				if n := t.outcomeCounts[ci][k].n.Load(); n > 0 {
					o.ObserveInt64(out, n, t.outOpts[ci][k])
				}
			}
		}
		for i := range t.decisionCounts {
			for ci := range t.decisionCounts[i] {
				if n := t.decisionCounts[i][ci].n.Load(); n > 0 {
					o.ObserveInt64(dec, n, t.decOpts[i][ci])
				}
			}
		}
		t.otherMu.Lock()
		defer t.otherMu.Unlock()
		for r, c := range t.otherCounts {
			opts := decisionOpts(r)
			for ci, n := range c {
				if n > 0 {
					o.ObserveInt64(dec, n, opts[ci])
				}
			}
		}
		return nil
	}, dec, out)
	if err != nil {
		t.warn(MetricDecisions+" callback", err)
	}
}

func decisionOpts(r string) [2]metric.ObserveOption {
	var o [2]metric.ObserveOption
	for ci, c := range cohorts {
		o[ci] = metric.WithAttributeSet(attribute.NewSet(
			middleware.AttrFlagKey.String(middleware.DefaultFlagKey), middleware.AttrVariant.String(string(c)),
			middleware.AttrReason.String(tenant.FlagReason(r)), middleware.AttrCanaryReason.String(r)))
	}
	return o
}

// decided counts one decision: one atomic add for a known reason.
func (t *telemetry) decided(_ context.Context, l tenant.Labels) {
	ci := cohortIdx(l.Cohort)
	if i := reasonIdx(l.Reason); i >= 0 {
		t.decisionCounts[i][ci].n.Add(1)
		return
	}
	t.otherMu.Lock()
	defer t.otherMu.Unlock()
	if t.otherCounts == nil {
		t.otherCounts = map[string]*[2]int64{}
	}
	c := t.otherCounts[l.Reason]
	if c == nil {
		c = new([2]int64)
		t.otherCounts[l.Reason] = c
	}
	c[ci]++
}

// outcome counts one outcome.
func (t *telemetry) outcome(_ context.Context, c tenant.Cohort, k OutcomeKind) {
	if int(k) >= len(t.outOpts[0]) {
		k = OutcomeFailure
	}
	t.outcomeCounts[cohortIdx(c)][k].n.Add(1)
}

// tripped counts a trip and emits the trip event.
func (t *telemetry) tripped(tr guard.Trip) {
	ctx := context.Background()
	t.trips.Add(ctx, 1, metric.WithAttributes(attrRule.String(string(tr.Rule))))
	var r otellog.Record
	r.SetEventName(EventGuardTrip)
	r.SetTimestamp(time.Now())
	r.SetSeverity(otellog.SeverityWarn)
	r.SetSeverityText("WARN")
	r.SetBody(attribute.StringValue("guard tripped: " + tr.String()))
	r.AddAttributes(
		attribute.String(string(attrRule), string(tr.Rule)),
		attribute.Float64("canary.guard.window", tr.Window.Seconds()),
		attribute.Int64("canary.guard.canary.requests", int64(tr.Canary.Samples)),
		attribute.Int64("canary.guard.canary.failures", int64(tr.Canary.Failures)),
		attribute.Float64("canary.guard.canary.failure_rate", tr.Canary.FailureRate),
		attribute.Float64("canary.guard.canary.latency.p95", tr.Canary.P95.Seconds()),
		attribute.Int64("canary.guard.stable.requests", int64(tr.Stable.Samples)),
		attribute.Int64("canary.guard.stable.failures", int64(tr.Stable.Failures)),
		attribute.Float64("canary.guard.stable.failure_rate", tr.Stable.FailureRate),
		attribute.Float64("canary.guard.stable.latency.p95", tr.Stable.P95.Seconds()),
		attribute.Float64("canary.guard.z", tr.Z),
		attribute.Float64("canary.guard.p_value", tr.PValue),
	)
	if tr.Rule == guard.RuleFailureRate {
		r.AddAttributes(
			attribute.Float64("canary.guard.span", tr.At.Sub(tr.Since).Seconds()),
			attribute.Int64("canary.guard.span.canary.requests", int64(tr.SpanCanary.Samples)),
			attribute.Int64("canary.guard.span.canary.failures", int64(tr.SpanCanary.Failures)),
			attribute.Int64("canary.guard.span.stable.requests", int64(tr.SpanStable.Samples)),
			attribute.Int64("canary.guard.span.stable.failures", int64(tr.SpanStable.Failures)),
			attribute.Float64("canary.guard.evidence", tr.Evidence),
			attribute.Float64("canary.guard.threshold", tr.Threshold),
		)
	}
	t.logger.Emit(ctx, r)
}

// rearmed emits the re-arm event.
func (t *telemetry) rearmed(by string) {
	var r otellog.Record
	r.SetEventName(EventGuardRearm)
	r.SetTimestamp(time.Now())
	r.SetSeverity(otellog.SeverityInfo)
	r.SetSeverityText("INFO")
	r.SetBody(attribute.StringValue("guard re-armed by " + by))
	r.AddAttributes(attribute.String("canary.guard.rearmed_by", by))
	t.logger.Emit(context.Background(), r)
}

// close unregisters the decisions' and the guard gauges' callbacks.
func (t *telemetry) close() {
	if t.decReg != nil {
		_ = t.decReg.Unregister()
		t.decReg = nil
	}
	if t.reg != nil {
		_ = t.reg.Unregister()
		t.reg = nil
	}
}
