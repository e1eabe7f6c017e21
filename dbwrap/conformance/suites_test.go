package conformance

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// A suite is another project's database/sql test suite, copied from the
// module cache into _work/<name> and rewritten so that it opens its
// databases through the conform package.
type suite struct {
	name   string // directory under _work, and the name in expected.txt
	module string // module path; its version is this module's requirement
	// copy copies the files of the suite from the module directory src
	// into dst.
	copy     func(src, dst string) error
	rewrites []rewrite
	shim     string // zz_conform_test.go, written into the test package
	pkg      string // the test package's directory under dst ("." for dst)
	// env returns the suite's own settings for a database URL and its parts.
	env func(u dbURL) []string
}

// A rewrite replaces old with new in file, which must contain old exactly
// count times (so a new upstream version that moved things fails loudly).
type rewrite struct {
	file     string // relative to the suite's directory; "*.go" for all Go files
	old, new string
	count    int // -1: any number, at least one; old "": append new
}

// dbURL is a database the harness created for one suite and mode.
type dbURL struct {
	URL            string // postgres://user@host:port/db?sslmode=disable
	Host, Port, DB string
	User           string
}

const shimHeader = `// Code written by the dbwrap conformance harness (dbwrap/conformance); DO NOT EDIT.

`

var suites = []suite{
	{
		name:   "sqlx",
		module: "github.com/jmoiron/sqlx",
		copy:   copyTopLevelGo,
		pkg:    ".",
		rewrites: []rewrite{
			// MySQL and SQLite are not under test (and go-sqlite3 needs cgo).
			{file: "*.go", old: "\t_ \"github.com/go-sql-driver/mysql\"\n", new: "", count: 2},
			{file: "*.go", old: "\t_ \"github.com/mattn/go-sqlite3\"\n", new: "", count: 2},
			{file: "sqlx_test.go", old: `pgdb, err = Connect("postgres", pgdsn)`, new: `pgdb, err = conformConnect("postgres", pgdsn)`, count: 1},
		},
		shim: shimHeader + `package sqlx

import (
	"net/netip"
	"testing"

	"github.com/lib/pq"

	"github.com/reqcanary/canary/dbwrap/conformance/conform"
)

// conformConnect is Connect, through dbwrap over lib/pq when routed.
func conformConnect(driverName, dsn string) (*DB, error) {
	if !conform.Routed() {
		return Connect(driverName, dsn)
	}
	p, err := pq.NewConnector(dsn)
	if err != nil {
		return nil, err
	}
	cfg, err := pq.NewConfig(dsn)
	if err != nil {
		return nil, err
	}
	cfg.Host, cfg.Port = conform.Replica()
	cfg.Hostaddr, cfg.Multi = netip.Addr{}, nil
	r, err := pq.NewConnectorConfig(cfg)
	if err != nil {
		return nil, err
	}
	r.Dialer(conform.PQDialer{})
	db, err := conform.OpenDB(driverName, p, r)
	if err != nil {
		return nil, err
	}
	x := NewDb(db, driverName)
	if err := x.Ping(); err != nil {
		x.Close()
		return nil, err
	}
	return x, nil
}

func TestZZConformRouting(t *testing.T) { conformRouting(t) }
` + routingCheck,
		env: func(u dbURL) []string {
			return []string{"SQLX_POSTGRES_DSN=" + u.URL, "SQLX_MYSQL_DSN=skip", "SQLX_SQLITE_DSN=skip"}
		},
	},
	{
		name:   "pgx",
		module: "github.com/jackc/pgx/v5",
		copy: func(src, dst string) error {
			// The external tests of stdlib (package stdlib_test) only.
			return copyFiles(filepath.Join(src, "stdlib"), dst, func(name string) bool {
				return strings.HasSuffix(name, "_test.go") && !strings.HasSuffix(name, "_internal_test.go")
			})
		},
		pkg: ".",
		rewrites: []rewrite{
			{file: "sql_test.go", old: "stdlib.OpenDB(", new: "conformOpenDB(", count: 4},
			{file: "sql_test.go", old: "sql.Open(", new: "conformSQLOpen(", count: 4},
			// sql.Conn.Raw hands out dbwrap's connection; the driver's is
			// reached through its Raw method, as docs/db-routing.md says.
			{file: "sql_test.go", old: "driverConn.(*stdlib.Conn)", new: "conformRaw(driverConn).(*stdlib.Conn)", count: 5},
		},
		shim: shimHeader + `package stdlib_test

import (
	"database/sql"
	"database/sql/driver"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/reqcanary/canary/dbwrap/conformance/conform"
)

// conformOpenDB is stdlib.OpenDB, through dbwrap when routed: the replica's
// connector has the same options, another host and port, and the barrier's
// dialer.
func conformOpenDB(config pgx.ConnConfig, opts ...stdlib.OptionOpenDB) *sql.DB {
	if !conform.Routed() || len(config.Fallbacks) > 0 || !conform.IsPrimary(config.Host, config.Port) {
		return stdlib.OpenDB(config, opts...)
	}
	p := stdlib.GetConnector(config, opts...)
	rc := config.Copy()
	rc.Host, rc.Port = conform.Replica()
	rc.Fallbacks = nil
	rc.DialFunc = conform.DialContext
	r := stdlib.GetConnector(*rc, opts...)
	db, err := conform.OpenDB("pgx", p, r)
	if err != nil {
		panic(err)
	}
	return db
}

// conformSQLOpen is sql.Open, through dbwrap when routed and dsn is a DSN
// (a name from stdlib.RegisterConnConfig is opened on the bare driver).
func conformSQLOpen(driverName, dsn string) (*sql.DB, error) {
	if !conform.Routed() || (driverName != "pgx" && driverName != "pgx/v5") {
		return sql.Open(driverName, dsn)
	}
	config, err := pgx.ParseConfig(dsn)
	if err != nil {
		return sql.Open(driverName, dsn)
	}
	return conformOpenDB(*config), nil
}

// conformRaw returns the driver's connection of a sql.Conn.Raw callback:
// through dbwrap, its Raw method (which pins the conn to the primary).
func conformRaw(driverConn any) any {
	if w, ok := driverConn.(interface{ Raw() driver.Conn }); ok && conform.Routed() {
		return w.Raw()
	}
	return driverConn
}

func TestZZConformRouting(t *testing.T) { conformRouting(t) }
` + routingCheck,
		env: func(u dbURL) []string { return []string{"PGX_TEST_DATABASE=" + u.URL} },
	},
	{
		name:   "pq",
		module: "github.com/lib/pq",
		copy:   copyTree,
		pkg:    ".",
		rewrites: []rewrite{
			// The copy is a package of this module: its own imports
			// (internal/... included) point into it.
			{file: "*.go", old: `"github.com/lib/pq`, new: `"github.com/reqcanary/canary/dbwrap/conformance/_work/pq`, count: -1},
			{file: "internal/pqtest/pqtest.go", old: `db, err := sql.Open("postgres", DSN(strings.Join(conninfo, " ")))`,
				new: `db, err := Open(DSN(strings.Join(conninfo, " ")))`, count: 1},
			{file: "internal/pqtest/pqtest.go", old: "\nvar envOnce sync.Once\n",
				new: "\nvar envOnce sync.Once\n\n// Open opens the test databases (the dbwrap conformance harness replaces it).\nvar Open = func(dsn string) (*sql.DB, error) { return sql.Open(\"postgres\", dsn) }\n", count: 1},
			{file: "connector_test.go", old: "sql.OpenDB(c)", new: "conformOpenDB(c)", count: 2},
			// The Listener tests (never routed: pq.Listener has its own
			// connection) give a Listener 100 ms to connect and panic,
			// ending the whole run, when it does not: too tight for a busy
			// CI machine running several suites at once.
			{file: "notify_test.go", old: "case <-time.After(100 * time.Millisecond):\n\t\tpanic(\"wantEvent: timeout\")",
				new: "case <-time.After(5 * time.Second):\n\t\tpanic(\"wantEvent: timeout\")", count: 1},
			{file: "error_test.go", old: "sql.OpenDB(c)", new: "conformOpenDB(c)", count: 2},
			{file: "notify_test.go", old: "sql.OpenDB(c)", new: "conformOpenDB(c)", count: 1},
			// Their only use of database/sql was sql.OpenDB.
			{file: "error_test.go", old: "", new: "\nvar _ = sql.OpenDB\n"},
			{file: "notify_test.go", old: "", new: "\nvar _ = sql.OpenDB\n"},
		},
		shim: shimHeader + `package pq

import (
	"database/sql"
	"database/sql/driver"
	"net/netip"
	"testing"

	"github.com/reqcanary/canary/dbwrap/conformance/_work/pq/internal/pqtest"
	"github.com/reqcanary/canary/dbwrap/conformance/conform"
)

func init() {
	if conform.Routed() {
		pqtest.Open = func(dsn string) (*sql.DB, error) {
			c, err := NewConnector(dsn)
			if err != nil || len(c.cfg.Multi) > 0 || !conform.IsPrimary(c.cfg.Host, c.cfg.Port) {
				// sql.Open is lazy: the tests expect the error from Ping.
				// Fake servers and wrong addresses are not routed.
				return sql.Open("postgres", dsn)
			}
			return conformOpen(c)
		}
	}
}

// conformOpen opens c through dbwrap, with a replica connector that has c's
// settings, the replica's host and port, and the barrier's dialer.
func conformOpen(c *Connector) (*sql.DB, error) {
	cfg := c.cfg.Clone()
	cfg.Host, cfg.Port = conform.Replica()
	cfg.Hostaddr, cfg.Multi = netip.Addr{}, nil
	r := &Connector{cfg: cfg, dialer: conform.PQDialer{}}
	return conform.OpenDB("postgres", c, r)
}

// conformOpenDB is sql.OpenDB, through dbwrap when routed and c is a
// *Connector.
func conformOpenDB(c driver.Connector) *sql.DB {
	pc, ok := c.(*Connector)
	if !conform.Routed() || !ok || len(pc.cfg.Multi) > 0 || !conform.IsPrimary(pc.cfg.Host, pc.cfg.Port) {
		return sql.OpenDB(c)
	}
	db, err := conformOpen(pc)
	if err != nil {
		panic(err)
	}
	return db
}

func TestZZConformRouting(t *testing.T) { conformRouting(t) }
` + routingCheck,
		env: func(u dbURL) []string {
			return []string{"PGHOST=" + u.Host, "PGPORT=" + u.Port, "PGDATABASE=" + u.DB, "PGUSER=" + u.User, "PGSSLMODE=disable"}
		},
	},
}

