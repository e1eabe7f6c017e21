package dbwrap

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/reqcanary/canary/tenant"
)

// A replica far behind (replay paused, the primary written to, for more than
// MaxReplicaLag) when dbwrap opens serves no read, before its first poll
// verdict (reason not-polled) or after it (no-healthy-replica): the poller
// cannot tell its lag until its oldest sample is older than MaxReplicaLag,
// and then finds it unfit.
func TestPGFarBehindReplicaNeverServes(t *testing.T) {
	e := newPGEnv(t)
	tbl := e.table(t, "id int")
	ctx := context.Background()
	e.pauseReplay(t)
	eventually(t, "replay is paused", func() bool {
		var state string
		err := e.replica.QueryRowContext(ctx, "select pg_get_wal_replay_pause_state()").Scan(&state)
		return err == nil && state == "paused"
	})
	if _, err := e.primary.ExecContext(ctx, "insert into "+tbl+" values (1)"); err != nil {
		t.Fatal(err)
	}
	var lsn string
	if err := e.primary.QueryRowContext(ctx, "select pg_current_wal_insert_lsn()::text").Scan(&lsn); err != nil {
		t.Fatal(err)
	}
	cfg := e.config()
	cfg.MaxReplicaLag = 300 * time.Millisecond
	time.Sleep(2 * cfg.MaxReplicaLag) // the replica's lag is now well beyond MaxReplicaLag
	var behind bool
	if err := e.replica.QueryRowContext(ctx, "select pg_last_wal_replay_lsn() < $1::pg_lsn", lsn).Scan(&behind); err != nil || !behind {
		t.Fatalf("the paused replica has replayed the write (behind %v, err %v)", behind, err)
	}
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { mp.Shutdown(context.Background()) })
	cfg.MeterProvider = mp

	db, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	opened := time.Now()
	if h := collectHealth(t, reader, "replica-0"); time.Since(opened) < cfg.MaxReplicaLag && (h.up != -1 || h.downs != 0) {
		t.Errorf("before the verdict: metrics %+v, want no up gauge and no event", h)
	}
	req := tenant.NewContext(ctx, tenant.Labels{Tenant: "acme", Cohort: tenant.Stable})
	reads := 0
	sawNotPolled := false
	for !polledAll(db) {
		r, err := Explain(req, db, "select 1")
		if err != nil {
			t.Fatal(err)
		}
		switch r.Reason {
		case ReasonNotPolled:
			sawNotPolled = true
		case ReasonNoHealthyReplica: // the verdict came in between
		default:
			t.Fatalf("Explain before the verdict: %v, want the primary (%s)", r, ReasonNotPolled)
		}
		if a := who(t, req, db); a.InRecovery || a.Port != e.primaryPort {
			t.Fatalf("read %d before the verdict answered by %+v, want the primary (port %d)", reads, a, e.primaryPort)
		}
		reads++
		time.Sleep(10 * time.Millisecond)
	}
	if !sawNotPolled || reads == 0 {
		t.Errorf("no read before the verdict was explained as %s (%d reads)", ReasonNotPolled, reads)
	}
	waitPolled(t, db)
	if d := time.Since(opened); d < cfg.MaxReplicaLag {
		t.Errorf("verdict after %v, before MaxReplicaLag (%v) could tell the lag", d, cfg.MaxReplicaLag)
	}
	if r, err := Explain(req, db, "select 1"); err != nil || r.Target != TargetPrimary || r.Reason != ReasonNoHealthyReplica {
		t.Errorf("Explain after the verdict: %v, %v; want the primary (%s)", r, err, ReasonNoHealthyReplica)
	}
	for i := 0; i < 20; i++ {
		if a := who(t, req, db); a.InRecovery || a.Port != e.primaryPort {
			t.Fatalf("read %d after the verdict answered by %+v, want the primary", i, a)
		}
	}
	var n int
	if err := db.QueryRowContext(ctx, "select count(*) from "+tbl).Scan(&n); err != nil || n != 1 {
		t.Errorf("a fresh read saw %d rows (err %v), want the primary's 1", n, err)
	}
	if h := collectHealth(t, reader, "replica-0"); h.up != 0 || h.lag <= cfg.MaxReplicaLag.Seconds() || h.downs != 1 || h.ups != 0 {
		t.Errorf("after the verdict: metrics %+v, want up 0, lag over %v, one down event", h, cfg.MaxReplicaLag)
	}
}

// Before the replica's first poll, reads (and read-only transactions) go to
// the primary with reason not-polled; once the poll has found it fit, they
// go to the replica at once. The replica's connector holds the poller's
// connection until the test lets it through.
func TestPGReplicaServesAfterFirstPoll(t *testing.T) {
	e := newPGEnv(t)
	drv, err := innerDriver("pgx")
	if err != nil {
		t.Fatal(err)
	}
	pc, err := dsnConnector(drv, e.primaryDSN)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := dsnConnector(drv, e.replicaDSN)
	if err != nil {
		t.Fatal(err)
	}
	gated := newGated(rc)
	cfg := e.config()
	cfg.Primary, cfg.Replicas = "", nil
	cfg.PollInterval = 10 * time.Second // the first poll's timeout outlasts the gate
	cfg.RecoverAfter = time.Hour        // does not delay the first admission
	db, err := OpenDB(Connectors{Primary: pc, Replicas: []driver.Connector{gated}}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	t.Cleanup(gated.open)
	ctx := context.Background()

	if r, err := Explain(ctx, db, whoQuery); err != nil || r.Target != TargetPrimary || r.Reason != ReasonNotPolled {
		t.Errorf("Explain before the first poll: %v, %v; want the primary (%s)", r, err, ReasonNotPolled)
	}
	if a := who(t, ctx, db); a.InRecovery || a.Port != e.primaryPort {
		t.Errorf("read before the first poll answered by %+v, want the primary (port %d)", a, e.primaryPort)
	}
	tx, err := db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if a := who(t, ctx, tx); a.InRecovery || a.Port != e.primaryPort {
		t.Errorf("read-only transaction before the first poll answered by %+v, want the primary", a)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}

	gated.open()
	waitPolled(t, db)
	if r, err := Explain(ctx, db, whoQuery); err != nil || r.Target != TargetReplica || r.Reason != ReasonRead {
		t.Errorf("Explain after the first poll: %v, %v; want the replica (%s)", r, err, ReasonRead)
	}
	if a := who(t, ctx, db); !a.InRecovery || a.Port != e.replicaPort {
		t.Errorf("read after the first poll answered by %+v, want the replica (port %d)", a, e.replicaPort)
	}
}
