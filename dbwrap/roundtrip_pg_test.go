package dbwrap

import (
	"context"
	"database/sql/driver"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/reqcanary/canary/tenant"
)

// queryCounter is a pgx tracer that records the statements a connector's
// connections send on behalf of the test's contexts (marked with
// countedKey), leaving out the background poller's.
type queryCounter struct {
	mu      sync.Mutex
	queries []string
}

type countedKey struct{}

func (q *queryCounter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	if ctx.Value(countedKey{}) != nil {
		q.mu.Lock()
		q.queries = append(q.queries, d.SQL)
		q.mu.Unlock()
	}
	return ctx
}

func (*queryCounter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// take returns the statements recorded since the last call.
func (q *queryCounter) take() []string {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := q.queries
	q.queries = nil
	return out
}

func tracedConnector(t *testing.T, dsn string, tr pgx.QueryTracer) driver.Connector {
	t.Helper()
	cc, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	cc.Tracer = tr
	return stdlib.GetConnector(*cc)
}

// Reads cost no round trip of their own, with or without a consistency
// token: the replica positions a token is compared with come from the
// background poller. Each read sends exactly its own statement, to the
// replica; the write sends its own statement plus one position query.
func TestPGReadsCostNoExtraRoundTrip(t *testing.T) {
	e := newPGEnv(t)
	tbl := e.table(t, "id int")
	var onPrimary, onReplica queryCounter
	cfg := e.config()
	cfg.Primary, cfg.Replicas = "", nil
	db, err := OpenDB(Connectors{
		Primary:  tracedConnector(t, e.primaryDSN, &onPrimary),
		Replicas: []driver.Connector{tracedConnector(t, e.replicaDSN, &onReplica)},
	}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	waitPolled(t, db)

	counted := context.WithValue(context.Background(), countedKey{}, true)
	req := tenant.NewContext(counted, tenant.Labels{Tenant: "acme", UserHash: "0123456789abcdef0123456789abcdef"})
	if _, err := db.ExecContext(req, "insert into "+tbl+" values (1)"); err != nil {
		t.Fatal(err)
	}
	if got := onPrimary.take(); len(got) != 2 || got[1] != pgWritePositionQuery {
		t.Errorf("the write sent %q to the primary, want the insert and the position query", got)
	}
	eventually(t, "the poller sees the replica replay the write", func() bool {
		r, err := Explain(req, db, "select 1")
		return err == nil && r.Reason == ReasonCaughtUp
	})
	onReplica.take()

	const reads = 50
	fresh := counted
	for i := 0; i < reads; i++ {
		for _, ctx := range []context.Context{req, fresh} {
			var n int
			if err := db.QueryRowContext(ctx, "select count(*) from "+tbl).Scan(&n); err != nil || n != 1 {
				t.Fatalf("read %d: %d rows, %v", i, n, err)
			}
		}
	}
	if got := onPrimary.take(); len(got) != 0 {
		t.Errorf("reads sent %d statements to the primary, want none: %q", len(got), got)
	}
	got := onReplica.take()
	if len(got) != 2*reads {
		t.Errorf("%d reads sent %d statements to the replica, want one each", 2*reads, len(got))
	}
	for _, q := range got {
		if q != "select count(*) from "+tbl {
			t.Errorf("a read sent %q to the replica", q)
			break
		}
	}
}
