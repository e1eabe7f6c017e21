package dbwrap

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"go.uber.org/goleak"

	"github.com/reqcanary/canary/internal/testenv"
	"github.com/reqcanary/canary/tenant"
)

func TestPGReadsOnReplicaWritesOnPrimary(t *testing.T) {
	e := newPGEnv(t)
	db := e.open(t, e.config())
	tbl := e.table(t, "id serial primary key, v int")
	ctx := context.Background()
	if _, err := e.primary.ExecContext(ctx, "insert into "+tbl+" (v) values (0)"); err != nil {
		t.Fatal(err)
	}
	e.waitReplicated(t)

	if a := who(t, ctx, db); !a.InRecovery || a.Port != e.replicaPort {
		t.Errorf("plain read answered by %+v, want the replica (port %d)", a, e.replicaPort)
	}
	primaryCases := map[string]string{
		"returning":     "insert into " + tbl + " (v) values (1) returning pg_is_in_recovery(), inet_server_port(), pg_backend_pid()",
		"locking":       "select pg_is_in_recovery(), inet_server_port(), pg_backend_pid() from " + tbl + " limit 1 for update",
		"cte":           "with x as (update " + tbl + " set v = v + 1 returning 1) select pg_is_in_recovery(), inet_server_port(), pg_backend_pid()",
		"nextval":       "select pg_is_in_recovery(), inet_server_port(), nextval('" + tbl + "_id_seq')::int",
		"hint":          "/* canary:primary */ " + whoQuery,
		"with-primary":  whoQuery,
		"set_config":    "select pg_is_in_recovery(), inet_server_port(), length(set_config('application_name', current_setting('application_name'), true))",
		"advisory-lock": "select pg_is_in_recovery(), inet_server_port(), case when pg_try_advisory_xact_lock(42) then 1 else 0 end",
	}
	for name, q := range primaryCases {
		qctx := ctx
		if name == "with-primary" {
			qctx = WithPrimary(ctx)
		}
		var a answer
		if err := db.QueryRowContext(qctx, q).Scan(&a.InRecovery, &a.Port, &a.PID); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if a.InRecovery || a.Port != e.primaryPort {
			t.Errorf("%s: answered by %+v, want the primary (port %d)", name, a, e.primaryPort)
		}
	}
	// Exec always writes on the primary: the replica could not have run it.
	res, err := db.ExecContext(ctx, "insert into "+tbl+" (v) values (100)")
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		t.Errorf("RowsAffected = %d, want 1", n)
	}
	var n int
	if err := e.primary.QueryRowContext(ctx, "select count(*) from "+tbl+" where v = 100").Scan(&n); err != nil || n != 1 {
		t.Errorf("primary has %d rows with v=100 (err %v), want 1", n, err)
	}
}