// routingCheck is the last test of every copied suite: through dbwrap, some
// of the suite's reads must have gone to the replica.
const routingCheck = `
func conformRouting(t *testing.T) {
	if !conform.Routed() {
		t.Skip("bare driver")
	}
	n := conform.ReplicaQueries()
	t.Logf("conform: %d queries went to the replica", n)
	if n == 0 {
		t.Fatal("conform: no query went to the replica: the suite did not run through dbwrap")
	}
}
`

// copyTopLevelGo copies the Go files of src's own package.
func copyTopLevelGo(src, dst string) error {
	return copyFiles(src, dst, func(name string) bool { return strings.HasSuffix(name, ".go") })
}

// copyFiles copies the regular files of directory src whose name keep
// accepts into dst.
func copyFiles(src, dst string, keep func(string) bool) error {
	ents, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	for _, e := range ents {
		if !e.Type().IsRegular() || !keep(e.Name()) {
			continue
		}
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// copyTree copies the whole module tree src into dst, without its go.mod
// (the copy is a package tree of this module).
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		target := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(target, 0o755)
		case !d.Type().IsRegular(), rel == "go.mod", rel == "go.sum":
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		mode := os.FileMode(0o644)
		if strings.HasSuffix(rel, ".key") {
			mode = 0o600 // TLS keys: libpq-style permission checks
		}
		return os.WriteFile(target, b, mode)
	})
}

