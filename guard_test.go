package canary

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	otellog "go.opentelemetry.io/otel/log"
	"go.opentelemetry.io/otel/log/embedded"
	"go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/reqcanary/canary/internal/guard"
	"github.com/reqcanary/canary/tenant"
)

// guardPlan sends every user of tenant "shop" through the percentage:
// half canary.
const guardPlan = "version: 3\ncanary_percent: 50\n"

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// newGuardEngine is an engine on guardPlan whose guard reads a manual clock
// and is evaluated only when the test says so.
func newGuardEngine(t *testing.T, opts ...Option) (*Engine, *guard.ManualClock) {
	t.Helper()
	clk := guard.NewManualClock(t0)
	e := newTestEngine(t, guardPlan, append([]Option{withGuardClock(clk)}, opts...)...)
	return e, clk
}

// decideUser decides for user u of tenant shop.
func decideUser(t *testing.T, e *Engine, u string) tenant.Labels {
	t.Helper()
	l, err := e.Decide(context.Background(), tenant.Request{Source: headers("X-Tenant-ID", "shop", "X-User-ID", u), Wire: tenant.HTTP})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// canaryUser returns a user the plan puts in canary.
func canaryUser(t *testing.T, e *Engine) string {
	t.Helper()
	for i := range 100 {
		u := "user-" + itoa(i)
		if decideUser(t, e, u).Cohort == tenant.Canary {
			return u
		}
	}
	t.Fatal("no canary user among 100")
	return ""
}

// badCanary feeds seconds of traffic: stable 200 req/s failing 1 %, canary
// 20 req/s failing 20 %, advancing the clock, and evaluates the guard after
// each second. It returns the second at which the guard tripped, or -1.
func badCanary(t *testing.T, e *Engine, clk *guard.ManualClock, seconds int) int {
	t.Helper()
	ctx := context.Background()
	for s := range seconds {
		for i := range 200 {
			e.RecordOutcome(ctx, tenant.Stable, i%100 == 0, 20*time.Millisecond)
		}
		for i := range 20 {
			e.RecordOutcome(ctx, tenant.Canary, i%5 == 0, 20*time.Millisecond)
		}
		clk.Advance(time.Second)
		e.evaluateGuard()
		if e.Status().Guard.Tripped {
			return s + 1
		}
	}
	return -1
}

func TestGuardTripsAndRearms(t *testing.T) {
	var logs syncBuffer
	e, clk := newGuardEngine(t, WithGuard(GuardConfig{Enabled: true}),
		WithLogger(slog.New(slog.NewJSONHandler(&logs, nil))))
	u := canaryUser(t, e)

	if s := e.Status(); !s.Guard.Enabled || s.Guard.Source != "option" || s.Guard.Window != "10s" || s.KillSwitch.On {
		t.Fatalf("before traffic: %+v", s)
	}
	sec := badCanary(t, e, clk, 10)
	if sec < 0 || sec > 5 {
		t.Fatalf("a canary failing 20 %% vs stable 1 %% tripped at second %d, want within 5", sec)
	}
	l := decideUser(t, e, u)
	if l.Cohort != tenant.Stable || l.Reason != tenant.ReasonGuard {
		t.Fatalf("after the trip the canary user is %s/%s, want stable/guard", l.Cohort, l.Reason)
	}
	s := e.Status()
	if !e.KillSwitch() || !s.KillSwitch.On || s.KillSwitch.Reason != tenant.ReasonGuard ||
		strings.Join(s.KillSwitch.Sources, ",") != KillSourceGuard {
		t.Fatalf("kill switch after the trip: %+v", s.KillSwitch)
	}
	if s.Guard.Trip == nil || s.Guard.Trip.Rule != "failure-rate" || s.Guard.Trip.Canary.FailureRate < 0.15 ||
		s.Guard.Trip.Stable.FailureRate > 0.02 || s.Guard.Trip.Canary.Requests == 0 {
		t.Fatalf("trip: %+v", s.Guard.Trip)
	}
	// The sequential test's figures: the span it decided on and its evidence.
	if tr := s.Guard.Trip; tr.Evidence < tr.Threshold || tr.Threshold < 9 || tr.PValue > 1e-4 || tr.Since.IsZero() ||
		tr.Span == "" || tr.SpanCanary == nil || tr.SpanCanary.Failures == 0 || tr.SpanStable == nil || tr.SpanStable.Requests == 0 {
		t.Fatalf("trip's sequential figures: %+v", tr)
	}
	// The log record says why: both rates, samples and the window.
	var rec struct {
		Msg  string `json:"msg"`
		Trip struct {
			Rule   string  `json:"rule"`
			Window float64 `json:"window"`
			Canary struct {
				Samples     int     `json:"samples"`
				FailureRate float64 `json:"failure_rate"`
			} `json:"canary"`
			Stable struct {
				Samples     int     `json:"samples"`
				FailureRate float64 `json:"failure_rate"`
			} `json:"stable"`
		} `json:"trip"`
	}
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, "guard tripped") {
			if err := json.Unmarshal([]byte(line), &rec); err != nil {
				t.Fatal(err)
			}
		}
	}
	if rec.Trip.Rule != "failure-rate" || rec.Trip.Canary.Samples == 0 || rec.Trip.Stable.Samples == 0 ||
		rec.Trip.Canary.FailureRate < 0.15 || rec.Trip.Window != float64(10*time.Second) {
		t.Fatalf("trip log record %+v in\n%s", rec, logs.String())
	}

	// It stays tripped, whatever the traffic, until re-armed.
	clk.Advance(time.Hour)
	e.evaluateGuard()
	if !e.Status().Guard.Tripped {
		t.Fatal("the guard re-armed itself without a cooldown")
	}
	if err := e.RearmGuard(context.Background()); err != nil {
		t.Fatal(err)
	}
	if l := decideUser(t, e, u); l.Cohort != tenant.Canary || l.Reason != tenant.ReasonPercent {
		t.Fatalf("after re-arming the canary user is %s/%s", l.Cohort, l.Reason)
	}
	if s := e.Status(); s.KillSwitch.On || s.Guard.Tripped || s.Guard.Trip != nil || s.Guard.Canary.Requests != 0 {
		t.Fatalf("after re-arming: %+v", s)
	}
}

