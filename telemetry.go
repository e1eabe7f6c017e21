package canary

import (
	"context"
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

// telemetry holds the engine's instruments, with their attribute sets built
// once so that counting allocates nothing.
type telemetry struct {
	decisions metric.Int64Counter
	outcomes  metric.Int64Counter
	trips     metric.Int64Counter
	reg       metric.Registration // the guard gauges' callback; nil until register
	logger    otellog.Logger
	meter     metric.Meter
	warn      func(name string, err error)

	decOpts map[string]*[2][]metric.AddOption // by reason, then cohort
	outOpts [2][3][]metric.AddOption          // by cohort, then OutcomeKind
}

func newTelemetry(e *Engine, mp metric.MeterProvider, lp otellog.LoggerProvider) *telemetry {
	if lp == nil {
		lp = logglobal.GetLoggerProvider()
	}
	t := &telemetry{logger: lp.Logger(instrumentationName), decOpts: map[string]*[2][]metric.AddOption{}}
	m := mp.Meter(instrumentationName)
	nm := noop.NewMeterProvider().Meter(instrumentationName)
	warn := func(name string, err error) {
		e.log.Warn("canary: cannot create the "+name+" instrument", "error", err)
	}
	var err error
	if t.decisions, err = m.Int64Counter(MetricDecisions, metric.WithUnit("{request}"),
		metric.WithDescription("Cohort decisions, by cohort and reason")); err != nil {
		warn(MetricDecisions, err)
		t.decisions, _ = nm.Int64Counter(MetricDecisions)
	}
	if t.outcomes, err = m.Int64Counter(MetricOutcomes, metric.WithUnit("{request}"),
		metric.WithDescription("Request outcomes seen by the guard, by cohort and outcome")); err != nil {
		warn(MetricOutcomes, err)
		t.outcomes, _ = nm.Int64Counter(MetricOutcomes)
	}
	if t.trips, err = m.Int64Counter(MetricGuardTrips, metric.WithUnit("{trip}"),
		metric.WithDescription("Times the guard turned the kill switch on, by rule")); err != nil {
		warn(MetricGuardTrips, err)
		t.trips, _ = nm.Int64Counter(MetricGuardTrips)
	}
	for _, r := range []string{tenant.ReasonKillSwitch, tenant.ReasonGuard, tenant.ReasonOverride,
		tenant.ReasonTenantStable, tenant.ReasonTenantCanary, tenant.ReasonPercent, tenant.ReasonNoKey,
		tenant.ReasonUpstream} {
		t.decOpts[r] = decisionOpts(r)
	}
	for ci, c := range cohorts {
		for k := range t.outOpts[ci] {
			t.outOpts[ci][k] = []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(
				middleware.AttrVariant.String(string(c)), attrOutcome.String(OutcomeKind(k).String())))}
		}
	}

	t.meter, t.warn = m, warn
	return t
}

// register reports the engine's guard gauges on the meter until close. The
// engine calls it when it starts, so that an engine that is never started
// leaves no callback behind on the meter provider.
func (t *telemetry) register(e *Engine) {
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

func decisionOpts(r string) *[2][]metric.AddOption {
	var o [2][]metric.AddOption
	for ci, c := range cohorts {
		o[ci] = []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(
			middleware.AttrFlagKey.String(middleware.DefaultFlagKey), middleware.AttrVariant.String(string(c)),
			middleware.AttrReason.String(tenant.FlagReason(r)), middleware.AttrCanaryReason.String(r)))}
	}
	return &o
}

// decided counts one decision.
func (t *telemetry) decided(ctx context.Context, l tenant.Labels) {
	o, ok := t.decOpts[l.Reason]
	if !ok {
		o = decisionOpts(l.Reason) // a reason this version does not know: rare
	}
	t.decisions.Add(ctx, 1, o[cohortIdx(l.Cohort)]...)
}

// outcome counts one outcome.
func (t *telemetry) outcome(ctx context.Context, c tenant.Cohort, k OutcomeKind) {
	if int(k) >= len(t.outOpts[0]) {
		k = OutcomeFailure
	}
	t.outcomes.Add(ctx, 1, t.outOpts[cohortIdx(c)][k]...)
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

// close unregisters the guard gauges' callback.
func (t *telemetry) close() {
	if t.reg != nil {
		_ = t.reg.Unregister()
		t.reg = nil
	}
}