// apply performs the rewrites of s in dir.
func (s suite) apply(dir string) error {
	for _, rw := range s.rewrites {
		var files []string
		if rw.file == "*.go" {
			err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
				if err == nil && !d.IsDir() && strings.HasSuffix(path, ".go") {
					files = append(files, path)
				}
				return err
			})
			if err != nil {
				return err
			}
		} else {
			files = []string{filepath.Join(dir, rw.file)}
		}
		if rw.old == "" { // append
			f, err := os.OpenFile(files[0], os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				return fmt.Errorf("%s: rewrite: %w", s.name, err)
			}
			_, err = f.WriteString(rw.new)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
			continue
		}
		n := 0
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				return fmt.Errorf("%s: rewrite: %w", s.name, err)
			}
			c := strings.Count(string(b), rw.old)
			if c == 0 {
				continue
			}
			n += c
			if err := os.WriteFile(f, []byte(strings.ReplaceAll(string(b), rw.old, rw.new)), 0o644); err != nil {
				return err
			}
		}
		if (rw.count < 0 && n == 0) || (rw.count >= 0 && n != rw.count) {
			return fmt.Errorf("%s: rewrite of %q in %s: found %d times, want %d (did the suite change upstream?)", s.name, rw.old, rw.file, n, rw.count)
		}
	}
	return os.WriteFile(filepath.Join(dir, s.pkg, "zz_conform_test.go"), []byte(s.shim), 0o644)
}