func TestGuardOperatorReasonWins(t *testing.T) {
	e, clk := newGuardEngine(t, WithGuard(GuardConfig{Enabled: true}))
	u := canaryUser(t, e)
	if badCanary(t, e, clk, 10) < 0 {
		t.Fatal("no trip")
	}
	e.SetKillSwitch(true)
	if l := decideUser(t, e, u); l.Reason != tenant.ReasonKillSwitch {
		t.Fatalf("operator and guard both on: reason %s, want kill-switch", l.Reason)
	}
	if got := strings.Join(e.Status().KillSwitch.Sources, ","); got != "operator,guard" {
		t.Fatalf("sources %q", got)
	}
	// Turning the operator's switch off re-arms the guard too.
	if err := e.TurnKillSwitch(context.Background(), false, "incident over"); err != nil {
		t.Fatal(err)
	}
	if l := decideUser(t, e, u); l.Cohort != tenant.Canary {
		t.Fatalf("after TurnKillSwitch(false): %s/%s", l.Cohort, l.Reason)
	}
	if err := e.TurnKillSwitch(context.Background(), true, ""); err != nil {
		t.Fatal(err)
	}
	if l := decideUser(t, e, u); l.Reason != tenant.ReasonKillSwitch {
		t.Fatalf("after TurnKillSwitch(true): %s", l.Reason)
	}
}

func TestGuardCooldown(t *testing.T) {
	e, clk := newGuardEngine(t, WithGuard(GuardConfig{Enabled: true, Cooldown: time.Minute}))
	if badCanary(t, e, clk, 10) < 0 {
		t.Fatal("no trip")
	}
	clk.Advance(59 * time.Second)
	e.evaluateGuard()
	if !e.KillSwitch() {
		t.Fatal("re-armed before the cooldown")
	}
	clk.Advance(2 * time.Second)
	e.evaluateGuard()
	if e.KillSwitch() {
		t.Fatal("not re-armed after the cooldown")
	}
}

