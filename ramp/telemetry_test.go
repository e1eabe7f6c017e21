package ramp_test

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	otellog "go.opentelemetry.io/otel/log"
	"go.opentelemetry.io/otel/log/embedded"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/reqcanary/canary"
	"github.com/reqcanary/canary/ramp"
)

type recordingLogs struct {
	embedded.LoggerProvider
	mu   sync.Mutex
	recs []otellog.Record
}

func (p *recordingLogs) Logger(string, ...otellog.LoggerOption) otellog.Logger {
	return &recordingLogger{p: p}
}

func (p *recordingLogs) events(name string) []otellog.Record {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []otellog.Record
	for _, r := range p.recs {
		if r.EventName() == name {
			out = append(out, r)
		}
	}
	return out
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

func attr(r otellog.Record, key string) string {
	var v string
	r.WalkAttributes(func(kv attribute.KeyValue) bool {
		if string(kv.Key) == key {
			v = kv.Value.Emit()
			return false
		}
		return true
	})
	return v
}

// A Prometheus gate without a Prometheus configured fails (never passes):
// the ramp rolls back, and the metrics and events say so.
func TestTelemetryStepsAndRollback(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	logs := &recordingLogs{}

	prefix := testPrefix(t)
	const plan = `salt: s
canary_percent: 0
ramp:
  steps:
    - 10% 100ms
    - percent: 20
      hold: 1h
      gates:
        prometheus:
          - {name: errors, query: up, max: 1, tries: 2}
  check_interval: 50ms
`
	f := newFleet(t, prefix, 1, plan)
	c, _ := startController(t, prefix, "ctl", etcdClient(t), func(cfg *ramp.Config) {
		cfg.MeterProvider, cfg.LoggerProvider = mp, logs
	})
	if _, err := c.Start(ctxT(t, 5*time.Second), alice); err != nil {
		t.Fatal(err)
	}
	st := waitPhase(t, c, 10*time.Second, ramp.PhaseRolledBack, ramp.PhaseDone)
	if st.Phase != ramp.PhaseRolledBack || !strings.Contains(st.Reason, "no Prometheus configured") {
		t.Fatalf("%s: %s", st.Phase, st.Reason)
	}
	waitAll(t, f.engines, time.Second, func(e *canary.Engine) bool { return e.Plan().KillSwitch })

	steps := logs.events(ramp.EventStep)
	var got []string
	for _, r := range steps {
		got = append(got, attr(r, "step")+"@"+attr(r, "percent"))
	}
	if !slices.Equal(got, []string{"1@10", "2@20"}) {
		t.Fatalf("step events = %v", got)
	}
	fails := logs.events(ramp.EventFailure)
	if len(fails) != 1 || attr(fails[0], "gate") != "prometheus:errors" || attr(fails[0], "action") != "rollback" {
		t.Fatalf("failure events = %v", fails)
	}

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	found := map[string]bool{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, dp := range d.DataPoints {
					g, _ := dp.Attributes.Value("gate")
					if m.Name == ramp.MetricFailures && g.AsString() == "prometheus:errors" && dp.Value == 1 {
						found[m.Name] = true
					}
					if v, _ := dp.Attributes.Value("verdict"); m.Name == ramp.MetricGateChecks && v.AsString() == "fail" && dp.Value >= 1 {
						found[m.Name] = true
					}
				}
			case metricdata.Gauge[int64]:
				for _, dp := range d.DataPoints {
					ph, _ := dp.Attributes.Value("phase")
					if m.Name == ramp.MetricStep && ph.AsString() == ramp.PhaseRolledBack && dp.Value == 0 {
						found[m.Name] = true
					}
					if m.Name == ramp.MetricLeader && dp.Value == 1 {
						found[m.Name] = true
					}
				}
			}
		}
	}
	for _, name := range []string{ramp.MetricFailures, ramp.MetricGateChecks, ramp.MetricStep, ramp.MetricLeader} {
		if !found[name] {
			t.Errorf("metric %s not reported as expected: %+v", name, rm.ScopeMetrics)
		}
	}
}
