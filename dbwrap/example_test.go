package dbwrap_test

import (
	"context"
	"database/sql/driver"
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
// application that fails to build leaves no poller behind.
func ExampleStart() {
	db, err := dbwrap.Open(dbwrap.Config{
		DriverName: "pgx",
		Primary:    "postgres://app@db-primary:5432/shop",
		Replicas:   []string{"postgres://app@db-replica-1:5432/shop"},
		DeferStart: true,
	})
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
	r, _ = dbwrap.Explain(ctx, db, "select name from products")
	fmt.Println("after Start:", r.Target, r.Reason)
	// Output:
	// before Start: primary not-started
	// after Start: replica read
}

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
