package dbwrap

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.uber.org/goleak"
)

// hasMetric reports whether the reader collects a metric called name.
func hasMetric(t *testing.T, r *sdkmetric.ManualReader, name string) bool {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name == name {
				return true
			}
		}
	}
	return false
}

// A database opened with DeferStart works before Start, on the primary and
// without keeping connections; Start starts the poller and the replicas
// serve reads; Close stops everything and Start then fails.
func TestDeferStart(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(context.Background())
	log := &fakeLog{}
	p := &fakeConnector{server: "primary", log: log}
	r := &fakeConnector{server: "replica", log: log}
	db, err := OpenDB(Connectors{Primary: p, Replicas: []driver.Connector{r}},
		Config{DeferStart: true, PollInterval: 5 * time.Millisecond, MeterProvider: mp})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	e := &fakeEnv{log: log, primary: p, replica: r, db: db}
	ctx := context.Background()

	// Before Start: reads go to the primary, nothing is kept open.
	if got, err := Explain(ctx, db, "select 1"); err != nil || got.Target != TargetPrimary || got.Reason != ReasonNotStarted {
		t.Errorf("Explain before Start: %+v, %v; want the primary, %s", got, err, ReasonNotStarted)
	}
	if got := e.server(t, ctx, "select 1"); got != "primary" {
		t.Errorf("a read before Start ran on %s, want the primary", got)
	}
	if _, err := db.ExecContext(ctx, "insert into t values (1)"); err != nil {
		t.Fatal(err)
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if n, m := p.open.Load(), r.open.Load(); n != 0 || m != 0 {
		t.Errorf("before Start: %d primary and %d replica inner conns kept open, want none", n, m)
	}
	if hasMetric(t, reader, MetricReplicaUp) {
		t.Errorf("%s is reported before Start", MetricReplicaUp)
	}
	if err := goleak.Find(ignore, goleak.IgnoreTopFunction("database/sql.(*DB).connectionOpener")); err != nil {
		t.Errorf("goroutines before Start: %v", err)
	}
	// Nothing is polled before Start: WaitPolled waits for it.
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	if err := WaitPolled(short, db); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("WaitPolled before Start: %v, want the context's deadline", err)
	}
	cancel()

	for i := 0; i < 2; i++ {
		if err := Start(db); err != nil {
			t.Fatalf("Start #%d: %v", i+1, err)
		}
	}
	waitPolled(t, db)
	if got := e.server(t, ctx, "select 1"); got != "replica" {
		t.Errorf("a read after Start ran on %s, want the replica", got)
	}
	eventually(t, "the poller has a connection to the replica", func() bool { return r.open.Load() > 0 })
	if !hasMetric(t, reader, MetricReplicaUp) {
		t.Errorf("%s is not reported after Start", MetricReplicaUp)
	}

	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := Start(db); !errors.Is(err, ErrClosed) {
		t.Errorf("Start after Close: %v, want ErrClosed", err)
	}
	if err := WaitPolled(ctx, db); !errors.Is(err, ErrClosed) {
		t.Errorf("WaitPolled after Close: %v, want ErrClosed", err)
	}
	if n, m := p.open.Load(), r.open.Load(); n != 0 || m != 0 {
		t.Errorf("after Close: %d primary and %d replica inner conns still open", n, m)
	}
	if hasMetric(t, reader, MetricReplicaUp) {
		t.Errorf("%s is still reported after Close", MetricReplicaUp)
	}
	if err := goleak.Find(ignore); err != nil {
		t.Errorf("goroutines after Close: %v", err)
	}
}

// Without DeferStart nothing changes: the poller runs from Open, and Start
// is a no-op.
func TestStartWithoutDeferStart(t *testing.T) {
	e := newFakeEnv(t, false, Config{PollInterval: 5 * time.Millisecond})
	eventually(t, "the poller has a connection to the replica", func() bool { return e.replica.open.Load() > 0 })
	if err := Start(e.db); err != nil {
		t.Errorf("Start: %v", err)
	}
	if got := e.server(t, context.Background(), "select 1"); got != "replica" {
		t.Errorf("a read ran on %s, want the replica", got)
	}
}

func TestStartErrors(t *testing.T) {
	if err := Start(nil); err == nil {
		t.Error("Start(nil) succeeded")
	}
	other, err := sql.Open("pgx", "postgres://127.0.0.1:1/none")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if err := Start(other); !errors.Is(err, ErrNotDBWrap) {
		t.Errorf("Start on a pgx DB: %v, want ErrNotDBWrap", err)
	}
	ctx := context.Background()
	if err := WaitPolled(ctx, nil); err == nil {
		t.Error("WaitPolled(nil) succeeded")
	}
	if err := WaitPolled(ctx, other); !errors.Is(err, ErrNotDBWrap) {
		t.Errorf("WaitPolled on a pgx DB: %v, want ErrNotDBWrap", err)
	}
}

// Start and Close race without a data race and leave nothing running.
func TestStartCloseConcurrent(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	for i := 0; i < 20; i++ {
		log := &fakeLog{}
		db, err := OpenDB(Connectors{
			Primary:  &fakeConnector{server: "primary", log: log},
			Replicas: []driver.Connector{&fakeConnector{server: "replica", log: log}},
		}, Config{DeferStart: true, PollInterval: time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 3)
		go func() { done <- Start(db) }()
		go func() { done <- Start(db) }()
		go func() { done <- db.Close() }()
		for j := 0; j < 3; j++ {
			if err := <-done; err != nil && !errors.Is(err, ErrClosed) {
				t.Errorf("Start or Close: %v", err)
			}
		}
		db.Close()
	}
	if err := goleak.Find(ignore); err != nil {
		t.Error(err)
	}
}
