package dbwrap

import (
	"context"
	"database/sql/driver"
	"sync"
	"syscall"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/reqcanary/canary/tenant"
)

// gatedConnector holds every Connect until open is called (or the context
// ends): the first Connect to a replica is the poller's, so a replica behind
// a closed gate has no poll verdict.
type gatedConnector struct {
	driver.Connector
	gate chan struct{}
	once sync.Once
}

func newGated(c driver.Connector) *gatedConnector {
	return &gatedConnector{Connector: c, gate: make(chan struct{})}
}

func (g *gatedConnector) open() { g.once.Do(func() { close(g.gate) }) }

func (g *gatedConnector) Connect(ctx context.Context) (driver.Conn, error) {
	select {
	case <-g.gate:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return g.Connector.Connect(ctx)
}

// Until its first poll verdict a replica serves no read: reads go to the
// primary with ReasonNotPolled, and the up gauge reports nothing for it. The
// first good poll puts it in service at once (RecoverAfter is an hour here)
// without an "up" event.
func TestReplicaServesOnlyAfterFirstPoll(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(context.Background())
	log := &fakeLog{}
	p := &fakeConnector{server: "primary", log: log}
	r := &fakeConnector{server: "replica", log: log}
	gated := newGated(r)
	t.Cleanup(gated.open) // before Close waits for the poller
	db, err := OpenDB(Connectors{Primary: p, Replicas: []driver.Connector{gated}}, Config{
		PollInterval:  10 * time.Second, // the first poll's timeout outlasts the test
		RecoverAfter:  time.Hour,
		MeterProvider: mp,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	t.Cleanup(gated.open)
	e := &fakeEnv{log: log, primary: p, replica: r, db: db}
	ctx := context.Background()
	req := tenant.NewContext(ctx, tenant.Labels{Tenant: "acme", Cohort: tenant.Stable})

	for _, c := range []context.Context{ctx, req} {
		if got, err := Explain(c, db, "select 1"); err != nil || got.Target != TargetPrimary || got.Reason != ReasonNotPolled {
			t.Errorf("Explain before the first poll: %v, %v; want the primary, %s", got, err, ReasonNotPolled)
		}
		if got := e.server(t, c, "select 1"); got != "primary" {
			t.Errorf("a read before the first poll ran on %s, want the primary", got)
		}
	}
	if h := collectHealth(t, reader, "replica-0"); h.up != -1 || h.downs != 0 || h.ups != 0 {
		t.Errorf("before the first poll: metrics %+v, want no up gauge and no event", h)
	}
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if err := WaitPolled(short, db); err == nil {
		t.Error("WaitPolled returned before the first poll")
	}

	gated.open()
	waitPolled(t, db)
	if got, err := Explain(ctx, db, "select 1"); err != nil || got.Target != TargetReplica || got.Reason != ReasonRead {
		t.Errorf("Explain after the first poll: %v, %v; want the replica, %s", got, err, ReasonRead)
	}
	if got := e.server(t, ctx, "select 1"); got != "replica" {
		t.Errorf("a read after the first poll ran on %s, want the replica", got)
	}
	if h := collectHealth(t, reader, "replica-0"); h.up != 1 || h.downs != 0 || h.ups != 0 {
		t.Errorf("after the first poll: metrics %+v, want up 1 and no event", h)
	}
}

// A replica whose first poll fails stays out, like one taken out later: a
// "down" event, up 0, and it serves reads only after RecoverAfter of good
// polls.
func TestReplicaFailingFirstPollStaysOut(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(context.Background())
	log := &fakeLog{}
	p := &fakeConnector{server: "primary", log: log}
	r := &fakeConnector{server: "replica", log: log}
	var refused error = syscall.ECONNREFUSED
	r.fail.Store(&refused)
	db, err := OpenDB(Connectors{Primary: p, Replicas: []driver.Connector{r}}, Config{
		PollInterval: 10 * time.Millisecond, RecoverAfter: 200 * time.Millisecond, MeterProvider: mp,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	e := &fakeEnv{log: log, primary: p, replica: r, db: db}
	ctx := context.Background()
	waitPolled(t, db)
	if got, err := Explain(ctx, db, "select 1"); err != nil || got.Target != TargetPrimary || got.Reason != ReasonNoHealthyReplica {
		t.Errorf("Explain after a failed first poll: %v, %v; want the primary, %s", got, err, ReasonNoHealthyReplica)
	}
	if h := collectHealth(t, reader, "replica-0"); h.up != 0 || h.downs != 1 || h.ups != 0 {
		t.Errorf("after a failed first poll: metrics %+v, want up 0 and one down event", h)
	}
	r.fail.Store(nil)
	back := time.Now()
	eventually(t, "the replica serves reads", func() bool { return e.server(t, ctx, "select 1") == "replica" })
	if d := time.Since(back); d < 200*time.Millisecond {
		t.Errorf("the replica came back after %v, want at least RecoverAfter", d)
	}
	if h := collectHealth(t, reader, "replica-0"); h.up != 1 || h.downs != 1 || h.ups != 1 {
		t.Errorf("recovered: metrics %+v, want up 1, one down and one up event", h)
	}
}

// A replica behind every position the poller has sampled, since the poller
// started less than MaxReplicaLag ago, has no verdict: its lag could be a
// millisecond or an hour. It serves no read until it replays the oldest
// sample (then it serves at once) or that sample is older than MaxReplicaLag
// (then it is out).
func TestReplicaBehindAtStartNotAdmittedUntilLagKnown(t *testing.T) {
	for _, catchUp := range []bool{false, true} {
		name := "stays-behind"
		if catchUp {
			name = "catches-up"
		}
		t.Run(name, func(t *testing.T) {
			log := &fakeLog{}
			p := &fakeConnector{server: "primary", log: log}
			r := &fakeConnector{server: "r1", log: log}
			d := &posDialect{write: 100, replay: map[string]uint64{"r1": 50}}
			const maxLag = 300 * time.Millisecond
			db, err := OpenDB(Connectors{Primary: p, Replicas: []driver.Connector{r}}, Config{
				Dialect: d, PollInterval: 10 * time.Millisecond, MaxReplicaLag: maxLag, RecoverAfter: time.Hour,
			})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			opened := time.Now()
			e := &fakeEnv{log: log, primary: p, db: db}
			ctx := context.Background()
			time.Sleep(50 * time.Millisecond) // several polls
			if got, _ := Explain(ctx, db, "select 1"); time.Since(opened) < maxLag && got.Reason != ReasonNotPolled {
				t.Errorf("Explain while the lag is unknown: %v, want %s", got, ReasonNotPolled)
			}
			if catchUp {
				d.set("r1", 100)
				waitPolled(t, db)
				if got := e.server(t, ctx, "select 1"); got != "r1" {
					t.Errorf("a read after the replica caught up ran on %s, want r1 (at once: RecoverAfter is an hour)", got)
				}
				return
			}
			for !polledAll(db) {
				if got := e.server(t, ctx, "select 1"); got != "primary" {
					t.Fatalf("a read before the verdict ran on %s, want the primary", got)
				}
				time.Sleep(5 * time.Millisecond)
			}
			if d := time.Since(opened); d < maxLag {
				t.Errorf("verdict after %v, before MaxReplicaLag %v", d, maxLag)
			}
			if got, _ := Explain(ctx, db, "select 1"); got.Reason != ReasonNoHealthyReplica {
				t.Errorf("Explain after the verdict: %v, want %s", got, ReasonNoHealthyReplica)
			}
			for i := 0; i < 20; i++ {
				if got := e.server(t, ctx, "select 1"); got != "primary" {
					t.Fatalf("read %d after the verdict ran on %s, want the primary", i, got)
				}
			}
		})
	}
}

// polledAll reports whether WaitPolled would return at once.
func polledAll(db interface{ Driver() driver.Driver }) bool {
	select {
	case <-db.Driver().(*wrapDriver).c.polled:
		return true
	default:
		return false
	}
}

// A cohort's replica without a verdict serves none of the cohort's reads:
// they go to the default replicas until its first poll finds it fit.
func TestCohortReplicaNotPolled(t *testing.T) {
	log := &fakeLog{}
	p := &fakeConnector{server: "primary", log: log}
	r := &fakeConnector{server: "replica", log: log}
	cr := newGated(&fakeConnector{server: "canary-replica", log: log})
	t.Cleanup(cr.open)
	db, err := OpenDB(Connectors{
		Primary: p, Replicas: []driver.Connector{r},
		CohortReplicas: map[tenant.Cohort][]driver.Connector{tenant.Canary: {cr}},
	}, Config{PollInterval: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	t.Cleanup(cr.open)
	canaryReq := tenant.NewContext(context.Background(), tenant.Labels{Tenant: "acme", Cohort: tenant.Canary})
	eventually(t, "the default replica serves the canary's reads", func() bool {
		got, err := Explain(canaryReq, db, "select 1")
		return err == nil && got.Server == "replica-0" && got.Reason == ReasonRead
	})
	cr.open()
	waitPolled(t, db)
	if got, err := Explain(canaryReq, db, "select 1"); err != nil || got.Server != "canary-replica-0" {
		t.Errorf("Explain for the canary after the first poll: %v, %v; want canary-replica-0", got, err)
	}
}
