package dbwrap

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/lib/pq"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/reqcanary/canary/tenant"
)

// The drivers the fault tests run with: pgx's stdlib driver and lib/pq.
var faultDrivers = []string{"pgx", "postgres"}

// killBackend terminates the backend pid from a separate plain connection,
// as an administrator (or a crashing server process) would, and waits until
// it is gone.
func (e *pgEnv) killBackend(t *testing.T, server *sql.DB, pid int) {
	t.Helper()
	ctx := context.Background()
	var ok bool
	if err := server.QueryRowContext(ctx, "select pg_terminate_backend($1)", pid).Scan(&ok); err != nil || !ok {
		t.Fatalf("pg_terminate_backend(%d) = %v, %v", pid, ok, err)
	}
	eventually(t, fmt.Sprintf("backend %d is gone", pid), func() bool {
		var n int
		if err := server.QueryRowContext(ctx, "select count(*) from pg_stat_activity where pid = $1", pid).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n == 0
	})
}

// A transaction whose backend dies fails: every later statement, Commit and
// Rollback return errors, no statement or Commit returns driver.ErrBadConn (database/sql
// would retry it), and nothing of the transaction is committed: neither the
// row inserted before the break nor those "inserted" after it (issue 11:
// rows 2-4 used to be committed on a silently reopened connection).
func TestPGTxBackendKilledNeverReconnects(t *testing.T) {
	e := newPGEnv(t)
	for _, drv := range faultDrivers {
		for _, mode := range []string{"exec", "prepared"} {
			t.Run(drv+"/"+mode, func(t *testing.T) {
				cfg := e.config()
				cfg.DriverName = drv
				db := e.open(t, cfg)
				db.SetMaxOpenConns(1) // the broken conn must not be reused either
				tbl := e.table(t, "id int primary key")
				ctx := context.Background()
				tx, err := db.BeginTx(ctx, nil)
				if err != nil {
					t.Fatal(err)
				}
				insert := func(id int) error {
					_, err := tx.ExecContext(ctx, "insert into "+tbl+" values ($1)", id)
					return err
				}
				if mode == "prepared" {
					st, err := tx.PrepareContext(ctx, "insert into "+tbl+" values ($1)")
					if err != nil {
						t.Fatal(err)
					}
					insert = func(id int) error {
						_, err := st.ExecContext(ctx, id)
						return err
					}
				}
				if err := insert(1); err != nil {
					t.Fatal(err)
				}
				var pid int
				if err := tx.QueryRowContext(ctx, "select pg_backend_pid()").Scan(&pid); err != nil {
					t.Fatal(err)
				}
				e.killBackend(t, e.primary, pid)
				for id := 2; id <= 4; id++ {
					err := insert(id)
					if err == nil {
						t.Errorf("insert %d after the backend died succeeded", id)
						continue
					}
					if errors.Is(err, driver.ErrBadConn) {
						t.Errorf("insert %d: %v is driver.ErrBadConn inside a transaction", id, err)
					}
					if id > 2 && !errors.Is(err, ErrConnLost) {
						t.Errorf("insert %d: %v does not match ErrConnLost", id, err)
					}
				}
				if err := tx.Commit(); !errors.Is(err, ErrConnLost) {
					t.Errorf("Commit after the backend died: %v, want ErrConnLost", err)
				}
				if err := tx.Rollback(); err == nil {
					t.Error("Rollback after the backend died and Commit succeeded")
				}
				var n int
				if err := e.primary.QueryRowContext(ctx, "select count(*) from "+tbl).Scan(&n); err != nil || n != 0 {
					t.Errorf("%d rows committed (err %v), want none of rows 1-4", n, err)
				}
				// The pool dropped the broken connection: the DB works.
				if _, err := db.ExecContext(ctx, "insert into "+tbl+" values (5)"); err != nil {
					t.Errorf("a write after the broken transaction: %v", err)
				}
			})
		}
	}
}

// A session pinned by state (an advisory lock, a SET, a temporary table)
// whose backend dies is never replaced by a new backend: the statements that
// follow on the sql.Conn fail, as with the bare driver.
func TestPGPinnedSessionBackendKilledFails(t *testing.T) {
	e := newPGEnv(t)
	ctx := context.Background()
	states := map[string]string{
		"advisory-lock": "select pg_advisory_lock(4712)",
		"set":           "set statement_timeout = '7s'",
		"temp-table":    "create temp table dbwrap_pin_tmp (a int)",
	}
	for _, drv := range faultDrivers {
		for name, state := range states {
			t.Run(drv+"/"+name, func(t *testing.T) {
				cfg := e.config()
				cfg.DriverName = drv
				db := e.open(t, cfg)
				c, err := db.Conn(ctx)
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				if _, err := c.ExecContext(ctx, state); err != nil {
					t.Fatal(err)
				}
				var pid int
				if err := c.QueryRowContext(ctx, "select pg_backend_pid()").Scan(&pid); err != nil {
					t.Fatal(err)
				}
				e.killBackend(t, e.primary, pid)
				for i := 0; i < 3; i++ {
					var got int
					err := c.QueryRowContext(ctx, "select pg_backend_pid()").Scan(&got)
					if err == nil {
						t.Fatalf("statement %d after the backend died ran on backend %d (was %d): the session was replaced", i, got, pid)
					}
					if i > 0 && !errors.Is(err, ErrConnLost) {
						t.Errorf("statement %d after the backend died: %v, want ErrConnLost", i, err)
					}
				}
				c.Close()
				// The pool dropped it: the DB works.
				if a := who(t, ctx, db); a.PID == pid {
					t.Errorf("the dead backend answered: %+v", a)
				}
			})
		}
	}
}

