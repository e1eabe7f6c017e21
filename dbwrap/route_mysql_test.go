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

	"github.com/go-sql-driver/mysql"
	"go.uber.org/goleak"

	"github.com/reqcanary/canary/internal/testenv"
	"github.com/reqcanary/canary/tenant"
)

func TestMySQLReadsOnReplicaWritesOnPrimary(t *testing.T) {
	e := newMyEnv(t)
	tbl := e.table(t, "id INT AUTO_INCREMENT PRIMARY KEY, v INT")
	ctx := context.Background()
	if _, err := e.primary.ExecContext(ctx, "CREATE SEQUENCE "+e.db+".s"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.primary.ExecContext(ctx, "INSERT INTO "+tbl+" (v) VALUES (0)"); err != nil {
		t.Fatal(err)
	}
	e.waitReplicated(t)
	db := e.open(t, e.config())

	if a := myWho(t, ctx, db); a.ServerID != e.replicaID || !a.ReadOnly {
		t.Errorf("plain read answered by %+v, want the replica (server_id %d)", a, e.replicaID)
	}
	if a := myWho(t, ctx, db); a.ServerID != e.replicaID {
		t.Errorf("backtick/comment read answered by %+v", a)
	}
	who := "@@server_id, @@read_only, @@port"
	readCases := map[string]string{
		"backticks": "SELECT " + who + " FROM `" + e.db + "`.`t` LIMIT 1",
		"comments":  "SELECT " + who + " # , GET_LOCK('x', 1)\n-- FOR UPDATE\n",
		"sleep":     "SELECT " + who + " FROM (SELECT SLEEP(0)) s",
	}
	primaryCases := map[string]string{
		"for-update":     "SELECT " + who + " FROM " + tbl + " LIMIT 1 FOR UPDATE",
		"for-share":      "SELECT " + who + " FROM " + tbl + " LIMIT 1 LOCK IN SHARE MODE",
		"nextval":        "SELECT @@server_id, @@read_only, NEXTVAL(" + e.db + ".s)",
		"next-value-for": "SELECT @@server_id, @@read_only, NEXT VALUE FOR " + e.db + ".s",
		"last-insert-id": "SELECT @@server_id, @@read_only, LAST_INSERT_ID()",
		"executable":     "SELECT " + who + " /*!100000 FROM " + tbl + " LIMIT 1 FOR UPDATE */",
		"hint":           "/* canary:primary */ SELECT " + who,
		"hash-hint":      "SELECT " + who + " # canary:primary",
		"with-primary":   "SELECT " + who,
		"release-lock":   "SELECT @@server_id, @@read_only, COALESCE(RELEASE_LOCK('dbwrap-none'), 0)",
	}
	for name, q := range readCases {
		var a myAnswer
		if err := db.QueryRowContext(ctx, q).Scan(&a.ServerID, &a.ReadOnly, &a.Port); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if a.ServerID != e.replicaID {
			t.Errorf("%s: answered by %+v, want the replica", name, a)
		}
	}
	for name, q := range primaryCases {
		qctx := ctx
		if name == "with-primary" {
			qctx = WithPrimary(ctx)
		}
		var a myAnswer
		if err := db.QueryRowContext(qctx, q).Scan(&a.ServerID, &a.ReadOnly, &a.Port); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if a.ServerID != e.primaryID || a.ReadOnly {
			t.Errorf("%s: answered by %+v, want the primary (server_id %d)", name, a, e.primaryID)
		}
	}
	// Writes in MySQL's forms run on the primary: the replica would refuse them.
	for _, q := range []string{
		"INSERT INTO " + tbl + " (id, v) VALUES (1, 5) ON DUPLICATE KEY UPDATE v = v + 1",
		"REPLACE INTO " + tbl + " (id, v) VALUES (2, 7)",
		"UPDATE `" + e.db + "`.`t` SET v = v + 1 WHERE id = 2",
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	// A write through Query runs on the primary too.
	rows, err := db.QueryContext(ctx, "INSERT INTO "+tbl+" (v) VALUES (9)")
	if err != nil {
		t.Fatal(err)
	}
	rows.Close()
	// Rows: (1, 0+1) updated on the duplicate key, (2, 7+1), (3, 9).
	var n, sum int
	if err := e.primary.QueryRowContext(ctx, "SELECT COUNT(*), SUM(v) FROM "+tbl).Scan(&n, &sum); err != nil || n != 3 || sum != 1+8+9 {
		t.Errorf("primary has %d rows summing to %d (err %v), want 3 rows summing to %d", n, sum, err, 1+8+9)
	}
	if r, err := Explain(ctx, db, "SELECT 1 FROM t LOCK IN SHARE MODE"); err != nil || r.Target != TargetPrimary || r.Reason != reasonLockingClause {
		t.Errorf("Explain(LOCK IN SHARE MODE) = %v, %v", r, err)
	}
}

func TestMySQLTransactionStaysOnOnePrimaryConnection(t *testing.T) {
	e := newMyEnv(t)
	tbl := e.table(t, "id INT PRIMARY KEY")
	db := e.open(t, e.config())
	ctx := context.Background()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	const q = "SELECT @@server_id, CONNECTION_ID()"
	var id, conn0 int
	if err := tx.QueryRowContext(ctx, q).Scan(&id, &conn0); err != nil {
		t.Fatal(err)
	}
	if id != e.primaryID {
		t.Fatalf("transaction began on server %d, want the primary %d", id, e.primaryID)
	}
	for i := 1; i < 100; i++ {
		if i%2 == 0 {
			if _, err := tx.ExecContext(ctx, "INSERT INTO "+tbl+" VALUES (?)", i); err != nil {
				t.Fatal(err)
			}
			continue
		}
		var sid, cid int
		if err := tx.QueryRowContext(ctx, q).Scan(&sid, &cid); err != nil {
			t.Fatal(err)
		}
		if sid != id || cid != conn0 {
			t.Fatalf("statement %d ran on server %d connection %d, want %d/%d", i, sid, cid, id, conn0)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := e.primary.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+tbl).Scan(&n); err != nil || n != 49 {
		t.Errorf("committed %d rows (err %v), want 49", n, err)
	}
}

func TestMySQLReadOnlyTransactionOnOneReplica(t *testing.T) {
	e := newMyEnv(t)
	db := e.open(t, e.config())
	ctx := context.Background()
	tx, err := db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	const q = "SELECT @@server_id, CONNECTION_ID()"
	var id, conn0 int
	if err := tx.QueryRowContext(ctx, q).Scan(&id, &conn0); err != nil {
		t.Fatal(err)
	}
	if id != e.replicaID {
		t.Fatalf("read-only transaction began on server %d, want the replica %d", id, e.replicaID)
	}
	for i := 1; i < 100; i++ {
		var sid, cid int
		if err := tx.QueryRowContext(ctx, q).Scan(&sid, &cid); err != nil {
			t.Fatal(err)
		}
		if sid != id || cid != conn0 {
			t.Fatalf("statement %d ran on server %d connection %d, want %d/%d", i, sid, cid, id, conn0)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

func TestMySQLReadYourWritesWithApplyHeld(t *testing.T) {
	e := newMyEnv(t)
	tbl := e.table(t, "id INT PRIMARY KEY")
	cfg := e.config()
	cfg.MaxReplicaLag = time.Hour // the held replica stays in service for fresh contexts
	db := e.open(t, cfg)
	release := e.holdReplicaApply(t)

	bg := context.Background()
	reqCtx := tenant.NewContext(bg, tenant.Labels{Tenant: "acme", Cohort: tenant.Stable})
	const pairs = 1000
	for i := 1; i <= pairs; i++ {
		if _, err := db.ExecContext(reqCtx, "INSERT INTO "+tbl+" VALUES (?)", i); err != nil {
			t.Fatal(err)
		}
		var n int
		if err := db.QueryRowContext(reqCtx, "SELECT COUNT(*) FROM "+tbl+" WHERE id = ?", i).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 1 {
			t.Fatalf("pair %d: the request did not read its own write", i)
		}
	}
	if a := myWho(t, reqCtx, db); a.ServerID != e.primaryID {
		t.Errorf("a read of the writing request went to %+v while the replica is held", a)
	}
	token, ok := ConsistencyToken(reqCtx)
	if !ok {
		t.Fatal("no consistency token after writes")
	}
	// The token is the GTID sequence number of the last write.
	var gtid string
	if err := e.primary.QueryRowContext(bg, "SELECT @@gtid_binlog_pos").Scan(&gtid); err != nil {
		t.Fatal(err)
	}
	seq, _, err := gtidSeq(gtid, 0)
	if err != nil || token != formatLSN(seq) {
		t.Errorf("token %s, want the primary's GTID position %s as %s (err %v)", token, gtid, formatLSN(seq), err)
	}

	// A fresh request reads from the lagging replica and does not see the writes.
	fresh := tenant.NewContext(bg, tenant.Labels{Tenant: "acme", Cohort: tenant.Stable})
	if a := myWho(t, fresh, db); a.ServerID != e.replicaID {
		t.Errorf("fresh request answered by %+v, want the replica", a)
	}
	var n int
	if err := db.QueryRowContext(fresh, "SELECT COUNT(*) FROM "+tbl).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("fresh request on the held replica sees %d rows, want 0 (the lag is not real)", n)
	}
	// A downstream service given the token reads the writes.
	downstream := WithConsistencyToken(bg, token)
	if err := db.QueryRowContext(downstream, "SELECT COUNT(*) FROM "+tbl).Scan(&n); err != nil || n != pairs {
		t.Errorf("with the token: %d rows (err %v), want %d", n, err, pairs)
	}
	if r, err := Explain(downstream, db, "SELECT 1"); err != nil || r.Target != TargetPrimary || r.Reason != ReasonTokenAhead || r.Token != token {
		t.Errorf("Explain with the token = %v, %v; want the primary, %s, token %s", r, err, ReasonTokenAhead, token)
	}

	// Once the replica applies the writes, reads return to it.
	release()
	eventually(t, "the writing request reads from the replica again", func() bool {
		return myWho(t, reqCtx, db).ServerID == e.replicaID
	})
	if err := db.QueryRowContext(reqCtx, "SELECT COUNT(*) FROM "+tbl).Scan(&n); err != nil || n != pairs {
		t.Errorf("after release, the replica has %d rows (err %v), want %d", n, err, pairs)
	}
	if r, err := Explain(downstream, db, "SELECT 1"); err != nil || r.Target != TargetReplica || r.Reason != ReasonCaughtUp {
		t.Errorf("Explain with the token after release = %v, %v; want the replica, %s", r, err, ReasonCaughtUp)
	}
}

func TestMySQLConsistencyWaitReadsFromReplica(t *testing.T) {
	e := newMyEnv(t)
	tbl := e.table(t, "id INT PRIMARY KEY")
	cfg := e.config()
	cfg.ConsistencyWait = 2 * time.Second
	cfg.PollInterval = time.Hour // only the probe can see the replica catch up
	db := e.open(t, cfg)
	bg := context.Background()
	onReplica := 0
	for i := 1; i <= 50; i++ {
		ctx := tenant.NewContext(bg, tenant.Labels{Tenant: "acme", Cohort: tenant.Stable})
		if _, err := db.ExecContext(ctx, "INSERT INTO "+tbl+" VALUES (?)", i); err != nil {
			t.Fatal(err)
		}
		var n, id int
		if err := db.QueryRowContext(ctx, "SELECT COUNT(*), @@server_id FROM "+tbl+" WHERE id = ?", i).Scan(&n, &id); err != nil {
			t.Fatal(err)
		}
		if n != 1 {
			t.Fatalf("write %d not read back (server %d)", i, id)
		}
		if id == e.replicaID {
			onReplica++
		}
	}
	if onReplica < 45 {
		t.Errorf("%d of 50 reads after a write waited for the replica, want nearly all", onReplica)
	}
}

func TestMySQLUserTokenAcrossRequests(t *testing.T) {
	e := newMyEnv(t)
	tbl := e.table(t, "id INT PRIMARY KEY")
	cfg := e.config()
	cfg.MaxReplicaLag = time.Hour
	cfg.TokenTTL = time.Minute
	db := e.open(t, cfg)
	e.holdReplicaApply(t)
	bg := context.Background()
	user := tenant.Labels{Tenant: "acme", UserHash: strings.Repeat("ab", 16), Cohort: tenant.Stable}
	other := tenant.Labels{Tenant: "acme", UserHash: strings.Repeat("cd", 16), Cohort: tenant.Stable}
	if _, err := db.ExecContext(tenant.NewContext(bg, user), "INSERT INTO "+tbl+" VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := db.QueryRowContext(tenant.NewContext(bg, user), "SELECT COUNT(*) FROM "+tbl).Scan(&n); err != nil || n != 1 {
		t.Errorf("the same user's next request sees %d rows (err %v), want 1", n, err)
	}
	if err := db.QueryRowContext(tenant.NewContext(bg, other), "SELECT COUNT(*) FROM "+tbl).Scan(&n); err != nil || n != 0 {
		t.Errorf("another user's request sees %d rows (err %v), want 0 from the held replica", n, err)
	}
}

func TestMySQLSessionStatePinsToPrimary(t *testing.T) {
	e := newMyEnv(t)
	tbl := e.table(t, "id INT PRIMARY KEY")
	db := e.open(t, e.config())
	db.SetMaxOpenConns(1)
	ctx := context.Background()
	cases := []struct {
		name, stmt string
		check      string // a read whose answer shows the state, and its wanted value
		want       string
	}{
		{"set-var", "SET @dbwrap_x = 42", "SELECT @dbwrap_x", "42"},
		{"select-assign", "SELECT @dbwrap_y := 7", "SELECT @dbwrap_y", "7"},
		{"into-var", "SELECT 5 INTO @dbwrap_z", "SELECT @dbwrap_z", "5"},
		{"set-session", "SET SESSION max_join_size = 12345", "SELECT @@SESSION.max_join_size", "12345"},
		{"get-lock", "SELECT GET_LOCK('" + e.db + "', 1)", "SELECT IS_USED_LOCK('" + e.db + "') = CONNECTION_ID()", "1"},
		{"temp-table", "CREATE TEMPORARY TABLE " + e.db + ".tmp (a INT)", "SELECT COUNT(*) FROM " + e.db + ".tmp", "0"},
		{"lock-tables", "LOCK TABLES " + tbl + " READ", "SELECT COUNT(*) FROM " + tbl, "0"},
		{"prepare", "PREPARE dbwrap_s FROM 'SELECT 11'", "EXECUTE dbwrap_s", "11"},
		{"found-rows", "SELECT SQL_CALC_FOUND_ROWS * FROM " + tbl + " LIMIT 1", "SELECT FOUND_ROWS()", "0"},
		{"last-insert-id-expr", "SELECT LAST_INSERT_ID(99)", "SELECT LAST_INSERT_ID()", "99"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			conn, err := db.Conn(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if a := myWho(t, ctx, conn); a.ServerID != e.replicaID {
				t.Fatalf("first read went to %+v, want the replica", a)
			}
			rows, err := conn.QueryContext(ctx, c.stmt)
			if err != nil {
				t.Fatal(err)
			}
			rows.Close()
			var got string
			if err := conn.QueryRowContext(ctx, c.check).Scan(&got); err != nil || got != c.want {
				t.Errorf("%s = %q (err %v), want %q: the read did not see the session's state", c.check, got, err, c.want)
			}
			for i := 0; i < 3; i++ {
				if a := myWho(t, ctx, conn); a.ServerID != e.primaryID {
					t.Fatalf("read after %q went to %+v, want the primary", c.stmt, a)
				}
			}
			if c.name == "lock-tables" {
				conn.ExecContext(ctx, "UNLOCK TABLES")
			}
		})
	}
	// The pooled conn is reset when reused: reads go to the replica again.
	if a := myWho(t, ctx, db); a.ServerID != e.replicaID {
		t.Errorf("read after the pooled conn was reset went to %+v, want the replica", a)
	}
}

func TestMySQLReadOnlyRefusalRetriedOnPrimary(t *testing.T) {
	e := newMyEnv(t)
	tbl := e.table(t, "id INT")
	ctx := context.Background()
	fn := e.db + ".f"
	if _, err := e.primary.ExecContext(ctx, "CREATE FUNCTION "+fn+"() RETURNS INT DETERMINISTIC MODIFIES SQL DATA BEGIN INSERT INTO "+tbl+" VALUES (7); RETURN 7; END"); err != nil {
		t.Fatal(err)
	}
	e.waitReplicated(t)
	cfg := e.config()
	cfg.MaxReplicaLag = time.Hour
	db := e.open(t, cfg)
	// The replica refuses the hidden write directly (error 1290)...
	bare, err := sql.Open("mysql", e.replicaDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer bare.Close()
	var id int
	err = bare.QueryRowContext(ctx, "SELECT "+fn+"()").Scan(&id)
	var me *mysql.MySQLError
	if !errors.As(err, &me) || me.Number != 1290 || !MariaDB().IsReadOnlyError(err) {
		t.Fatalf("the replica answered %v to a writing function, want error 1290", err)
	}
	// ... and dbwrap retries it on the primary once, recording its position.
	// (A replica held with FLUSH TABLES WITH READ LOCK would make the
	// function wait for the lock instead of refusing it.)
	reqCtx := tenant.NewContext(ctx, tenant.Labels{Tenant: "acme", Cohort: tenant.Stable})
	if err := db.QueryRowContext(reqCtx, "SELECT "+fn+"()").Scan(&id); err != nil || id != 7 {
		t.Fatalf("SELECT f() = %d, %v; want 7, nil", id, err)
	}
	var n int
	if err := e.primary.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+tbl).Scan(&n); err != nil || n != 1 {
		t.Errorf("primary has %d rows (err %v), want 1", n, err)
	}
	var gtid string
	if err := e.primary.QueryRowContext(ctx, "SELECT @@gtid_binlog_pos").Scan(&gtid); err != nil {
		t.Fatal(err)
	}
	seq, _, _ := gtidSeq(gtid, 0)
	if tok, ok := ConsistencyToken(reqCtx); !ok || tok != formatLSN(seq) {
		t.Errorf("consistency token after the write retried on the primary = %q, %v; want %s (GTID %s)", tok, ok, formatLSN(seq), gtid)
	}
	if err := db.QueryRowContext(reqCtx, "SELECT COUNT(*) FROM "+tbl).Scan(&n); err != nil || n != 1 {
		t.Errorf("the request reads %d rows after its retried write (err %v), want 1", n, err)
	}
}

func TestMySQLStoppedSQLThreadTakesReplicaOut(t *testing.T) {
	e := newMyEnv(t)
	tbl := e.table(t, "id INT PRIMARY KEY")
	db := e.open(t, e.config())
	ctx := context.Background()
	if a := myWho(t, ctx, db); a.ServerID != e.replicaID {
		t.Fatalf("read before the stop went to %+v", a)
	}
	e.stopSQLThread(t)
	eventually(t, "the replica with a stopped SQL thread is taken out", func() bool {
		r, err := Explain(ctx, db, "SELECT 1")
		return err == nil && r.Target == TargetPrimary && r.Reason == ReasonNoHealthyReplica
	})
	for i := 0; i < 20; i++ {
		if a := myWho(t, ctx, db); a.ServerID != e.primaryID {
			t.Fatalf("read %d went to %+v with the SQL thread stopped", i, a)
		}
	}
	// Read-after-write pairs never read stale data meanwhile.
	reqCtx := tenant.NewContext(ctx, tenant.Labels{Tenant: "acme", Cohort: tenant.Stable})
	for i := 1; i <= 1000; i++ {
		if _, err := db.ExecContext(reqCtx, "INSERT INTO "+tbl+" VALUES (?)", i); err != nil {
			t.Fatal(err)
		}
		var n int
		if err := db.QueryRowContext(reqCtx, "SELECT COUNT(*) FROM "+tbl+" WHERE id = ?", i).Scan(&n); err != nil || n != 1 {
			t.Fatalf("pair %d: read %d rows (err %v), want its own write", i, n, err)
		}
	}
	start := time.Now()
	e.startSQLThread(t)
	eventually(t, "the replica is readmitted", func() bool {
		return myWho(t, ctx, db).ServerID == e.replicaID
	})
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Errorf("readmitted %v after the restart, before RecoverAfter (300ms)", d)
	}
}

func TestMySQLReadOnlyOffTakesReplicaOut(t *testing.T) {
	e := newMyEnv(t)
	db := e.open(t, e.config())
	ctx := context.Background()
	e.lock.makeExclusive(t)
	t.Cleanup(func() {
		if _, err := e.replica.ExecContext(context.Background(), "SET GLOBAL read_only = 1"); err != nil {
			t.Errorf("restore read_only: %v", err)
		}
	})
	if _, err := e.replica.ExecContext(ctx, "SET GLOBAL read_only = 0"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the writable replica is taken out", func() bool {
		r, err := Explain(ctx, db, "SELECT 1")
		return err == nil && r.Target == TargetPrimary
	})
	if a := myWho(t, ctx, db); a.ServerID != e.primaryID {
		t.Errorf("read went to %+v with read_only off on the replica", a)
	}
}

func TestMySQLReplicaCutNoCallerErrors(t *testing.T) {
	e := newMyEnv(t)
	proxy := testenv.NewFaultProxy(t, "127.0.0.1:"+fmt.Sprint(myWho(t, context.Background(), e.replica).Port))
	cfg := e.config()
	rc, err := mysql.ParseDSN(e.replicaDSN)
	if err != nil {
		t.Fatal(err)
	}
	rc.Addr = proxy.Addr()
	cfg.Replicas = []string{rc.FormatDSN()}
	db := e.open(t, cfg)
	ctx := context.Background()
	if a := myWho(t, ctx, db); a.ServerID != e.replicaID {
		t.Fatalf("read before the cut went to %+v", a)
	}
	const workers, reads = 4, 1000
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	onReplica, onPrimary := 0, 0
	progress := make(chan struct{}, workers*reads)
	cut := make(chan struct{})
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < reads; i++ {
				if i == reads/2 {
					<-cut
				}
				var a myAnswer
				err := db.QueryRowContext(ctx, myWhoQuery).Scan(&a.ServerID, &a.ReadOnly, &a.Port)
				mu.Lock()
				switch {
				case err != nil:
					errs = append(errs, err)
				case a.ServerID == e.replicaID:
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
	proxy.Set(testenv.ProxyCut)
	close(cut)
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("%d of %d reads failed while the replica was cut; first: %v", len(errs), workers*reads, errs[0])
	}
	if onPrimary < workers*reads/2 {
		t.Errorf("%d reads ran on the primary, want at least %d; %d on the replica", onPrimary, workers*reads/2, onReplica)
	}
	proxy.Set(testenv.ProxyPass)
	eventually(t, "reads return to the replica", func() bool {
		return myWho(t, ctx, db).ServerID == e.replicaID
	})
}

func TestMySQLPrimaryDown(t *testing.T) {
	e := newMyEnv(t)
	cfg := e.config()
	pc, err := mysql.ParseDSN(e.primaryDSN)
	if err != nil {
		t.Fatal(err)
	}
	pc.Addr = fmt.Sprintf("127.0.0.1:%d", closedPort(t))
	cfg.Primary = pc.FormatDSN()
	db := e.open(t, cfg)
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		start := time.Now()
		_, err := db.ExecContext(ctx, "CREATE TABLE "+e.db+".never (id INT)")
		if err == nil {
			t.Fatal("a write succeeded with the primary down")
		}
		if !errors.Is(err, ErrPrimaryUnavailable) {
			t.Errorf("write error %v does not match ErrPrimaryUnavailable", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("write took %v to fail", d)
		}
	}
	for i := 0; i < 100; i++ {
		if a := myWho(t, ctx, db); a.ServerID != e.replicaID {
			t.Fatalf("read %d answered by %+v", i, a)
		}
	}
}

func TestMySQLCloseLeavesNoConnections(t *testing.T) {
	e := newMyEnv(t)
	tbl := e.table(t, "id INT")
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
				myWho(t, context.Background(), db)
				if _, err := db.ExecContext(ctx, "INSERT INTO "+tbl+" VALUES (?)", i); err != nil {
					t.Error(err)
					return
				}
				tx, err := db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
				if err != nil {
					t.Error(err)
					return
				}
				myWho(t, ctx, tx)
				tx.Rollback()
				st, err := db.PrepareContext(ctx, myWhoQuery)
				if err != nil {
					t.Error(err)
					return
				}
				var a myAnswer
				if err := st.QueryRowContext(ctx).Scan(&a.ServerID, &a.ReadOnly, &a.Port); err != nil {
					t.Error(err)
				}
				st.Close()
			}
		}()
	}
	wg.Wait()
	if n := e.conns(t, e.primary); n == 0 {
		t.Error("no primary connections while open: the count proves nothing")
	}
	if n := e.conns(t, e.replica); n == 0 {
		t.Error("no replica connections while open: the count proves nothing")
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "no connections are left on either server", func() bool {
		return e.conns(t, e.primary) == 0 && e.conns(t, e.replica) == 0
	})
}
