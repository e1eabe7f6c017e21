package dbwrap

import (
	"context"
	"testing"
	"time"

	"github.com/reqcanary/canary/tenant"
)

// A replica lagging more than MaxReplicaLag is taken out, and comes back
// only after RecoverAfter of healthy polls once it has caught up.
func TestPGLaggingReplicaTakenOutWithHysteresis(t *testing.T) {
	e := newPGEnv(t)
	cfg := e.config()
	cfg.MaxReplicaLag = 300 * time.Millisecond
	cfg.RecoverAfter = 2 * time.Second
	db := e.open(t, cfg)
	tbl := e.table(t, "id int")
	ctx := context.Background()
	if a := who(t, ctx, db); !a.InRecovery {
		t.Fatalf("read before the lag went to %+v", a)
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
