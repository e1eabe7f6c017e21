package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/jmoiron/sqlx"
	"go.opentelemetry.io/otel/metric"
	_ "modernc.org/sqlite" // driver "sqlite", pure Go

	"github.com/reqcanary/canary/dbwrap"
)

// product is a row of demo_products.
type product struct {
	ID          int64  `db:"id" json:"id"`
	Name        string `db:"name" json:"name"`
	Description string `db:"description" json:"description"`
}

// order is a row of demo_orders.
type order struct {
	ID        int64  `db:"id" json:"id"`
	Tenant    string `db:"tenant" json:"tenant"`
	UserHash  string `db:"user_hash" json:"user_hash"`
	ProductID int64  `db:"product_id" json:"product_id"`
	Quantity  int64  `db:"quantity" json:"quantity"`
	UnitCents int64  `db:"unit_cents" json:"unit_cents"`
	PricedBy  string `db:"priced_by" json:"priced_by"`
	CreatedAt string `db:"created_at" json:"created_at"`
}

// seedProducts are the products of a new database. Their prices live in the
// pricing service (pricing.go), not in the database.
var seedProducts = []product{
	{1, "Espresso cup", "Porcelain, 80 ml"},
	{2, "Moka pot", "Aluminium, 3 cups"},
	{3, "Burr grinder", "Conical burrs, 40 settings"},
	{4, "Milk jug", "Steel, 350 ml"},
	{5, "Beans, 1 kg", "Washed arabica"},
}

// errNotFound is returned for a product or order that does not exist (or
// belongs to another tenant).
var errNotFound = errors.New("not found")

// store is the shop's database: one *sqlx.DB over a dbwrap *sql.DB that
// routes between a writer and a reader.
type store struct {
	db     *sqlx.DB
	tokens io.Closer // the Redis token store, closed after the DB; nil without Redis
}

// storeConfig says which database to open.
type storeConfig struct {
	sqlitePath           string
	pgPrimary, pgReplica string
	myPrimary, myReplica string            // MySQL/MariaDB (go-sql-driver/mysql DSNs)
	tokens               dbwrap.TokenStore // nil: per-process read-your-writes tokens
	meter                metric.MeterProvider
}

// openStore opens, checks and (on first start) seeds the database. It
// returns a description for the start-up message. Errors say which flag's
// database could not be used.
func openStore(ctx context.Context, sc storeConfig) (*store, string, error) {
	cfg := dbwrap.Config{MeterProvider: sc.meter, TokenStore: sc.tokens}
	desc, flagName, bind, ok, err := openServiceDB(ctx, sc, &cfg) // store_services.go
	if err != nil {
		return nil, "", err
	}
	if !ok {
		path, err := filepath.Abs(sc.sqlitePath)
		if err != nil {
			return nil, "", fmt.Errorf("-db: %w", err)
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return nil, "", fmt.Errorf("-db: %w", err)
		}
		// One file, two pools: a writer, and a read-only "replica" that
		// dbwrap sends the reads to. With no dialect for SQLite, a request
		// (and the same user, for the token TTL) that wrote reads from the
		// writer afterwards: read-your-writes without positions.
		u := url.URL{Scheme: "file", Opaque: path}
		q := "_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_txlock=immediate"
		cfg.DriverName, cfg.Primary, flagName, bind = "sqlite", u.String()+"?"+q, "-db", "sqlite3"
		cfg.Replicas = []string{u.String() + "?mode=ro&_pragma=busy_timeout(5000)"}
		// The read-only pool cannot open a file that does not exist yet, and
		// dbwrap would then keep it out of service until it recovers: make
		// the file (in WAL mode) before dbwrap checks its pools.
		if err := createSQLite(ctx, cfg.Primary); err != nil {
			return nil, "", fmt.Errorf("-db: %w", err)
		}
		cfg.RecoverAfter = 500 * time.Millisecond // the "replica" is the same file
		desc = "SQLite " + path + " (writer + read-only pool)"
	}
	raw, err := dbwrap.Open(cfg)
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", flagName, err)
	}
	s := &store{db: sqlx.NewDb(raw, bind)}
	s.tokens, _ = cfg.TokenStore.(io.Closer)
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := raw.PingContext(pctx); err != nil {
		raw.Close()
		return nil, "", fmt.Errorf("%s: cannot open the database: %w", flagName, err)
	}
	if err := s.migrate(pctx, bind); err != nil {
		raw.Close()
		return nil, "", fmt.Errorf("%s: preparing the database: %w", flagName, err)
	}
	// Serve once the replica has been polled: until its first verdict every
	// read goes to the primary. A replica the poller cannot judge in time
	// (one far behind) does not stop the start; its reads stay on the
	// primary until it is judged fit.
	wctx, wcancel := context.WithTimeout(ctx, 5*time.Second)
	defer wcancel()
	if err := dbwrap.WaitPolled(wctx, raw); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		raw.Close()
		return nil, "", fmt.Errorf("%s: %w", flagName, err)
	}
	return s, desc, nil
}

// createSQLite opens the SQLite database at dsn once, outside dbwrap, so
// that its file exists (and is in WAL mode) before the read-only pool opens it.
func createSQLite(ctx context.Context, dsn string) error {
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err = db.ExecContext(ctx, "PRAGMA user_version")
	return err
}