// A read-only transaction at SERIALIZABLE (or stronger) isolation begins on
// the primary: a hot standby refuses it with SQLSTATE 0A000.
func TestPGReadOnlySerializableTxOnPrimary(t *testing.T) {
	e := newPGEnv(t)
	db := e.open(t, e.config())
	ctx := context.Background()
	for _, level := range []sql.IsolationLevel{sql.LevelSerializable} {
		tx, err := db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true, Isolation: level})
		if err != nil {
			t.Fatalf("%v read-only BeginTx: %v", level, err)
		}
		a := who(t, ctx, tx)
		if a.InRecovery || a.Port != e.primaryPort {
			t.Errorf("%v read-only transaction ran on %+v, want the primary", level, a)
		}
		var iso string
		if err := tx.QueryRowContext(ctx, "show transaction_isolation").Scan(&iso); err != nil || iso != "serializable" {
			t.Errorf("transaction_isolation = %q (err %v), want serializable", iso, err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	// Weaker isolation levels still begin on the replica.
	tx, err := db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true, Isolation: sql.LevelRepeatableRead})
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if a := who(t, ctx, tx); !a.InRecovery {
		t.Errorf("repeatable read read-only transaction ran on %+v, want the replica", a)
	}
}

// A read the classifier cannot see writing (a function that inserts; an
// EXPLAIN ANALYZE spelled with a quoted option) is refused by the replica and
// retried on the primary; it then records the write position like a
// classified write, so the same user's next read, in a later request, sees
// the row while the replica's replay is paused.
func TestPGRefusedReadRecordsWritePosition(t *testing.T) {
	for _, drv := range faultDrivers {
		t.Run(drv, func(t *testing.T) {
			e := newPGEnv(t)
			cfg := e.config()
			cfg.DriverName = drv
			cfg.MaxReplicaLag = time.Hour // the paused replica stays in service
			cfg.TokenTTL = time.Minute
			db := e.open(t, cfg)
			tbl := e.table(t, "id int primary key")
			fn := tbl + "_f"
			bg := context.Background()
			if _, err := e.primary.ExecContext(bg, "create function "+fn+"(i int) returns int language sql as $$ insert into "+tbl+" values (i) returning id $$"); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { e.primary.ExecContext(context.Background(), "drop function if exists "+fn+"(int)") })
			e.waitReplicated(t)
			e.pauseReplay(t)
			user := tenant.Labels{Tenant: "acme", UserHash: strings.Repeat("7a", 16), Cohort: tenant.Stable}
			writes := map[int]string{
				1: "select " + fn + "(1)",
				2: `explain ("analyze") select ` + fn + "(2)",
				3: `explain ("analyze", costs off) select ` + fn + "(3)",
				4: `explain ("analyze") insert into ` + tbl + " values (4)",
			}
			for id, q := range writes {
				rows, err := db.QueryContext(tenant.NewContext(bg, user), q)
				if err != nil {
					t.Fatalf("%s: %v", q, err)
				}
				for rows.Next() {
				}
				if err := rows.Close(); err != nil {
					t.Fatal(err)
				}
				var n int
				if err := db.QueryRowContext(tenant.NewContext(bg, user), "select count(*) from "+tbl+" where id = $1", id).Scan(&n); err != nil || n != 1 {
					t.Errorf("after %q the user's next request sees %d rows (err %v), want its write", q, n, err)
				}
			}
		})
	}
}