func TestPGTransactionStaysOnOnePrimaryBackend(t *testing.T) {
	e := newPGEnv(t)
	db := e.open(t, e.config())
	tbl := e.table(t, "id int primary key")
	ctx := context.Background()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	first := who(t, ctx, tx)
	if first.InRecovery || first.Port != e.primaryPort {
		t.Fatalf("transaction began on %+v, want the primary", first)
	}
	for i := 1; i < 100; i++ {
		if i%2 == 0 {
			if _, err := tx.ExecContext(ctx, "insert into "+tbl+" values ($1)", i); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if a := who(t, ctx, tx); a != first {
			t.Fatalf("statement %d answered by %+v, want %+v", i, a, first)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := e.primary.QueryRowContext(ctx, "select count(*) from "+tbl).Scan(&n); err != nil || n != 49 {
		t.Errorf("committed %d rows (err %v), want 49", n, err)
	}
}

func TestPGReadOnlyTransactionStaysOnOneReplicaBackend(t *testing.T) {
	e := newPGEnv(t)
	db := e.open(t, e.config())
	ctx := context.Background()
	tx, err := db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	first := who(t, ctx, tx)
	if !first.InRecovery || first.Port != e.replicaPort {
		t.Fatalf("read-only transaction began on %+v, want the replica", first)
	}
	for i := 1; i < 100; i++ {
		if a := who(t, ctx, tx); a != first {
			t.Fatalf("statement %d answered by %+v, want %+v", i, a, first)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	// WithPrimary puts a read-only transaction on the primary.
	tx, err = db.BeginTx(WithPrimary(ctx), &sql.TxOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if a := who(t, ctx, tx); a.InRecovery {
		t.Errorf("WithPrimary read-only transaction ran on %+v", a)
	}
}

// pauseReplay pauses WAL replay on the replica until the test ends. It
// holds the replica lock exclusively, so that no other test process reads
// from the replica meanwhile.
func (e *pgEnv) pauseReplay(t *testing.T) {
	t.Helper()
	e.lock.makeExclusive(t)
	t.Cleanup(func() {
		if _, err := e.replica.ExecContext(context.Background(), "select pg_wal_replay_resume()"); err != nil {
			t.Errorf("resume replay: %v", err)
		}
	})
	if _, err := e.replica.ExecContext(context.Background(), "select pg_wal_replay_pause()"); err != nil {
		t.Fatal(err)
	}
}

func TestPGReadYourWritesWithReplayPaused(t *testing.T) {
	e := newPGEnv(t)
	cfg := e.config()
	cfg.MaxReplicaLag = time.Hour // the paused replica stays in service for fresh contexts
	db := e.open(t, cfg)
	tbl := e.table(t, "id int primary key")
	e.pauseReplay(t)

	bg := context.Background()
	reqCtx := tenant.NewContext(bg, tenant.Labels{Tenant: "acme", Cohort: tenant.Stable})
	if _, ok := ConsistencyToken(reqCtx); ok {
		t.Fatal("a fresh request has a consistency token")
	}
	const pairs = 1000
	for i := 1; i <= pairs; i++ {
		if _, err := db.ExecContext(reqCtx, "insert into "+tbl+" values ($1)", i); err != nil {
			t.Fatal(err)
		}
		var n int
		if err := db.QueryRowContext(reqCtx, "select count(*) from "+tbl+" where id = $1", i).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 1 {
			t.Fatalf("pair %d: the request did not read its own write", i)
		}
	}
	if a := who(t, reqCtx, db); a.InRecovery {
		t.Errorf("a read of the writing request went to %+v while the replica is paused", a)
	}
	token, ok := ConsistencyToken(reqCtx)
	if !ok {
		t.Fatal("no consistency token after writes")
	}

	// A fresh request reads from the replica and does not see the writes.
	fresh := tenant.NewContext(bg, tenant.Labels{Tenant: "acme", Cohort: tenant.Stable})
	if a := who(t, fresh, db); !a.InRecovery || a.Port != e.replicaPort {
		t.Errorf("fresh request answered by %+v, want the replica", a)
	}
	var n int
	if err := db.QueryRowContext(fresh, "select count(*) from "+tbl).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		var paused bool
		_ = e.replica.QueryRowContext(bg, "select pg_is_wal_replay_paused()").Scan(&paused)
		t.Errorf("fresh request on the paused replica sees %d rows, want 0 (the split is not real; replay still paused: %v)", n, paused)
	}
	// A downstream service given the token reads the writes.
	downstream := WithConsistencyToken(bg, token)
	if err := db.QueryRowContext(downstream, "select count(*) from "+tbl).Scan(&n); err != nil || n != pairs {
		t.Errorf("with the token: %d rows (err %v), want %d", n, err, pairs)
	}
	if r, err := Explain(downstream, db, "select 1"); err != nil || r.Target != TargetPrimary || r.Reason != ReasonTokenAhead {
		t.Errorf("Explain with the token = %v, %v; want the primary, %s", r, err, ReasonTokenAhead)
	}

	// After resume the replica replays the writes, and reads return to it.
	if _, err := e.replica.ExecContext(bg, "select pg_wal_replay_resume()"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the writing request reads from the replica again", func() bool {
		return who(t, reqCtx, db).InRecovery
	})
	if err := db.QueryRowContext(reqCtx, "select count(*) from "+tbl).Scan(&n); err != nil || n != pairs {
		t.Errorf("after resume, the replica has %d rows (err %v), want %d", n, err, pairs)
	}
	if tok2, _ := ConsistencyToken(reqCtx); tok2 != token {
		t.Errorf("the token changed without a write: %s -> %s", token, tok2)
	}
}

func TestPGUserTokenAcrossRequests(t *testing.T) {
	e := newPGEnv(t)
	cfg := e.config()
	cfg.MaxReplicaLag = time.Hour
	cfg.TokenTTL = time.Minute
	db := e.open(t, cfg)
	tbl := e.table(t, "id int primary key")
	e.pauseReplay(t)

	bg := context.Background()
	user := tenant.Labels{Tenant: "acme", UserHash: strings.Repeat("ab", 16), Cohort: tenant.Stable}
	other := tenant.Labels{Tenant: "acme", UserHash: strings.Repeat("cd", 16), Cohort: tenant.Stable}
	if _, err := db.ExecContext(tenant.NewContext(bg, user), "insert into "+tbl+" values (1)"); err != nil {
		t.Fatal(err)
	}
	// The same user's next request reads its write; another user's does not.
	var n int
	if err := db.QueryRowContext(tenant.NewContext(bg, user), "select count(*) from "+tbl).Scan(&n); err != nil || n != 1 {
		t.Errorf("the same user's next request sees %d rows (err %v), want 1", n, err)
	}
	if err := db.QueryRowContext(tenant.NewContext(bg, other), "select count(*) from "+tbl).Scan(&n); err != nil || n != 0 {
		t.Errorf("another user's request sees %d rows (err %v), want 0 from the paused replica", n, err)
	}
}

func TestPGSessionStatePinsToPrimaryUntilReset(t *testing.T) {
	e := newPGEnv(t)
	db := e.open(t, e.config())
	db.SetMaxOpenConns(1)
	ctx := context.Background()
	c, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if a := who(t, ctx, c); !a.InRecovery {
		t.Fatalf("first read on the conn went to %+v, want the replica", a)
	}
	if _, err := c.ExecContext(ctx, "set statement_timeout = '5s'"); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if a := who(t, ctx, c); a.InRecovery {
			t.Fatalf("read after SET went to %+v, want the primary", a)
		}
	}
	var timeout string
	if err := c.QueryRowContext(ctx, "show statement_timeout").Scan(&timeout); err != nil || timeout != "5s" {
		t.Errorf("statement_timeout = %q (err %v): the read did not see the session's SET", timeout, err)
	}
	c.Close()
	// The conn is reset when reused: reads go to the replica again.
	if a := who(t, ctx, db); !a.InRecovery {
		t.Errorf("read after the pooled conn was reset went to %+v, want the replica", a)
	}
}

func TestPGReadOnlyRefusalRetriedOnPrimary(t *testing.T) {
	e := newPGEnv(t)
	db := e.open(t, e.config())
	tbl := e.table(t, "id int")
	fn := tbl + "_f"
	ctx := context.Background()
	if _, err := e.primary.ExecContext(ctx, "create function "+fn+"() returns int language sql as $$ insert into "+tbl+" values (7) returning id $$"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.primary.ExecContext(context.Background(), "drop function if exists "+fn+"()") })
	e.waitReplicated(t)
	// The classifier cannot see into the function: it sends the call to the
	// replica, which refuses it with SQLSTATE 25006; dbwrap retries on the
	// primary and the caller sees no error.
	var id int
	if err := db.QueryRowContext(ctx, "select "+fn+"()").Scan(&id); err != nil || id != 7 {
		t.Fatalf("select %s() = %d, %v; want 7, nil", fn, id, err)
	}
	var n int
	if err := e.primary.QueryRowContext(ctx, "select count(*) from "+tbl).Scan(&n); err != nil || n != 1 {
		t.Errorf("primary has %d rows (err %v), want 1", n, err)
	}
}

func TestPGCohortReplicas(t *testing.T) {
	e := newPGEnv(t)
	cfg := e.config()
	cfg.Replicas = nil
	cfg.CohortReplicas = map[tenant.Cohort][]string{tenant.Canary: {e.replicaDSN}}
	db := e.open(t, cfg)
	bg := context.Background()
	canary := tenant.NewContext(bg, tenant.Labels{Tenant: "acme", Cohort: tenant.Canary})
	stable := tenant.NewContext(bg, tenant.Labels{Tenant: "acme", Cohort: tenant.Stable})
	if a := who(t, canary, db); !a.InRecovery {
		t.Errorf("canary read went to %+v, want the canary replica", a)
	}
	if a := who(t, stable, db); a.InRecovery {
		t.Errorf("stable read went to %+v, want the primary (no default replicas)", a)
	}
	r, err := Explain(canary, db, whoQuery)
	if err != nil || r.Server != "canary-replica-0" || r.Target != TargetReplica {
		t.Errorf("Explain(canary) = %v, %v", r, err)
	}
}

func TestPGReplicaStoppedNoCallerErrors(t *testing.T) {
	e := newPGEnv(t)
	db := e.open(t, e.config())
	ctx := context.Background()
	if a := who(t, ctx, db); !a.InRecovery {
		t.Fatalf("read before the stop went to %+v", a)
	}
	e.lock.makeExclusive(t)
	t.Cleanup(func() { testenv.ReplicaCtl(t, "start") })

	// Each worker reads 1000 times: the replica is stopped once 200 reads
	// are done, and no worker starts its 501st read before the stop has
	// completed, so at least half of the reads run with the replica down.
	const workers, reads = 4, 1000
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	onReplica, onPrimary := 0, 0
	progress := make(chan struct{}, workers*reads)
	stopped := make(chan struct{})
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < reads; i++ {
				if i == reads/2 {
					<-stopped
				}
				var a answer
				err := db.QueryRowContext(ctx, whoQuery).Scan(&a.InRecovery, &a.Port, &a.PID)
				mu.Lock()
				switch {
				case err != nil:
					errs = append(errs, err)
				case a.InRecovery:
					onReplica++
				default:
					onPrimary++
				}
				mu.Unlock()
				progress <- struct{}{}
			}
		}()
	}
	for i := 0; i < 200; i++ {
		<-progress
	}
	testenv.ReplicaCtl(t, "stop")
	close(stopped)
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("%d of %d reads failed while the replica stopped; first: %v", len(errs), workers*reads, errs[0])
	}
	if onPrimary < workers*reads/2 {
		t.Errorf("%d reads ran on the primary, want at least %d (the replica was down for them); %d on the replica", onPrimary, workers*reads/2, onReplica)
	}
	testenv.ReplicaCtl(t, "start")
	eventually(t, "reads return to the restarted replica", func() bool {
		return who(t, ctx, db).InRecovery
	})
}

