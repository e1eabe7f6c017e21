package benchmarks

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"io"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/reqcanary/canary/dbwrap"
	"github.com/reqcanary/canary/tenant"
)

// The dbwrap benchmarks measure what the wrapper adds to one query:
//
//   - over an in-memory driver that does no I/O (routing, classification,
//     context lookups and forwarding only), against the same driver bare;
//   - against raw pgx's stdlib driver for SELECT 1 on the real primary
//     (CANARY_PG_PRIMARY), with dbwrap configured with the primary only, and
//     with a replica too (the read then goes to the replica, as in
//     production; it is measured on its own against bare pgx to the replica).

// memConnector is a driver that answers every query with one row, no I/O.
// Its conns implement the optional interfaces pgx's stdlib conns implement
// (CheckNamedValue accepting everything, ResetSession, Ping), so the bare
// baseline takes the same database/sql paths as a real driver.
type memConnector struct{}

func (memConnector) Connect(context.Context) (driver.Conn, error) { return memConn{}, nil }
func (memConnector) Driver() driver.Driver                        { return memDriver{} }

type memDriver struct{}

func (memDriver) Open(string) (driver.Conn, error) { return memConn{}, nil }

type memConn struct{}

func (memConn) Prepare(string) (driver.Stmt, error) { return nil, driver.ErrSkip }
func (memConn) Close() error                        { return nil }
func (memConn) Begin() (driver.Tx, error)           { return nil, driver.ErrSkip }
func (memConn) QueryContext(context.Context, string, []driver.NamedValue) (driver.Rows, error) {
	return &memRows{}, nil
}
func (memConn) CheckNamedValue(*driver.NamedValue) error { return nil }
func (memConn) ResetSession(context.Context) error       { return nil }
func (memConn) Ping(context.Context) error               { return nil }
func (memConn) ExecContext(context.Context, string, []driver.NamedValue) (driver.Result, error) {
	return driver.RowsAffected(1), nil
}

var memColumns = []string{"n"}

type memRows struct{ done bool }

func (*memRows) Columns() []string { return memColumns }
func (*memRows) Close() error      { return nil }
func (r *memRows) Next(dest []driver.Value) error {
	if r.done {
		return io.EOF
	}
	r.done = true
	dest[0] = int64(1)
	return nil
}

const benchQuery = "SELECT id, name, price FROM products WHERE category_id = $1 AND price < $2 ORDER BY price LIMIT 20"

var sinkInt int64

func benchQueryRow(b *testing.B, db *sql.DB, ctx context.Context, query string, args ...any) {
	b.Helper()
	db.SetMaxIdleConns(4)
	// Warm up the pool so that no connection is opened in the loop.
	if err := db.QueryRowContext(ctx, query, args...).Scan(&sinkInt); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if err := db.QueryRowContext(ctx, query, args...).Scan(&sinkInt); err != nil {
			b.Fatal(err)
		}
	}
}