// pingDB connects to dsn with the driver once, outside dbwrap.
func pingDB(ctx context.Context, driverName, dsn string) error {
	db, err := sql.Open(driverName, dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return db.PingContext(ctx)
}

// redactDSN drops the password from a URL-style DSN.
func redactDSN(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil || u.Scheme == "" {
		return "(dsn)"
	}
	return u.Redacted()
}

// migrate creates the tables when missing and seeds the products. bind is
// the sqlx driver name: "pgx", "mysql" or "sqlite3".
func (s *store) migrate(ctx context.Context, bind string) error {
	id := "INTEGER PRIMARY KEY AUTOINCREMENT"
	insertProduct := `INSERT INTO demo_products (id, name, description) VALUES (?, ?, ?) ON CONFLICT (id) DO NOTHING`
	switch bind {
	case "pgx":
		id = "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"
	case "mysql":
		id = "BIGINT AUTO_INCREMENT PRIMARY KEY"
		insertProduct = `INSERT IGNORE INTO demo_products (id, name, description) VALUES (?, ?, ?)`
	}
	stmts := []string{
		`CREATE TABLE IF NOT EXISTS demo_products (
			id BIGINT PRIMARY KEY,
			name TEXT NOT NULL,
			description TEXT NOT NULL)`,
		`CREATE TABLE IF NOT EXISTS demo_orders (
			id ` + id + `,
			tenant TEXT NOT NULL,
			user_hash TEXT NOT NULL,
			product_id BIGINT NOT NULL REFERENCES demo_products(id),
			quantity BIGINT NOT NULL,
			unit_cents BIGINT NOT NULL,
			priced_by TEXT NOT NULL,
			created_at TEXT NOT NULL)`,
	}
	for _, q := range stmts {
		if _, err := s.db.ExecContext(ctx, q); err != nil {
			return err
		}
	}
	for _, p := range seedProducts {
		if _, err := s.db.ExecContext(ctx, s.db.Rebind(insertProduct),
			p.ID, p.Name, p.Description); err != nil {
			return err
		}
	}
	return nil
}

// route says where dbwrap sends query for ctx, and why: "replica-0 (read)",
// "primary (sticky)".
func (s *store) route(ctx context.Context, query string) string {
	r, err := dbwrap.Explain(ctx, s.db.DB, query)
	if err != nil {
		return "unknown" // dbwrap.Explain failed: no details for the client
	}
	return r.Server + " (" + r.Reason + ")"
}

const (
	qProducts = `SELECT id, name, description FROM demo_products ORDER BY id`
	qProduct  = `SELECT id, name, description FROM demo_products WHERE id = ?`
	qOrder    = `SELECT id, tenant, user_hash, product_id, quantity, unit_cents, priced_by, created_at
		FROM demo_orders WHERE id = ? AND tenant = ?`
	qInsertOrder = `INSERT INTO demo_orders (tenant, user_hash, product_id, quantity, unit_cents, priced_by, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id`
)

// errDatabase is matched by the errors of database calls that failed (not
// "no rows"): the API answers 503 with its text only; the wrapped details
// (driver message, address, user) are logged, never sent to the client.
var errDatabase = errors.New("database unavailable")

// dbErr wraps a database error in errDatabase; nil, errNotFound and the
// caller's own cancellation pass through.
func dbErr(err error) error {
	if err == nil || errors.Is(err, errNotFound) || errors.Is(err, context.Canceled) {
		return err
	}
	return fmt.Errorf("%w: %w", errDatabase, err)
}

// products lists the products; route says where the read went.
func (s *store) products(ctx context.Context) (ps []product, route string, err error) {
	route = s.route(ctx, qProducts)
	err = s.db.SelectContext(ctx, &ps, qProducts)
	return ps, route, dbErr(err)
}

// product reads one product.
func (s *store) product(ctx context.Context, id int64) (p product, route string, err error) {
	q := s.db.Rebind(qProduct)
	route = s.route(ctx, q)
	err = s.db.GetContext(ctx, &p, q, id)
	if errors.Is(err, sql.ErrNoRows) {
		err = errNotFound
	}
	return p, route, dbErr(err)
}

// order reads one order of tenant.
func (s *store) order(ctx context.Context, id int64, tenant string) (o order, route string, err error) {
	q := s.db.Rebind(qOrder)
	route = s.route(ctx, q)
	err = s.db.GetContext(ctx, &o, q, id, tenant)
	if errors.Is(err, sql.ErrNoRows) {
		err = errNotFound
	}
	return o, route, dbErr(err)
}

// createOrder checks the product and inserts o in one transaction (pinned to
// the primary by dbwrap), and returns it with its id.
func (s *store) createOrder(ctx context.Context, o order) (order, error) {
	o, err := s.insertOrder(ctx, o)
	return o, dbErr(err)
}

func (s *store) insertOrder(ctx context.Context, o order) (order, error) {
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return o, err
	}
	defer tx.Rollback()
	var n int
	if err := tx.GetContext(ctx, &n, tx.Rebind(`SELECT count(*) FROM demo_products WHERE id = ?`), o.ProductID); err != nil {
		return o, err
	}
	if n == 0 {
		return o, errNotFound
	}
	o.CreatedAt = time.Now().UTC().Format(time.RFC3339Nano)
	if err := tx.GetContext(ctx, &o.ID, tx.Rebind(qInsertOrder),
		o.Tenant, o.UserHash, o.ProductID, o.Quantity, o.UnitCents, o.PricedBy, o.CreatedAt); err != nil {
		return o, err
	}
	return o, tx.Commit()
}

// Close closes the database and stops dbwrap's replica poller.
func (s *store) Close() error {
	err := s.db.Close()
	if s.tokens != nil {
		err = errors.Join(err, s.tokens.Close())
	}
	return err
}
