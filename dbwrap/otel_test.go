package dbwrap

import (
	"context"
	"database/sql/driver"
	"syscall"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

func TestTelemetry(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(context.Background())
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer tp.Shutdown(context.Background())

	log := &fakeLog{}
	p := &fakeConnector{server: "primary", log: log}
	r := &fakeConnector{server: "replica", log: log}
	db, err := OpenDB(Connectors{Primary: p, Replicas: []driver.Connector{r}}, Config{MeterProvider: mp, Dialect: fakeDialect{}})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	waitPolled(t, db)

	ctx, span := tp.Tracer("test").Start(context.Background(), "handler")
	var s string
	if err := db.QueryRowContext(ctx, "select 1").Scan(&s); err != nil {
		t.Fatal(err)
	}
	span.End()
	got := map[attribute.Key]string{}
	for _, kv := range rec.Ended()[0].Attributes() {
		got[kv.Key] = kv.Value.Emit()
	}
	want := map[attribute.Key]string{AttrDBSystem: "postgresql", AttrTarget: "replica", AttrServer: "replica-0", AttrReason: ReasonRead}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("span attribute %s = %q, want %q", k, got[k], v)
		}
	}

	db.ExecContext(context.Background(), "insert into t values (1)")
	var refused error = syscall.ECONNREFUSED
	r.fail.Store(&refused)
	db.QueryRowContext(context.Background(), "select 1").Scan(&s)

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	sums := map[string]int64{}
	gauges := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, dp := range d.DataPoints {
					reason, _ := dp.Attributes.Value(AttrReason)
					server, _ := dp.Attributes.Value(AttrServer)
					sums[m.Name+"/"+server.Emit()+"/"+reason.Emit()] += dp.Value
				}
			case metricdata.Gauge[int64]:
				for _, dp := range d.DataPoints {
					server, _ := dp.Attributes.Value(AttrServer)
					gauges[m.Name+"/"+server.Emit()] = dp.Value
				}
			}
		}
	}
	for _, k := range []string{
		MetricRoutes + "/replica-0/" + ReasonRead,
		MetricRoutes + "/primary/write",
		MetricRoutes + "/primary/" + ReasonFailoverConn,
		MetricFailovers + "/primary/" + ReasonFailoverConn,
	} {
		if sums[k] != 1 {
			t.Errorf("%s = %d, want 1 (all: %v)", k, sums[k], sums)
		}
	}
	if v, ok := gauges[MetricReplicaUp+"/replica-0"]; !ok || v != 0 {
		t.Errorf("%s = %d (%v), want 0 after the failure", MetricReplicaUp, v, ok)
	}
}
