package dbwrap

import (
	"context"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/reqcanary/canary/tenant"
)

// healthMetrics is what the health metrics of one replica say.
type healthMetrics struct {
	lag   float64 // seconds; -1 when not observed
	up    int64   // -1 when not observed
	downs int64
	ups   int64
}

func collectHealth(t *testing.T, r *sdkmetric.ManualReader, server string) healthMetrics {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	h := healthMetrics{lag: -1, up: -1}
	of := func(s attribute.Set) bool { v, _ := s.Value(AttrServer); return v.AsString() == server }
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Gauge[float64]:
				for _, dp := range d.DataPoints {
					if m.Name == MetricReplicaLag && of(dp.Attributes) {
						h.lag = dp.Value
					}
				}
			case metricdata.Gauge[int64]:
				for _, dp := range d.DataPoints {
					if m.Name == MetricReplicaUp && of(dp.Attributes) {
						h.up = dp.Value
					}
				}
			case metricdata.Sum[int64]:
				for _, dp := range d.DataPoints {
					if m.Name != MetricReplicaEvents || !of(dp.Attributes) {
						continue
					}
					switch ev, _ := dp.Attributes.Value("canary.db.event"); ev.AsString() {
					case "down":
						h.downs += dp.Value
					case "up":
						h.ups += dp.Value
					}
				}
			}
		}
	}
	return h
}

// A replica lagging more than MaxReplicaLag is taken out, and comes back
// only after RecoverAfter of healthy polls once it has caught up.
func TestPGLaggingReplicaTakenOutWithHysteresis(t *testing.T) {
	e := newPGEnv(t)
	cfg := e.config()
	cfg.MaxReplicaLag = 300 * time.Millisecond
	cfg.RecoverAfter = 2 * time.Second
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { mp.Shutdown(context.Background()) })
	cfg.MeterProvider = mp
	db := e.open(t, cfg)
	tbl := e.table(t, "id int")
	ctx := context.Background()
	if a := who(t, ctx, db); !a.InRecovery {
		t.Fatalf("read before the lag went to %+v", a)
	}
	eventually(t, "the poller measures the replica's lag", func() bool {
		return collectHealth(t, reader, "replica-0").lag >= 0
	})
	if h := collectHealth(t, reader, "replica-0"); h.up != 1 || h.lag > cfg.MaxReplicaLag.Seconds() || h.downs != 0 {
		t.Errorf("healthy replica: metrics %+v, want up 1, lag under %v, no down event", h, cfg.MaxReplicaLag)
	}
	e.pauseReplay(t)
	if _, err := db.ExecContext(ctx, "insert into "+tbl+" values (1)"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the lagging replica is taken out", func() bool {
		r, err := Explain(ctx, db, "select 1")
		return err == nil && r.Target == TargetPrimary && r.Reason == ReasonNoHealthyReplica
	})
	if a := who(t, ctx, db); a.InRecovery {
		t.Errorf("read with the replica out went to %+v", a)
	}
	if h := collectHealth(t, reader, "replica-0"); h.up != 0 || h.lag <= cfg.MaxReplicaLag.Seconds() || h.downs != 1 {
		t.Errorf("lagging replica: metrics %+v, want up 0, lag over %v, one down event", h, cfg.MaxReplicaLag)
	}
	if _, err := e.replica.ExecContext(ctx, "select pg_wal_replay_resume()"); err != nil {
		t.Fatal(err)
	}
	e.waitReplicated(t)
	// Caught up, but not yet healthy for RecoverAfter.
	if r, _ := Explain(ctx, db, "select 1"); r.Target != TargetPrimary {
		t.Errorf("the replica came back at once (%v), want after RecoverAfter", r)
	}
	eventually(t, "the replica serves reads again", func() bool {
		return who(t, ctx, db).InRecovery
	})
	if h := collectHealth(t, reader, "replica-0"); h.up != 1 || h.lag > cfg.MaxReplicaLag.Seconds() || h.downs != 1 || h.ups != 1 {
		t.Errorf("recovered replica: metrics %+v, want up 1, lag under %v, one down and one up event", h, cfg.MaxReplicaLag)
	}
}

// With ConsistencyWait, a read that carries a token the poller has not seen
// replayed yet asks the replica and waits for it, instead of going to the
// primary; with replay paused it gives up after the wait.
func TestPGConsistencyWait(t *testing.T) {
	e := newPGEnv(t)
	cfg := e.config()
	cfg.PollInterval = time.Hour // the poller's positions stay old
	cfg.MaxReplicaLag = time.Hour
	cfg.ConsistencyWait = 3 * time.Second
	db := e.open(t, cfg)
	tbl := e.table(t, "id int")
	req := tenant.NewContext(context.Background(), tenant.Labels{Tenant: "acme"})
	if _, err := db.ExecContext(req, "insert into "+tbl+" values (1)"); err != nil {
		t.Fatal(err)
	}
	if a := who(t, req, db); !a.InRecovery {
		t.Errorf("read after the write went to %+v, want the replica after waiting for it", a)
	}
	var n int
	if err := db.QueryRowContext(req, "select count(*) from "+tbl).Scan(&n); err != nil || n != 1 {
		t.Errorf("the replica read %d rows (err %v), want 1", n, err)
	}
	e.pauseReplay(t)
	if _, err := db.ExecContext(req, "insert into "+tbl+" values (2)"); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRowContext(req, "select count(*) from "+tbl).Scan(&n); err != nil || n != 2 {
		t.Errorf("with replay paused the read saw %d rows (err %v), want 2 from the primary", n, err)
	}
}
