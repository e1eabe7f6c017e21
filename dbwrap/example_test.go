package dbwrap_test

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/jmoiron/sqlx"

	"github.com/reqcanary/canary/dbwrap"
	"github.com/reqcanary/canary/tenant"
)

// Open a *sql.DB that writes to the primary and reads from the replicas.
func ExampleOpen() {
	db, err := dbwrap.Open(dbwrap.Config{
		DriverName:    "pgx",
		Primary:       "postgres://app@db-primary:5432/shop",
		Replicas:      []string{"postgres://app@db-replica-1:5432/shop", "postgres://app@db-replica-2:5432/shop"},
		MaxReplicaLag: 10 * time.Second,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()

	// Inside a request handler: the context made by tenant.NewContext (the
	// canary middleware does it) carries the request's session, so the read
	// after the write sees it, even while the replicas lag.
	ctx := tenant.NewContext(context.Background(), tenant.Labels{Tenant: "acme"})
	if _, err := db.ExecContext(ctx, "update carts set qty = qty + 1 where id = $1", 42); err != nil {
		log.Print(err)
	}
	var qty int
	_ = db.QueryRowContext(ctx, "select qty from carts where id = $1", 42).Scan(&qty)
}

// sqlx works unchanged on top; name the inner driver so that sqlx uses its
// placeholders ($1 for pgx).
func ExampleOpen_sqlx() {
	db, err := dbwrap.Open(dbwrap.Config{
		DriverName: "pgx",
		Primary:    "postgres://app@db-primary:5432/shop",
		Replicas:   []string{"postgres://app@db-replica-1:5432/shop"},
	})
	if err != nil {
		log.Fatal(err)
	}
	dbx := sqlx.NewDb(db, "pgx")
	defer dbx.Close()
	var names []string
	_ = dbx.Select(&names, "select name from products where price < $1", 10)
}

// An application with a start phase (go.uber.org/fx, or a main that builds
// everything before serving) opens the database with DeferStart: it works at
// once, on the primary, and the replica poller starts with Start, so an
// application that fails to build leaves no poller behind. (The example's
// servers are in-memory stand-ins; see exampleServer.)
func ExampleStart() {
	db, err := dbwrap.OpenDB(dbwrap.Connectors{
		Primary:  exampleServer{},
		Replicas: []driver.Connector{exampleServer{}},
	}, dbwrap.Config{Dialect: dbwrap.NoDialect, DeferStart: true})
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()

	r, _ := dbwrap.Explain(ctx, db, "select name from products")
	fmt.Println("before Start:", r.Target, r.Reason)

	if err := dbwrap.Start(db); err != nil {
		log.Fatal(err)
	}
	// Until the first poll has found the replica fit, reads go to the
	// primary (reason not-polled).
	if err := dbwrap.WaitPolled(ctx, db); err != nil {
		log.Fatal(err)
	}
	r, _ = dbwrap.Explain(ctx, db, "select name from products")
	fmt.Println("after the first poll:", r.Target, r.Reason)
	// Output:
	// before Start: primary not-started
	// after the first poll: replica read
}

// Wait, before serving, until the replicas have been polled once, so that
// the first requests already read from the replicas that are fit. A replica
// that is out (unreachable, promoted, or lagging more than MaxReplicaLag) does
// not hold WaitPolled up beyond its first verdict; the timeout bounds the
// wait all the same. (The example's servers are in-memory stand-ins; see
// exampleServer.)
func ExampleWaitPolled() {
	db, err := dbwrap.OpenDB(dbwrap.Connectors{
		Primary:  exampleServer{},
		Replicas: []driver.Connector{exampleServer{}},
	}, dbwrap.Config{Dialect: dbwrap.NoDialect})
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := dbwrap.WaitPolled(ctx, db); err != nil {
		// Not fatal: reads go to the primary until the replicas are judged.
		log.Print(err)
	}
	r, _ := dbwrap.Explain(ctx, db, "select name from products")
	fmt.Println(r)
	// Output: replica replica-0 (read)
}

// exampleServer is an in-memory stand-in for a database server, so that the
// examples run without one: it accepts connections (the poller's check,
// without a dialect, is that a connection opens) and runs no statement.
type exampleServer struct{}

func (exampleServer) Connect(context.Context) (driver.Conn, error) { return exampleConn{}, nil }
func (exampleServer) Driver() driver.Driver                        { return exampleDriver{} }

type exampleDriver struct{}

func (exampleDriver) Open(string) (driver.Conn, error) { return exampleConn{}, nil }

type exampleConn struct{}

func (exampleConn) Prepare(string) (driver.Stmt, error) { return nil, errExample }
func (exampleConn) Close() error                        { return nil }
func (exampleConn) Begin() (driver.Tx, error)           { return nil, errExample }

var errExample = errors.New("example: an in-memory stand-in runs no statement")

// Explain tells where a statement would go and why, without running it.
func ExampleExplain() {
	db, err := dbwrap.Open(dbwrap.Config{
		DriverName: "pgx",
		Primary:    "postgres://app@db-primary:5432/shop",
		Replicas:   []string{"postgres://app@db-replica-1:5432/shop"},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	for _, q := range []string{
		"insert into orders (id) values (1) returning created_at",
		"select * from stock where sku = $1 for update",
		"/* canary:primary */ select * from stock",
		"select nextval('order_ids')",
	} {
		r, _ := dbwrap.Explain(ctx, db, q)
		fmt.Println(r)
	}
	r, _ := dbwrap.Explain(dbwrap.WithPrimary(ctx), db, "select 1")
	fmt.Println(r)
	// Output:
	// primary primary (returning)
	// primary primary (locking-clause)
	// primary primary (hint)
	// primary primary (side-effect-function:nextval)
	// primary primary (with-primary)
}

// A service carries the consistency token to the services it calls, which
// then read at least what the caller wrote.
func ExampleConsistencyToken() {
	// Upstream, after a write through ctx, ConsistencyToken(ctx) returns the
	// primary's WAL position; here one is given directly.
	upstream := dbwrap.WithConsistencyToken(context.Background(), "16/B374D848")
	token, ok := dbwrap.ConsistencyToken(upstream)
	fmt.Println(token, ok)

	// Downstream, attach it to the request's context: reads through it go to
	// a replica that has replayed 16/B374D848, else to the primary.
	downstream := dbwrap.WithConsistencyToken(context.Background(), token)
	_ = downstream
	// Output: 16/B374D848 true
}

// OpenDB takes driver.Connectors, e.g. pgx connection configs built in code.
func ExampleOpenDB() {
	primary, err := pgx.ParseConfig("postgres://app@db-primary:5432/shop")
	if err != nil {
		log.Fatal(err)
	}
	replica, err := pgx.ParseConfig("postgres://app@db-replica-1:5432/shop")
	if err != nil {
		log.Fatal(err)
	}
	db, err := dbwrap.OpenDB(dbwrap.Connectors{
		Primary:  stdlib.GetConnector(*primary),
		Replicas: []driver.Connector{stdlib.GetConnector(*replica)},
	}, dbwrap.Config{DriverName: "pgx"}) // the name picks the PostgreSQL dialect
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
}

// MariaDB through github.com/go-sql-driver/mysql: the driver name "mysql"
// picks the MariaDB dialect (GTID positions for read-your-writes, replica
// health from SHOW SLAVE STATUS) and MySQL's syntax for classifying
// statements. sqlx uses '?' placeholders with the name "mysql".
func ExampleOpen_mariaDB() {
	db, err := dbwrap.Open(dbwrap.Config{
		DriverName: "mysql",
		Primary:    "app@tcp(db-primary:3306)/shop",
		Replicas:   []string{"app@tcp(db-replica-1:3306)/shop"},
	})
	if err != nil {
		log.Fatal(err)
	}
	dbx := sqlx.NewDb(db, "mysql")
	defer dbx.Close()
	ctx := tenant.NewContext(context.Background(), tenant.Labels{Tenant: "acme"})
	if _, err := dbx.ExecContext(ctx, "UPDATE carts SET qty = qty + 1 WHERE id = ?", 42); err != nil {
		log.Print(err)
	}
	var qty int
	_ = dbx.GetContext(ctx, &qty, "SELECT qty FROM carts WHERE id = ?", 42) // sees the update
}

// Statements for a MySQL or MariaDB server are read in MySQL's syntax.
// (The example's servers are in-memory stand-ins; see exampleServer.)
func ExampleExplain_mySQL() {
	db, err := dbwrap.OpenDB(dbwrap.Connectors{
		Primary:  exampleServer{},
		Replicas: []driver.Connector{exampleServer{}},
	}, dbwrap.Config{DriverName: "mysql", Dialect: dbwrap.NoDialect})
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	if err := dbwrap.WaitPolled(ctx, db); err != nil {
		log.Fatal(err)
	}
	for _, q := range []string{
		"SELECT `name` FROM `products` # , GET_LOCK('x', 1)",
		"SELECT qty FROM carts WHERE id = ? LOCK IN SHARE MODE",
		"INSERT INTO carts VALUES (?, 1) ON DUPLICATE KEY UPDATE qty = qty + 1",
		"SELECT GET_LOCK('nightly-job', 10)",
		"SELECT @n := @n + 1 FROM carts",
	} {
		r, _ := dbwrap.Explain(ctx, db, q)
		fmt.Println(r.Target, r.Reason)
	}
	// Output:
	// replica read
	// primary locking-clause
	// primary write
	// primary session:advisory-lock
	// primary session:set
}