func TestGuardEqualRatesNeverTrip(t *testing.T) {
	e, clk := newGuardEngine(t, WithGuard(GuardConfig{Enabled: true}))
	ctx := context.Background()
	for range 600 { // ten simulated minutes at 2 % on both sides
		for i := range 100 {
			e.RecordOutcome(ctx, tenant.Stable, i%50 == 0, 10*time.Millisecond)
		}
		for i := range 50 {
			e.RecordOutcome(ctx, tenant.Canary, i%50 == 0, 10*time.Millisecond)
		}
		clk.Advance(time.Second)
		e.evaluateGuard()
	}
	if e.KillSwitch() {
		t.Fatalf("equal failure rates tripped: %+v", e.Status().Guard.Trip)
	}
}

func TestGuardOffByDefault(t *testing.T) {
	e, clk := newGuardEngine(t)
	if badCanary(t, e, clk, 10) >= 0 || e.Status().Guard.Enabled {
		t.Fatal("the guard ran without configuration")
	}
}

func TestWithGuardErrorsNameTheField(t *testing.T) {
	_, err := New(WithGuard(GuardConfig{Enabled: true, FailureRatio: 0.5, Cooldown: -time.Second}))
	if !errors.Is(err, ErrInvalidOption) || !strings.Contains(err.Error(), "WithGuard: failure_ratio") ||
		!strings.Contains(err.Error(), "WithGuard: cooldown") {
		t.Fatalf("err = %v", err)
	}
	// A disabled config is not checked: it is the guard off.
	e, err := New(WithGuard(GuardConfig{FailureRatio: 0.5}))
	if err != nil {
		t.Fatal(err)
	}
	e.Close()
}

