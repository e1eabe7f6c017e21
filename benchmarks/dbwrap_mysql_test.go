package benchmarks

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/reqcanary/canary/dbwrap"
)

func mysqlConnector(b *testing.B, dsn string) driver.Connector {
	b.Helper()
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		b.Fatal(err)
	}
	c, err := mysql.NewConnector(cfg)
	if err != nil {
		b.Fatal(err)
	}
	return c
}

// BenchmarkDBWrapMySQLPaired is SELECT 1 on the real MariaDB pair
// (scripts/testenv-mariadb.sh) with bare go-sql-driver/mysql and dbwrap
// interleaved in one loop, as BenchmarkDBWrapPGPaired: each iteration runs
// one query through each, in alternating order, and reports each side's
// median query time (mysql-ns/q, dbwrap-ns/q), the share dbwrap adds
// (added-%) and the median per-pair difference (median-added-ns).
func BenchmarkDBWrapMySQLPaired(b *testing.B) {
	primary, replica := os.Getenv("CANARY_MYSQL_PRIMARY"), os.Getenv("CANARY_MYSQL_REPLICA")
	if primary == "" || replica == "" {
		b.Skip("CANARY_MYSQL_PRIMARY / CANARY_MYSQL_REPLICA not set: run `make bench`")
	}
	ctx := context.Background()
	paired := func(b *testing.B, bare, wrapped *sql.DB) {
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
		median := func(d []time.Duration) float64 {
			slices.Sort(d)
			return float64(d[len(d)/2].Nanoseconds())
		}
		mb, mw := median(bares), median(wrappeds)
		b.ReportMetric(mb, "mysql-ns/q")
		b.ReportMetric(mw, "dbwrap-ns/q")
		b.ReportMetric(100*(mw-mb)/mb, "added-%")
		b.ReportMetric(median(diffs), "median-added-ns")
	}
	b.Run("primary", func(b *testing.B) {
		bare := sql.OpenDB(mysqlConnector(b, primary))
		defer bare.Close()
		wrapped, err := dbwrap.OpenDB(dbwrap.Connectors{Primary: mysqlConnector(b, primary)}, dbwrap.Config{Dialect: dbwrap.MariaDB()})
		if err != nil {
			b.Fatal(err)
		}
		defer wrapped.Close()
		paired(b, bare, wrapped)
	})
	b.Run("replica", func(b *testing.B) {
		bare := sql.OpenDB(mysqlConnector(b, replica))
		defer bare.Close()
		wrapped, err := dbwrap.OpenDB(dbwrap.Connectors{
			Primary:  mysqlConnector(b, primary),
			Replicas: []driver.Connector{mysqlConnector(b, replica)},
		}, dbwrap.Config{Dialect: dbwrap.MariaDB()})
		if err != nil {
			b.Fatal(err)
		}
		defer wrapped.Close()
		waitPolled(b, wrapped)
		if r, err := dbwrap.Explain(ctx, wrapped, "SELECT 1"); err != nil || r.Target != dbwrap.TargetReplica {
			b.Fatalf("SELECT 1 would run on %v (%v), want the replica", r, err)
		}
		paired(b, bare, wrapped)
	})
}
