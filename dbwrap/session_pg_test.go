package dbwrap

import (
	"context"
	"database/sql"
	"testing"
)

// Each kind of session state pins the connection to the primary, where the
// state lives: the statements after it on the same sql.Conn see it (they
// would fail or differ on the replica), and once the connection is back in
// the pool and reset, reads go to the replica again.
func TestPGSessionStateKindsPinToPrimary(t *testing.T) {
	e := newPGEnv(t)
	db := e.open(t, e.config())
	db.SetMaxOpenConns(1) // the next case reuses the same wrapper connection
	tbl := e.table(t, "id int")
	ctx := context.Background()
	count := func(c *sql.Conn, q string) (int, error) {
		var n int
		err := c.QueryRowContext(ctx, q).Scan(&n)
		return n, err
	}
	cases := []struct {
		name  string
		start func(c *sql.Conn) error
		// sees checks, on the same conn, that the state is there.
		sees func(t *testing.T, c *sql.Conn)
		end  func(c *sql.Conn) error
	}{
		{
			name:  "listen",
			start: func(c *sql.Conn) error { _, err := c.ExecContext(ctx, "listen dbwrap_session_ch"); return err },
			sees: func(t *testing.T, c *sql.Conn) {
				if n, err := count(c, "select count(*) from pg_listening_channels() ch where ch = 'dbwrap_session_ch'"); err != nil || n != 1 {
					t.Errorf("listening on %d channels (err %v), want 1", n, err)
				}
			},
			end: func(c *sql.Conn) error { _, err := c.ExecContext(ctx, "unlisten *"); return err },
		},
		{
			name: "temporary table",
			start: func(c *sql.Conn) error {
				_, err := c.ExecContext(ctx, "create temp table dbwrap_session_tmp (a int)")
				return err
			},
			sees: func(t *testing.T, c *sql.Conn) {
				if _, err := c.ExecContext(ctx, "insert into dbwrap_session_tmp values (1)"); err != nil {
					t.Fatal(err)
				}
				if n, err := count(c, "select count(*) from dbwrap_session_tmp"); err != nil || n != 1 {
					t.Errorf("the temporary table has %d rows (err %v), want 1", n, err)
				}
			},
			end: func(c *sql.Conn) error { _, err := c.ExecContext(ctx, "drop table dbwrap_session_tmp"); return err },
		},
		{
			name: "session advisory lock",
			start: func(c *sql.Conn) error {
				var s string
				return c.QueryRowContext(ctx, "select pg_advisory_lock(4711)::text").Scan(&s)
			},
			sees: func(t *testing.T, c *sql.Conn) {
				if n, err := count(c, "select count(*) from pg_locks where locktype = 'advisory' and objid = 4711 and pid = pg_backend_pid()"); err != nil || n != 1 {
					t.Errorf("this backend holds %d advisory locks 4711 (err %v), want 1", n, err)
				}
			},
			end: func(c *sql.Conn) error {
				var ok bool
				return c.QueryRowContext(ctx, "select pg_advisory_unlock(4711)").Scan(&ok)
			},
		},
		{
			name: "prepare",
			start: func(c *sql.Conn) error {
				_, err := c.ExecContext(ctx, "prepare dbwrap_session_q as "+whoQuery)
				return err
			},
			sees: func(t *testing.T, c *sql.Conn) {
				var a answer
				if err := c.QueryRowContext(ctx, "execute dbwrap_session_q").Scan(&a.InRecovery, &a.Port, &a.PID); err != nil || a.InRecovery {
					t.Errorf("execute of the prepared statement ran on %+v (err %v), want the primary", a, err)
				}
			},
			end: func(c *sql.Conn) error { _, err := c.ExecContext(ctx, "deallocate dbwrap_session_q"); return err },
		},
		{
			name: "cursor with hold",
			start: func(c *sql.Conn) error {
				_, err := c.ExecContext(ctx, "declare dbwrap_session_c cursor with hold for select 42")
				return err
			},
			sees: func(t *testing.T, c *sql.Conn) {
				if n, err := count(c, "fetch 1 from dbwrap_session_c"); err != nil || n != 42 {
					t.Errorf("fetch from the cursor = %d (err %v), want 42", n, err)
				}
			},
			end: func(c *sql.Conn) error { _, err := c.ExecContext(ctx, "close dbwrap_session_c"); return err },
		},
		{
			name:  "begin through Exec",
			start: func(c *sql.Conn) error { _, err := c.ExecContext(ctx, "begin"); return err },
			sees: func(t *testing.T, c *sql.Conn) {
				if _, err := c.ExecContext(ctx, "insert into "+tbl+" values (1)"); err != nil {
					t.Fatal(err)
				}
				if n, err := count(c, "select count(*) from "+tbl); err != nil || n != 1 {
					t.Errorf("inside the transaction: %d rows (err %v), want its own insert", n, err)
				}
				var n int
				if err := e.primary.QueryRowContext(ctx, "select count(*) from "+tbl).Scan(&n); err != nil || n != 0 {
					t.Errorf("outside the transaction: %d rows (err %v), want 0 before commit", n, err)
				}
			},
			end: func(c *sql.Conn) error { _, err := c.ExecContext(ctx, "rollback"); return err },
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := db.Conn(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if a := who(t, ctx, c); !a.InRecovery {
				t.Fatalf("first read on the conn went to %+v, want the replica", a)
			}
			if err := tc.start(c); err != nil {
				t.Fatal(err)
			}
			holder := who(t, ctx, c)
			if holder.InRecovery || holder.Port != e.primaryPort {
				t.Fatalf("read after %s went to %+v, want the primary", tc.name, holder)
			}
			tc.sees(t, c)
			if a := who(t, ctx, c); a != holder {
				t.Errorf("a later read went to %+v, want the backend holding the state %+v", a, holder)
			}
			if err := tc.end(c); err != nil {
				t.Fatal(err)
			}
			c.Close()
			if a := who(t, ctx, db); !a.InRecovery {
				t.Errorf("read after the conn was reset went to %+v, want the replica", a)
			}
		})
	}
}