func TestPGPrimaryDown(t *testing.T) {
	e := newPGEnv(t)
	cfg := e.config()
	cfg.Primary = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/canary_test?sslmode=disable&connect_timeout=5", closedPort(t))
	db := e.open(t, cfg)
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		start := time.Now()
		_, err := db.ExecContext(ctx, "create table dbwrap_never (id int)")
		if err == nil {
			t.Fatal("a write succeeded with the primary down")
		}
		if !errors.Is(err, ErrPrimaryUnavailable) {
			t.Errorf("write error %v does not match ErrPrimaryUnavailable", err)
		}
		var ce *pgconn.ConnectError
		if !errors.As(err, &ce) {
			t.Errorf("write error %v does not wrap the driver's *pgconn.ConnectError", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("write took %v to fail", d)
		}
	}
	for i := 0; i < 100; i++ {
		if a := who(t, ctx, db); !a.InRecovery {
			t.Fatalf("read %d answered by %+v", i, a)
		}
	}
}

func TestPGCloseLeavesNoConnections(t *testing.T) {
	e := newPGEnv(t)
	tbl := e.table(t, "id int")
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	db, err := Open(e.config())
	if err != nil {
		t.Fatal(err)
	}
	waitPolled(t, db)
	ctx := tenant.NewContext(context.Background(), tenant.Labels{Tenant: "acme", UserHash: strings.Repeat("ef", 16)})
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 20; i++ {
				who(t, context.Background(), db)
				if _, err := db.ExecContext(ctx, "insert into "+tbl+" values ($1)", i); err != nil {
					t.Error(err)
					return
				}
				tx, err := db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
				if err != nil {
					t.Error(err)
					return
				}
				who(t, ctx, tx)
				tx.Rollback()
				st, err := db.PrepareContext(ctx, whoQuery)
				if err != nil {
					t.Error(err)
					return
				}
				var a answer
				if err := st.QueryRowContext(ctx).Scan(&a.InRecovery, &a.Port, &a.PID); err != nil {
					t.Error(err)
				}
				st.Close()
			}
		}()
	}
	wg.Wait()
	if n := e.backends(t, e.primary); n == 0 {
		t.Error("no primary connections while open: the count proves nothing")
	}
	if n := e.backends(t, e.replica); n == 0 {
		t.Error("no replica connections while open: the count proves nothing")
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "no connections are left on either server", func() bool {
		return e.backends(t, e.primary) == 0 && e.backends(t, e.replica) == 0
	})
}
