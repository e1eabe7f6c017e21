package dbwrap

import (
	"context"
	"database/sql/driver"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/reqcanary/canary/tenant"
)

// positionQueries counts the replica position queries a connector's
// connections send, whoever sends them.
type positionQueries struct{ n atomic.Int64 }

func (q *positionQueries) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	if strings.Contains(d.SQL, "pg_last_wal_replay_lsn") {
		q.n.Add(1)
	}
	return ctx
}

func (*positionQueries) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// Reads that wait for the replica to replay their token
// (Config.ConsistencyWait) share one probe of the replica's position: 16
// reads waiting 300 ms for a paused replica cost a few dozen position
// queries, not one loop of queries each, and every one of them is served by
// the replica, with its write, once replay resumes.
func TestPGConsistencyWaitSharesOneProbe(t *testing.T) {
	e := newPGEnv(t)
	tbl := e.table(t, "u int")
	var probes positionQueries
	cfg := e.config()
	cfg.Primary, cfg.Replicas = "", nil
	cfg.PollInterval = time.Hour // the poller's positions stay old
	cfg.MaxReplicaLag = time.Hour
	cfg.ConsistencyWait = 10 * time.Second
	db, err := OpenDB(Connectors{
		Primary:  tracedConnector(t, e.primaryDSN, &queryCounter{}),
		Replicas: []driver.Connector{tracedConnector(t, e.replicaDSN, &probes)},
	}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	waitPolled(t, db)
	e.pauseReplay(t)
	probes.n.Store(0)

	const readers = 16
	const paused = 300 * time.Millisecond
	bg := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, readers)
	for i := 0; i < readers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := tenant.NewContext(bg, tenant.Labels{Tenant: "acme", UserHash: fmt.Sprintf("%032x", i)})
			if _, err := db.ExecContext(req, "insert into "+tbl+" values ($1)", i); err != nil {
				errs <- err
				return
			}
			var inRecovery bool
			var n int
			if err := db.QueryRowContext(req, "select pg_is_in_recovery(), count(*) from "+tbl+" where u = $1", i).Scan(&inRecovery, &n); err != nil {
				errs <- err
				return
			}
			if !inRecovery || n != 1 {
				errs <- fmt.Errorf("reader %d: in recovery %v, %d rows; want its write from the replica", i, inRecovery, n)
			}
		}()
	}
	time.Sleep(paused)
	if _, err := e.replica.ExecContext(bg, "select pg_wal_replay_resume()"); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	n := probes.n.Load()
	t.Logf("%d readers waited %v for the replica: %d position queries", readers, paused, n)
	// One probe at a time, at least probeMaxGap apart while the replica
	// does not move: about paused/probeMaxGap, plus those after the resume.
	if limit := int64(paused/probeMaxGap) + 20; n > limit {
		t.Errorf("%d position queries for %d waiting readers over %v, want at most %d (one shared probe)", n, readers, paused, limit)
	}
}
