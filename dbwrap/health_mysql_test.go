package dbwrap

import (
	"context"
	"testing"
	"time"
)

// A MariaDB replica that stops applying (its SQL thread waits on a global
// read lock, still "running") is taken out once its lag, measured against
// the primary's GTID samples, exceeds MaxReplicaLag, and readmitted
// RecoverAfter after it has caught up.
func TestMySQLLaggingReplicaTakenOutByGTIDLag(t *testing.T) {
	e := newMyEnv(t)
	tbl := e.table(t, "id INT PRIMARY KEY")
	cfg := e.config()
	cfg.MaxReplicaLag = 400 * time.Millisecond
	db := e.open(t, cfg)
	ctx := context.Background()
	if a := myWho(t, ctx, db); a.ServerID != e.replicaID {
		t.Fatalf("read before the lag went to %+v", a)
	}
	release := e.holdReplicaApply(t)
	if _, err := e.primary.ExecContext(ctx, "INSERT INTO "+tbl+" VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	eventually(t, "the lagging replica is taken out", func() bool {
		r, err := Explain(ctx, db, "SELECT 1")
		return err == nil && r.Reason == ReasonNoHealthyReplica
	})
	if d := time.Since(start); d < cfg.MaxReplicaLag {
		t.Errorf("taken out %v after the write, before its lag could exceed MaxReplicaLag (%v)", d, cfg.MaxReplicaLag)
	}
	if a := myWho(t, ctx, db); a.ServerID != e.primaryID {
		t.Errorf("read went to %+v while the replica lags", a)
	}
	release()
	eventually(t, "the replica is readmitted after catching up", func() bool {
		return myWho(t, ctx, db).ServerID == e.replicaID
	})
	var n int
	if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+tbl).Scan(&n); err != nil || n != 1 {
		t.Errorf("the readmitted replica has %d rows (err %v), want 1", n, err)
	}
}
