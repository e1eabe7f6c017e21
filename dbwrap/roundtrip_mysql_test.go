package dbwrap

import (
	"context"
	"database/sql/driver"
	"sync"
	"testing"

	"github.com/go-sql-driver/mysql"

	"github.com/reqcanary/canary/tenant"
)

// countingConnector records the statements its connections send on behalf of
// contexts marked with countedKey (the poller's are left out). go-sql-driver
// has no query tracer, so it wraps the driver's connections, forwarding the
// interfaces dbwrap uses.
type countingConnector struct {
	driver.Connector
	mu      sync.Mutex
	queries []string
}

func (c *countingConnector) Connect(ctx context.Context) (driver.Conn, error) {
	ci, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: ci, c: c}, nil
}

func (c *countingConnector) note(ctx context.Context, q string) {
	if ctx.Value(countedKey{}) != nil {
		c.mu.Lock()
		c.queries = append(c.queries, q)
		c.mu.Unlock()
	}
}

func (c *countingConnector) take() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.queries
	c.queries = nil
	return out
}

type countingConn struct {
	driver.Conn
	c *countingConnector
}

func (c *countingConn) QueryContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Rows, error) {
	c.c.note(ctx, q)
	return c.Conn.(driver.QueryerContext).QueryContext(ctx, q, args)
}

func (c *countingConn) ExecContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Result, error) {
	c.c.note(ctx, q)
	return c.Conn.(driver.ExecerContext).ExecContext(ctx, q, args)
}

func (c *countingConn) PrepareContext(ctx context.Context, q string) (driver.Stmt, error) {
	c.c.note(ctx, "PREPARE "+q)
	return c.Conn.(driver.ConnPrepareContext).PrepareContext(ctx, q)
}

func (c *countingConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	return c.Conn.(driver.ConnBeginTx).BeginTx(ctx, opts)
}

func (c *countingConn) CheckNamedValue(nv *driver.NamedValue) error {
	return c.Conn.(driver.NamedValueChecker).CheckNamedValue(nv)
}

func (c *countingConn) ResetSession(ctx context.Context) error {
	return c.Conn.(driver.SessionResetter).ResetSession(ctx)
}

func (c *countingConn) IsValid() bool { return c.Conn.(driver.Validator).IsValid() }

func (c *countingConn) Ping(ctx context.Context) error { return c.Conn.(driver.Pinger).Ping(ctx) }

func countingMySQL(t *testing.T, dsn string) *countingConnector {
	t.Helper()
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	inner, err := mysql.NewConnector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &countingConnector{Connector: inner}
}

// On MariaDB too, reads cost no round trip of their own, with or without a
// consistency token; a write sends its statement and one GTID query.
func TestMySQLReadsCostNoExtraRoundTrip(t *testing.T) {
	e := newMyEnv(t)
	tbl := e.table(t, "id INT")
	onPrimary, onReplica := countingMySQL(t, e.primaryDSN), countingMySQL(t, e.replicaDSN)
	cfg := e.config()
	cfg.Primary, cfg.Replicas, cfg.DriverName = "", nil, ""
	cfg.Dialect = MariaDB()
	db, err := OpenDB(Connectors{Primary: onPrimary, Replicas: []driver.Connector{onReplica}}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	waitPolled(t, db)

	counted := context.WithValue(context.Background(), countedKey{}, true)
	req := tenant.NewContext(counted, tenant.Labels{Tenant: "acme", UserHash: "0123456789abcdef0123456789abcdef"})
	if _, err := db.ExecContext(req, "INSERT INTO "+tbl+" VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	if got := onPrimary.take(); len(got) != 2 || got[1] != mariadbWritePositionQuery {
		t.Errorf("the write sent %q to the primary, want the insert and the GTID query", got)
	}
	eventually(t, "the poller sees the replica apply the write", func() bool {
		r, err := Explain(req, db, "SELECT 1")
		return err == nil && r.Reason == ReasonCaughtUp
	})
	onReplica.take()
	const reads = 50
	for i := 0; i < reads; i++ {
		for _, ctx := range []context.Context{req, counted} {
			var n int
			if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+tbl).Scan(&n); err != nil || n != 1 {
				t.Fatalf("read %d: %d rows, %v", i, n, err)
			}
		}
	}
	if got := onPrimary.take(); len(got) != 0 {
		t.Errorf("reads sent %d statements to the primary, want none: %q", len(got), got)
	}
	got := onReplica.take()
	if len(got) != 2*reads {
		t.Errorf("%d reads sent %d statements to the replica, want one each: %q", 2*reads, len(got), got)
	}
	for _, q := range got {
		if q != "SELECT COUNT(*) FROM "+tbl {
			t.Errorf("a read sent %q to the replica", q)
			break
		}
	}
}
