package dbwrap

import (
	"context"
	"testing"
	"time"
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
