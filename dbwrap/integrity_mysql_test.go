package dbwrap

import (
	"context"
	"database/sql/driver"
	"errors"
	"testing"
)

// killMyConn kills a MariaDB connection by id, from the admin pool.
func (e *myEnv) killMyConn(t *testing.T, id int) {
	t.Helper()
	if _, err := e.primary.ExecContext(context.Background(), "KILL CONNECTION ?", id); err != nil {
		t.Fatal(err)
	}
}

// A transaction whose MariaDB connection is killed fails: later statements,
// Commit and Rollback return errors (never driver.ErrBadConn, which
// database/sql would retry on a new connection), and nothing of it is
// committed.
func TestMySQLTxConnKilledNeverReconnects(t *testing.T) {
	e := newMyEnv(t)
	tbl := e.table(t, "id INT PRIMARY KEY")
	db := e.open(t, e.config())
	db.SetMaxOpenConns(1)
	ctx := context.Background()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO "+tbl+" VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	var id int
	if err := tx.QueryRowContext(ctx, "SELECT CONNECTION_ID()").Scan(&id); err != nil {
		t.Fatal(err)
	}
	e.killMyConn(t, id)
	for i := 2; i <= 4; i++ {
		_, err := tx.ExecContext(ctx, "INSERT INTO "+tbl+" VALUES (?)", i)
		if err == nil {
			t.Errorf("insert %d after the connection was killed succeeded", i)
			continue
		}
		if errors.Is(err, driver.ErrBadConn) {
			t.Errorf("insert %d: %v is driver.ErrBadConn inside a transaction", i, err)
		}
		if i > 2 && !errors.Is(err, ErrConnLost) {
			t.Errorf("insert %d: %v does not match ErrConnLost", i, err)
		}
	}
	if err := tx.Commit(); !errors.Is(err, ErrConnLost) {
		t.Errorf("Commit after the kill: %v, want ErrConnLost", err)
	}
	var n int
	if err := e.primary.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+tbl).Scan(&n); err != nil || n != 0 {
		t.Errorf("%d rows committed (err %v), want none", n, err)
	}
	if _, err := db.ExecContext(ctx, "INSERT INTO "+tbl+" VALUES (5)"); err != nil {
		t.Errorf("a write after the broken transaction: %v", err)
	}
}

// A session pinned by state whose MariaDB connection is killed is never
// replaced by a new connection: the statements that follow fail.
func TestMySQLPinnedSessionConnKilledFails(t *testing.T) {
	e := newMyEnv(t)
	ctx := context.Background()
	for name, state := range map[string]string{
		"get-lock":   "SELECT GET_LOCK('" + e.db + "', 1)",
		"set-var":    "SET @dbwrap_pin = 1",
		"temp-table": "CREATE TEMPORARY TABLE " + e.db + ".pin_tmp (a INT)",
	} {
		t.Run(name, func(t *testing.T) {
			db := e.open(t, e.config())
			c, err := db.Conn(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			rows, err := c.QueryContext(ctx, state)
			if err != nil {
				t.Fatal(err)
			}
			rows.Close()
			var id int
			if err := c.QueryRowContext(ctx, "SELECT CONNECTION_ID()").Scan(&id); err != nil {
				t.Fatal(err)
			}
			e.killMyConn(t, id)
			for i := 0; i < 3; i++ {
				var got int
				err := c.QueryRowContext(ctx, "SELECT CONNECTION_ID()").Scan(&got)
				if err == nil {
					t.Fatalf("statement %d after the kill ran on connection %d (was %d): the session was replaced", i, got, id)
				}
				if i > 0 && !errors.Is(err, ErrConnLost) {
					t.Errorf("statement %d after the kill: %v, want ErrConnLost", i, err)
				}
			}
			c.Close()
			if a := myWho(t, ctx, db); a.ServerID != e.replicaID {
				t.Errorf("a read after the lost session went to %+v, want the replica", a)
			}
		})
	}
}