func TestPlanGuardSection(t *testing.T) {
	p, err := ParsePlan([]byte("guard:\n  enabled: true\n  bucket_width: 500ms\n  buckets: 20\n  failure_ratio: 3\n  failure_evidence: 5e4\n  cooldown: 2m\n  disable_latency_rule: true\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := GuardConfig{Enabled: true, BucketWidth: 500 * time.Millisecond, Buckets: 20, FailureRatio: 3,
		FailureEvidence: 5e4, Cooldown: 2 * time.Minute, DisableLatencyRule: true}
	if p.Guard == nil || *p.Guard != want {
		t.Fatalf("guard %+v, want %+v", p.Guard, want)
	}
	if p, err := ParsePlan([]byte("version: 1\nguard:\n")); err != nil || p.Guard != nil {
		t.Fatalf("an empty guard section: %+v, %v", p.Guard, err)
	}
	for _, tc := range []struct{ yaml, key, line, reason string }{
		{"guard:\n  enabled: true\n  window: 10s\n", "guard.window", "line 3", "unknown key"},
		{"guard:\n  enabled: true\n  bucket_width: 10\n", "guard.bucket_width", "line 3", "a duration"},
		{"guard:\n  enabled: yes please\n", "guard.enabled", "line 2", "true or false"},
		{"guard:\n  buckets: 5\n", "guard.enabled", "line 2", "required"},
		{"guard:\n  enabled: true\n  failure_ratio: 0.5\n", "guard.failure_ratio", "line 3", "at least 1"},
		{"guard:\n  enabled: true\n\n  cooldown: -1s\n", "guard.cooldown", "line 4", "negative"},
		{"guard:\n  enabled: true\n  confidence: 1\n", "guard.confidence", "line 3", "[0.5, 1)"},
		{"guard:\n  enabled: true\n  failure_evidence: 0.5\n", "guard.failure_evidence", "line 3", "at least 1"},
		{"guard:\n  enabled: true\n  failure_evidence: lots\n", "guard.failure_evidence", "line 3", "number"},
		{"guard: on\n", "guard", "line 1", "mapping"},
	} {
		_, err := ParsePlan([]byte(tc.yaml))
		var pe *PlanError
		if !errors.As(err, &pe) || !errors.Is(err, ErrInvalidPlan) || pe.Key != tc.key ||
			!strings.Contains(err.Error(), tc.line+":") || !strings.Contains(err.Error(), tc.reason) {
			t.Errorf("%q: error %v, want key %s at %s saying %q", tc.yaml, err, tc.key, tc.line, tc.reason)
		}
	}
	// A Plan built in Go is checked too.
	if _, err := New(WithPlan(Plan{Guard: &GuardConfig{Enabled: true, Buckets: 1000}})); !errors.Is(err, ErrInvalidPlan) ||
		!strings.Contains(err.Error(), "guard.buckets") {
		t.Fatalf("WithPlan with a bad guard: %v", err)
	}
}

// The plan's guard section replaces WithGuard; a plan without one leaves it.
// A reload applies the new settings; a trip survives the reload.
func TestGuardPrecedenceAndReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "plan.yaml")
	writeFile(t, path, guardPlan)
	clk := guard.NewManualClock(t0)
	e, err := New(WithPlanFile(path), WithPlanPollInterval(10*time.Millisecond), WithUserHashKey(testHashKey),
		WithGuard(GuardConfig{Enabled: true, FailureRatio: 4}), withGuardClock(clk))
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if g := e.Status().Guard; g.Source != "option" || g.Config.FailureRatio != 4 {
		t.Fatalf("without a guard section: %+v", g)
	}
	writeFile(t, path, guardPlan+"guard:\n  enabled: true\n  failure_ratio: 3\n")
	eventually(t, 2*time.Second, "the plan's guard section in force", func() bool {
		g := e.Status().Guard
		return g.Source == "plan" && g.Config.FailureRatio == 3
	})
	if badCanary(t, e, clk, 10) < 0 {
		t.Fatal("no trip under the plan's guard")
	}
	writeFile(t, path, guardPlan+"guard:\n  enabled: false\n")
	eventually(t, 2*time.Second, "the plan turns the guard off", func() bool { return !e.Status().Guard.Enabled })
	if !e.KillSwitch() || e.Status().KillSwitch.Reason != tenant.ReasonGuard {
		t.Fatal("turning the guard off re-armed it")
	}
	if err := e.RearmGuard(context.Background()); err != nil || e.KillSwitch() {
		t.Fatalf("RearmGuard: %v, kill switch %v", err, e.KillSwitch())
	}
	writeFile(t, path, guardPlan+"# no guard section\n")
	eventually(t, 2*time.Second, "back to WithGuard", func() bool { return e.Status().Guard.Source == "option" })
}

// recordingLogs is an OpenTelemetry LoggerProvider that keeps the records.
type recordingLogs struct {
	embedded.LoggerProvider
	mu   sync.Mutex
	recs []otellog.Record
}

func (p *recordingLogs) Logger(string, ...otellog.LoggerOption) otellog.Logger {
	return &recordingLogger{p: p}
}

func (p *recordingLogs) records() []otellog.Record {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]otellog.Record(nil), p.recs...)
}

type recordingLogger struct {
	embedded.Logger
	p *recordingLogs
}

func (l *recordingLogger) Emit(_ context.Context, r otellog.Record) {
	l.p.mu.Lock()
	l.p.recs = append(l.p.recs, r.Clone())
	l.p.mu.Unlock()
}

func (l *recordingLogger) Enabled(context.Context, otellog.EnabledParameters) bool { return true }