// Reads cut short by their own context (client-side deadline or cancel) say
// nothing about the replica: it stays in service and keeps serving reads.
func TestPGCancelledReadsKeepReplica(t *testing.T) {
	e := newPGEnv(t)
	for _, drv := range faultDrivers {
		t.Run(drv, func(t *testing.T) {
			reader := sdkmetric.NewManualReader()
			mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
			t.Cleanup(func() { mp.Shutdown(context.Background()) })
			cfg := e.config()
			cfg.DriverName = drv
			cfg.MeterProvider = mp
			cfg.RecoverAfter = time.Hour // an ejection would last the whole test
			db := e.open(t, cfg)
			db.SetMaxOpenConns(2) // reuse the conns whose reads were cancelled
			bg := context.Background()
			cancelled := 0
			for i := 0; i < 150; i++ {
				// On one sql.Conn, database/sql validates nothing between two
				// statements: the read after a cancelled one meets the inner
				// connection the cancel left behind.
				c, err := db.Conn(bg)
				if err != nil {
					t.Fatal(err)
				}
				ctx, cancel := context.WithTimeout(bg, time.Duration(rand.IntN(4000))*time.Microsecond)
				var s string
				if err := c.QueryRowContext(ctx, "select pg_sleep(0.002)::text").Scan(&s); err != nil {
					cancelled++
				}
				cancel()
				var a answer
				err = c.QueryRowContext(bg, whoQuery).Scan(&a.InRecovery, &a.Port, &a.PID)
				if errors.Is(err, sql.ErrConnDone) {
					// database/sql closed the Conn: the driver answered the
					// cancelled read with ErrBadConn (as it does bare).
					a = who(t, bg, db)
				} else if err != nil {
					t.Fatalf("read %d after %d cancelled reads: %v", i, cancelled, err)
				}
				if !a.InRecovery || a.Port != e.replicaPort {
					r, _ := Explain(bg, db, whoQuery)
					t.Fatalf("read %d after %d cancelled reads went to %+v, want the replica (Explain now: %v; %d down events)", i, cancelled, a, r, collectHealth(t, reader, "replica-0").downs)
				}
				c.Close()
			}
			if cancelled == 0 {
				t.Fatal("no read was cancelled: the test proves nothing")
			}
			if r, err := Explain(bg, db, "select 1"); err != nil || r.Target != TargetReplica || r.Reason != ReasonRead {
				t.Errorf("Explain = %v, %v; want the replica (%s)", r, err, ReasonRead)
			}
			if h := collectHealth(t, reader, "replica-0"); h.downs != 0 {
				t.Errorf("%d replica down events after %d cancelled reads, want 0", h.downs, cancelled)
			}
			t.Logf("%s: %d of 150 reads cancelled", drv, cancelled)
		})
	}
}

// Errors from the server reach the caller as the driver's own type: a type
// assertion on the returned error works as with the bare driver (pgx wraps
// the server's error of a failed implicit prepare in *pgconn.PrepareError
// itself; errors.As finds the *pgconn.PgError in it either way).
func TestPGDriverErrorTypesKept(t *testing.T) {
	e := newPGEnv(t)
	tbl := e.table(t, "id int primary key")
	ctx := context.Background()
	if _, err := e.primary.ExecContext(ctx, "insert into "+tbl+" values (1)"); err != nil {
		t.Fatal(err)
	}
	e.waitReplicated(t)
	cases := []struct {
		name, query, code string
		exec              bool
	}{
		{"unique-violation/exec", "insert into " + tbl + " values (1)", "23505", true},
		{"unique-violation/query", "insert into " + tbl + " values (1) returning id", "23505", false},
		{"syntax-error/exec", "selec 1", "42601", true},
		{"syntax-error/read", "select from where", "42601", false},
		{"undefined-table/read", "select * from " + tbl + "_missing", "42P01", false},
	}
	run := func(db *sql.DB, q string, exec bool) error {
		if exec {
			_, err := db.ExecContext(ctx, q)
			return err
		}
		rows, err := db.QueryContext(ctx, q)
		if err != nil {
			return err
		}
		for rows.Next() {
		}
		if err := rows.Err(); err != nil {
			rows.Close()
			return err
		}
		return rows.Close()
	}
	for _, drv := range faultDrivers {
		cfg := e.config()
		cfg.DriverName = drv
		db := e.open(t, cfg)
		bare, err := sql.Open(drv, e.primaryDSN)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { bare.Close() })
		for _, tc := range cases {
			t.Run(drv+"/"+tc.name, func(t *testing.T) {
				want := run(bare, tc.query, tc.exec)
				err := run(db, tc.query, tc.exec)
				if err == nil || want == nil {
					t.Fatalf("error %v, bare driver %v; want both to fail", err, want)
				}
				if fmt.Sprintf("%T", err) != fmt.Sprintf("%T", want) {
					t.Errorf("error type %T (%v), bare driver %T", err, err, want)
				}
				switch drv {
				case "pgx":
					var pe *pgconn.PgError
					if !errors.As(err, &pe) || pe.Code != tc.code {
						t.Errorf("errors.As(*pgconn.PgError) on %v: code %v, want %s", err, pe, tc.code)
					}
					if _, direct := want.(*pgconn.PgError); direct {
						if _, ok := err.(*pgconn.PgError); !ok {
							t.Errorf("err.(*pgconn.PgError) failed on %T: %v", err, err)
						}
					}
				case "postgres":
					pe, ok := err.(*pq.Error)
					if !ok || string(pe.Code) != tc.code {
						t.Errorf("err.(*pq.Error) on %T %v: want code %s", err, err, tc.code)
					}
				}
			})
		}
	}
	// The two the issue names, by type assertion as callers write it.
	cfg := e.config()
	db := e.open(t, cfg)
	for q, code := range map[string]string{"insert into " + tbl + " values (1)": "23505", "selec 1": "42601"} {
		_, err := db.ExecContext(ctx, q)
		if pe, ok := err.(*pgconn.PgError); !ok || pe.Code != code {
			t.Errorf("%s: err.(*pgconn.PgError) on %T %v, want code %s", q, err, err, code)
		}
	}
}
