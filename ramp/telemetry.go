package ramp

import (
	"context"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	otellog "go.opentelemetry.io/otel/log"
	"go.opentelemetry.io/otel/log/global"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"

	"github.com/reqcanary/canary/planstore"
)

// Names of the controller's metrics and events.
const (
	// MetricStep is a gauge: the current step (1-based; 0 when no ramp
	// runs), reported by the leader, with attribute phase.
	MetricStep = "canary.ramp.step"
	// MetricPercent is a gauge: the canary percentage of the current step.
	MetricPercent = "canary.ramp.percent"
	// MetricLeader is a gauge: 1 on the controller that leads, else 0.
	MetricLeader = "canary.ramp.leader"
	// MetricGateChecks counts gate checks, by gate and verdict.
	MetricGateChecks = "canary.ramp.gate.checks"
	// MetricFailures counts failed gates, by gate and action (rollback or
	// pause): the ramp's rollbacks and automatic pauses.
	MetricFailures = "canary.ramp.failures"
	// EventStep is the log event of each step the leader writes to the
	// plan: step, steps, percent, plan version, note.
	EventStep = "canary.ramp.step"
	// EventFailure is the log event of a failed gate: gate, action,
	// reason (the figures).
	EventFailure = "canary.ramp.failure"
)

const scope = "github.com/reqcanary/canary/ramp"

type telemetry struct {
	checks, failures metric.Int64Counter
	logger           otellog.Logger
	reg              metric.Registration

	mu       sync.Mutex
	last     State
	isLeader bool
}

func newTelemetry(c *Controller, mp metric.MeterProvider, lp otellog.LoggerProvider) *telemetry {
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	if lp == nil {
		lp = global.GetLoggerProvider()
	}
	m := mp.Meter(scope)
	t := &telemetry{logger: lp.Logger(scope)}
	var err error
	if t.checks, err = m.Int64Counter(MetricGateChecks, metric.WithUnit("{check}"),
		metric.WithDescription("Ramp gate checks, by gate and verdict")); err != nil {
		t.checks, _ = noop.Meter{}.Int64Counter(MetricGateChecks)
	}
	if t.failures, err = m.Int64Counter(MetricFailures, metric.WithUnit("{failure}"),
		metric.WithDescription("Ramp gates that failed, by gate and action (rollback, pause)")); err != nil {
		t.failures, _ = noop.Meter{}.Int64Counter(MetricFailures)
	}
	step, err1 := m.Int64ObservableGauge(MetricStep, metric.WithUnit("{step}"),
		metric.WithDescription("Current ramp step (1-based, 0 when no ramp runs), reported by the leader"))
	pct, err2 := m.Float64ObservableGauge(MetricPercent, metric.WithUnit("%"),
		metric.WithDescription("Canary percentage of the ramp's current step, reported by the leader"))
	lead, err3 := m.Int64ObservableGauge(MetricLeader, metric.WithUnit("1"),
		metric.WithDescription("1 on the ramp controller that leads"))
	if err1 == nil && err2 == nil && err3 == nil {
		t.reg, _ = m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
			t.mu.Lock()
			st, leader := t.last, t.isLeader
			t.mu.Unlock()
			l := int64(0)
			if leader {
				l = 1
			}
			o.ObserveInt64(lead, l)
			if leader {
				n := int64(0)
				if st.Phase == PhaseRunning || st.Phase == PhasePaused {
					n = int64(st.Step + 1)
				}
				o.ObserveInt64(step, n, metric.WithAttributes(attribute.String("phase", st.Phase)))
				o.ObserveFloat64(pct, st.Percent)
			}
			return nil
		}, step, pct, lead)
	}
	return t
}

func (t *telemetry) close() {
	if t.reg != nil {
		_ = t.reg.Unregister()
	}
}

func (t *telemetry) leader(on bool) {
	t.mu.Lock()
	t.isLeader = on
	t.mu.Unlock()
}

func (t *telemetry) observe(st State) {
	t.mu.Lock()
	t.last = st
	t.mu.Unlock()
}

// gateKind keeps the metric attribute bounded: "fleet" or "prometheus:<name>".
func (t *telemetry) checked(gate, verdict string) {
	t.checks.Add(context.Background(), 1, metric.WithAttributes(attribute.String("gate", gate),
		attribute.String("verdict", verdict)))
}

func (t *telemetry) failed(st State, g *GateState, action string) {
	ctx := context.Background()
	t.failures.Add(ctx, 1, metric.WithAttributes(attribute.String("gate", g.Gate), attribute.String("action", action)))
	var r otellog.Record
	r.SetEventName(EventFailure)
	r.SetTimestamp(time.Now())
	r.SetSeverity(otellog.SeverityWarn)
	r.SetSeverityText("WARN")
	r.SetBody(attribute.StringValue("ramp gate " + g.Gate + " failed: " + action))
	r.AddAttributes(attribute.String("gate", g.Gate), attribute.String("action", action),
		attribute.String("reason", g.Summary), attribute.Int("step", st.Step+1), attribute.Int("steps", st.Steps),
		attribute.Float64("percent", st.Percent))
	t.logger.Emit(ctx, r)
}

func (t *telemetry) stepChanged(st State, p planstore.Plan) {
	var r otellog.Record
	r.SetEventName(EventStep)
	r.SetTimestamp(time.Now())
	r.SetSeverity(otellog.SeverityInfo)
	r.SetSeverityText("INFO")
	r.SetBody(attribute.StringValue(strings.TrimSpace(p.Note)))
	r.AddAttributes(attribute.Int("step", st.Step+1), attribute.Int("steps", st.Steps),
		attribute.Float64("percent", st.Percent), attribute.Int64("plan_version", p.Version),
		attribute.String("author", p.Author), attribute.Int("run", st.Run))
	t.logger.Emit(context.Background(), r)
}