func TestGuardTelemetry(t *testing.T) {
	reader := metric.NewManualReader()
	mp := metric.NewMeterProvider(metric.WithReader(reader))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	logs := &recordingLogs{}
	e, clk := newGuardEngine(t, WithGuard(GuardConfig{Enabled: true}), WithMeterProvider(mp), WithLoggerProvider(logs))
	u := canaryUser(t, e)

	collect := func() map[string]metricdata.Aggregation {
		var rm metricdata.ResourceMetrics
		if err := reader.Collect(context.Background(), &rm); err != nil {
			t.Fatal(err)
		}
		out := map[string]metricdata.Aggregation{}
		for _, sm := range rm.ScopeMetrics {
			for _, m := range sm.Metrics {
				out[m.Name] = m.Data
			}
		}
		return out
	}
	gauge := func(m map[string]metricdata.Aggregation, name string) int64 {
		g, ok := m[name].(metricdata.Gauge[int64])
		if !ok || len(g.DataPoints) != 1 {
			t.Fatalf("%s: %#v", name, m[name])
		}
		return g.DataPoints[0].Value
	}
	if got := gauge(collect(), MetricGuardState); got != 1 {
		t.Fatalf("%s = %d before a trip, want 1 (armed)", MetricGuardState, got)
	}
	if badCanary(t, e, clk, 10) < 0 {
		t.Fatal("no trip")
	}
	decideUser(t, e, u)
	m := collect()
	if got := gauge(m, MetricGuardState); got != 2 {
		t.Fatalf("%s = %d after a trip, want 2", MetricGuardState, got)
	}
	if got := gauge(m, MetricKillSwitch); got != 1 {
		t.Fatalf("%s = %d after a trip", MetricKillSwitch, got)
	}
	sumBy := func(name string, attrs ...string) int64 {
		s, ok := m[name].(metricdata.Sum[int64])
		if !ok {
			t.Fatalf("%s: %#v", name, m[name])
		}
		var n int64
	points:
		for _, dp := range s.DataPoints {
			for i := 0; i+1 < len(attrs); i += 2 {
				if v, _ := dp.Attributes.Value(attributeKey(attrs[i])); v.AsString() != attrs[i+1] {
					continue points
				}
			}
			n += dp.Value
		}
		return n
	}
	if n := sumBy(MetricDecisions, "feature_flag.result.variant", "stable", "canary.reason", "guard",
		"feature_flag.result.reason", "disabled"); n != 1 {
		t.Errorf("decisions stable/guard = %d, want 1", n)
	}
	if n := sumBy(MetricDecisions, "feature_flag.result.variant", "canary", "canary.reason", "percent"); n < 1 {
		t.Errorf("decisions canary/percent = %d", n)
	}
	if n := sumBy(MetricOutcomes, "feature_flag.result.variant", "canary", "canary.outcome", "failure"); n == 0 {
		t.Error("no canary failures counted")
	}
	if n := sumBy(MetricGuardTrips, "canary.guard.rule", "failure-rate"); n != 1 {
		t.Errorf("trips = %d", n)
	}
	fr, ok := m[MetricWindowFailure].(metricdata.Gauge[float64])
	if !ok || len(fr.DataPoints) != 2 {
		t.Fatalf("%s: %#v", MetricWindowFailure, m[MetricWindowFailure])
	}

	var trip *otellog.Record
	for _, r := range logs.records() {
		if r.EventName() == EventGuardTrip {
			trip = &r
		}
	}
	if trip == nil {
		t.Fatal("no canary.guard.trip event")
	}
	attrs := map[string]float64{}
	trip.WalkAttributes(func(kv attributeKV) bool {
		switch kv.Value.Type() {
		case attribute.FLOAT64:
			attrs[string(kv.Key)] = kv.Value.AsFloat64()
		case attribute.INT64:
			attrs[string(kv.Key)] = float64(kv.Value.AsInt64())
		}
		return true
	})
	if attrs["canary.guard.canary.failure_rate"] < 0.15 || attrs["canary.guard.stable.requests"] == 0 ||
		attrs["canary.guard.window"] != 10 {
		t.Fatalf("trip event attributes %v", attrs)
	}
	if !bytes.Contains([]byte(trip.Body().AsString()), []byte("failure-rate")) {
		t.Fatalf("trip event body %q", trip.Body().AsString())
	}
}

type attributeKV = attribute.KeyValue

func attributeKey(k string) attribute.Key { return attribute.Key(k) }