func openMemWrapped(b *testing.B) *sql.DB {
	b.Helper()
	db, err := dbwrap.OpenDB(dbwrap.Connectors{
		Primary:  memConnector{},
		Replicas: []driver.Connector{memConnector{}},
	}, dbwrap.Config{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	waitPolled(b, db) // the replica serves reads once polled
	return db
}

// BenchmarkDBWrapFake is one read through the in-memory driver: bare, and
// through dbwrap (routed to the replica), without and with a request context
// carrying tenant labels.
func BenchmarkDBWrapFake(b *testing.B) {
	bg := context.Background()
	req := tenant.NewContext(bg, tenant.Labels{Tenant: "acme", UserHash: "0123456789abcdef0123456789abcdef", Cohort: tenant.Stable})
	b.Run("bare", func(b *testing.B) {
		db := sql.OpenDB(memConnector{})
		defer db.Close()
		benchQueryRow(b, db, bg, benchQuery, 3, 10)
	})
	b.Run("dbwrap", func(b *testing.B) {
		benchQueryRow(b, openMemWrapped(b), bg, benchQuery, 3, 10)
	})
	b.Run("dbwrap-request", func(b *testing.B) {
		benchQueryRow(b, openMemWrapped(b), req, benchQuery, 3, 10)
	})
}

// BenchmarkDBWrapFakeExec is one write (Exec) through the in-memory driver.
func BenchmarkDBWrapFakeExec(b *testing.B) {
	ctx := context.Background()
	run := func(b *testing.B, db *sql.DB) {
		db.SetMaxIdleConns(4)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := db.ExecContext(ctx, "UPDATE products SET price = $1 WHERE id = $2", 10, 3); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("bare", func(b *testing.B) {
		db := sql.OpenDB(memConnector{})
		defer db.Close()
		run(b, db)
	})
	b.Run("dbwrap", func(b *testing.B) { run(b, openMemWrapped(b)) })
}

func pgConnector(b *testing.B, dsn string) driver.Connector {
	b.Helper()
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		b.Fatal(err)
	}
	return stdlib.GetConnector(*cfg)
}

// BenchmarkDBWrapPG is SELECT 1 on the real servers: raw pgx stdlib against
// dbwrap over the same connectors.
func BenchmarkDBWrapPG(b *testing.B) {
	primary, replica := os.Getenv("CANARY_PG_PRIMARY"), os.Getenv("CANARY_PG_REPLICA")
	if primary == "" || replica == "" {
		b.Skip("CANARY_PG_PRIMARY / CANARY_PG_REPLICA not set: run `make bench`")
	}
	ctx := context.Background()
	b.Run("primary/pgx", func(b *testing.B) {
		db := sql.OpenDB(pgConnector(b, primary))
		defer db.Close()
		benchQueryRow(b, db, ctx, "SELECT 1")
	})
	b.Run("primary/dbwrap", func(b *testing.B) {
		db, err := dbwrap.OpenDB(dbwrap.Connectors{Primary: pgConnector(b, primary)}, dbwrap.Config{DriverName: "pgx"})
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		benchQueryRow(b, db, ctx, "SELECT 1")
	})
	b.Run("replica/pgx", func(b *testing.B) {
		db := sql.OpenDB(pgConnector(b, replica))
		defer db.Close()
		benchQueryRow(b, db, ctx, "SELECT 1")
	})
	b.Run("replica/dbwrap", func(b *testing.B) {
		db, err := dbwrap.OpenDB(dbwrap.Connectors{
			Primary:  pgConnector(b, primary),
			Replicas: []driver.Connector{pgConnector(b, replica)},
		}, dbwrap.Config{DriverName: "pgx"})
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		waitPolled(b, db) // the replica serves reads once polled
		benchQueryRow(b, db, ctx, "SELECT 1")
	})
}

// BenchmarkDBWrapPGPaired is SELECT 1 on the real servers with raw pgx and
// dbwrap interleaved in one loop: each iteration runs one query through each,
// in alternating order, and times them separately. Load on the shared
// machine then hits both sides alike, so the ratio is stable even when the
// round trip itself swings by a factor of two between runs (which makes
// separate BenchmarkDBWrapPG runs unable to resolve a 5 % difference). It
// reports the median query time of each side (pgx-ns/q, dbwrap-ns/q), the
// share dbwrap adds to pgx's median (added-%), and the median of the
// per-iteration differences (median-added-ns). Medians, because a shared
// machine adds outliers of several milliseconds. ns/op is the pair.
func BenchmarkDBWrapPGPaired(b *testing.B) {
	primary, replica := os.Getenv("CANARY_PG_PRIMARY"), os.Getenv("CANARY_PG_REPLICA")
	if primary == "" || replica == "" {
		b.Skip("CANARY_PG_PRIMARY / CANARY_PG_REPLICA not set: run `make bench`")
	}
	ctx := context.Background()
	paired := func(b *testing.B, bare *sql.DB, wrapped *sql.DB) {
		for _, db := range []*sql.DB{bare, wrapped} {
			db.SetMaxIdleConns(4)
			if err := db.QueryRowContext(ctx, "SELECT 1").Scan(&sinkInt); err != nil {
				b.Fatal(err)
			}
		}
		one := func(db *sql.DB) time.Duration {
			start := time.Now()
			if err := db.QueryRowContext(ctx, "SELECT 1").Scan(&sinkInt); err != nil {
				b.Fatal(err)
			}
			return time.Since(start)
		}
		var bares, wrappeds, diffs []time.Duration
		i := 0
		for b.Loop() {
			var db, dw time.Duration
			if i%2 == 0 {
				db, dw = one(bare), one(wrapped)
			} else {
				dw, db = one(wrapped), one(bare)
			}
			i++
			bares, wrappeds, diffs = append(bares, db), append(wrappeds, dw), append(diffs, dw-db)
		}
		if i == 0 {
			return
		}
		median := func(d []time.Duration) float64 {
			slices.Sort(d)
			return float64(d[len(d)/2].Nanoseconds())
		}
		mb, mw := median(bares), median(wrappeds)
		b.ReportMetric(mb, "pgx-ns/q")
		b.ReportMetric(mw, "dbwrap-ns/q")
		b.ReportMetric(100*(mw-mb)/mb, "added-%")
		b.ReportMetric(median(diffs), "median-added-ns")
	}
	b.Run("primary", func(b *testing.B) {
		bare := sql.OpenDB(pgConnector(b, primary))
		defer bare.Close()
		wrapped, err := dbwrap.OpenDB(dbwrap.Connectors{Primary: pgConnector(b, primary)}, dbwrap.Config{DriverName: "pgx"})
		if err != nil {
			b.Fatal(err)
		}
		defer wrapped.Close()
		paired(b, bare, wrapped)
	})
	b.Run("replica", func(b *testing.B) {
		bare := sql.OpenDB(pgConnector(b, replica))
		defer bare.Close()
		wrapped, err := dbwrap.OpenDB(dbwrap.Connectors{
			Primary:  pgConnector(b, primary),
			Replicas: []driver.Connector{pgConnector(b, replica)},
		}, dbwrap.Config{DriverName: "pgx"})
		if err != nil {
			b.Fatal(err)
		}
		defer wrapped.Close()
		waitPolled(b, wrapped) // the replica serves reads once polled
		paired(b, bare, wrapped)
	})
}

// BenchmarkDBWrapPGWrite is one INSERT on the real primary: raw pgx, dbwrap
// outside a request (no token to record), and dbwrap inside a request, where
// the write position is read right after the write on the same connection
// (SELECT pg_current_wal_insert_lsn(): the cost of read-your-writes).
func BenchmarkDBWrapPGWrite(b *testing.B) {
	primary, replica := os.Getenv("CANARY_PG_PRIMARY"), os.Getenv("CANARY_PG_REPLICA")
	if primary == "" || replica == "" {
		b.Skip("CANARY_PG_PRIMARY / CANARY_PG_REPLICA not set: run `make bench`")
	}
	ctx := context.Background()
	setup := sql.OpenDB(pgConnector(b, primary))
	defer setup.Close()
	table := fmt.Sprintf("dbwrap_bench_%d", os.Getpid())
	if _, err := setup.ExecContext(ctx, "CREATE TABLE "+table+" (id bigserial primary key, v int)"); err != nil {
		b.Fatal(err)
	}
	defer setup.ExecContext(ctx, "DROP TABLE "+table)
	insert := "INSERT INTO " + table + " (v) VALUES ($1)"
	run := func(b *testing.B, db *sql.DB, ctx context.Context) {
		db.SetMaxIdleConns(4)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := db.ExecContext(ctx, insert, 1); err != nil {
				b.Fatal(err)
			}
		}
	}
	wrapped := func(b *testing.B) *sql.DB {
		db, err := dbwrap.OpenDB(dbwrap.Connectors{
			Primary:  pgConnector(b, primary),
			Replicas: []driver.Connector{pgConnector(b, replica)},
		}, dbwrap.Config{DriverName: "pgx"})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { db.Close() })
		waitPolled(b, db) // the replica serves reads once polled
		return db
	}
	b.Run("pgx", func(b *testing.B) {
		db := sql.OpenDB(pgConnector(b, primary))
		defer db.Close()
		run(b, db, ctx)
	})
	b.Run("dbwrap", func(b *testing.B) { run(b, wrapped(b), ctx) })
	b.Run("dbwrap-request", func(b *testing.B) {
		run(b, wrapped(b), tenant.NewContext(ctx, tenant.Labels{Tenant: "acme"}))
	})
}

// waitPolled waits until the replica poller has judged the replicas: before
// that, reads go to the primary.
func waitPolled(b *testing.B, db *sql.DB) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := dbwrap.WaitPolled(ctx, db); err != nil {
		b.Fatal(err)
	}
}
