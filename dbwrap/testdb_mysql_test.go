package dbwrap

import (
	"context"
	"database/sql"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/reqcanary/canary/internal/testenv"
)

// myAnswer is which MariaDB server answered, as it reports itself.
type myAnswer struct {
	ServerID int
	ReadOnly bool
	Port     int
}

const myWhoQuery = "SELECT @@server_id, @@read_only, @@port"

func myWho(t testing.TB, ctx context.Context, q rowQueryer) myAnswer {
	t.Helper()
	var a myAnswer
	if err := q.QueryRowContext(ctx, myWhoQuery).Scan(&a.ServerID, &a.ReadOnly, &a.Port); err != nil {
		t.Fatalf("who: %v", err)
	}
	return a
}

// myEnv is the real MariaDB primary and GTID replica of one test, with a
// database of the test's own.
type myEnv struct {
	db                     string  // the test's database
	primaryDSN, replicaDSN string  // canary user, the test's database
	primary, replica       *sql.DB // bare go-sql-driver pools of canary_admin (all privileges), for checks and setup
	primaryID, replicaID   int
	lock                   *replicaLock
}

// myDSN returns dsn with the given user and database.
func myDSN(t testing.TB, dsn, user, db string) string {
	t.Helper()
	c, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatalf("parse %q: %v", dsn, err)
	}
	c.User, c.DBName = user, db
	c.Timeout = 5 * time.Second
	return c.FormatDSN()
}

func newMyEnv(t *testing.T) *myEnv {
	t.Helper()
	p, r := testenv.MySQLPrimary(t), testenv.MySQLReplica(t)
	e := &myEnv{db: testApp(t), lock: lockReplicaAt(t, testenv.MariaDBReplicaLockFile)}
	var err error
	if e.primary, err = sql.Open("mysql", myDSN(t, p, "canary_admin", "")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.primary.Close() })
	if e.replica, err = sql.Open("mysql", myDSN(t, r, "canary_admin", "")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.replica.Close() })
	ctx := context.Background()
	a, b := myWho(t, ctx, e.primary), myWho(t, ctx, e.replica)
	if a.ReadOnly || !b.ReadOnly || a.ServerID == b.ServerID {
		t.Fatalf("primary %+v and replica %+v: want a writable primary and a read-only replica", a, b)
	}
	e.primaryID, e.replicaID = a.ServerID, b.ServerID
	if _, err := e.primary.ExecContext(ctx, "CREATE DATABASE "+e.db); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.primary.ExecContext(context.Background(), "DROP DATABASE IF EXISTS "+e.db) })
	e.primaryDSN, e.replicaDSN = myDSN(t, p, "canary", e.db), myDSN(t, r, "canary", e.db)
	e.waitReplicated(t)
	return e
}

// config returns a Config for the pair with fast polling.
func (e *myEnv) config() Config {
	return Config{
		DriverName:   "mysql",
		Primary:      e.primaryDSN,
		Replicas:     []string{e.replicaDSN},
		PollInterval: 50 * time.Millisecond,
		RecoverAfter: 300 * time.Millisecond,
	}
}

func (e *myEnv) open(t *testing.T, cfg Config) *sql.DB {
	t.Helper()
	db, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	waitPolled(t, db)
	return db
}

// table creates a table in the test's database and waits until the replica
// has it.
func (e *myEnv) table(t *testing.T, columns string) string {
	t.Helper()
	name := e.db + ".t"
	if _, err := e.primary.ExecContext(context.Background(), "CREATE TABLE "+name+" ("+columns+")"); err != nil {
		t.Fatal(err)
	}
	e.waitReplicated(t)
	return name
}

// waitReplicated waits until the replica has applied everything the primary
// wrote so far.
func (e *myEnv) waitReplicated(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	var pos string
	if err := e.primary.QueryRowContext(ctx, "SELECT @@gtid_binlog_pos").Scan(&pos); err != nil {
		t.Fatal(err)
	}
	var r int
	if err := e.replica.QueryRowContext(ctx, "SELECT MASTER_GTID_WAIT(?, 30)", pos).Scan(&r); err != nil || r != 0 {
		t.Fatalf("the replica did not apply %s in 30 s (MASTER_GTID_WAIT = %d, %v)", pos, r, err)
	}
}

// stopSQLThread stops the replica's SQL thread until the test ends (or
// startSQLThread), holding the replica lock exclusively.
func (e *myEnv) stopSQLThread(t *testing.T) {
	t.Helper()
	e.lock.makeExclusive(t)
	t.Cleanup(func() { e.startSQLThread(t) })
	if _, err := e.replica.ExecContext(context.Background(), "STOP SLAVE SQL_THREAD"); err != nil {
		t.Fatal(err)
	}
}

func (e *myEnv) startSQLThread(t *testing.T) {
	t.Helper()
	if _, err := e.replica.ExecContext(context.Background(), "START SLAVE SQL_THREAD"); err != nil {
		t.Errorf("start the SQL thread: %v", err)
	}
}

// holdReplicaApply makes the replica lag while its threads keep running: a
// global read lock on the replica (FLUSH TABLES WITH READ LOCK) makes the
// SQL thread wait before applying anything. It returns the release function,
// also run at the end of the test.
func (e *myEnv) holdReplicaApply(t *testing.T) (release func()) {
	t.Helper()
	e.lock.makeExclusive(t)
	ctx := context.Background()
	c, err := e.replica.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.ExecContext(ctx, "FLUSH TABLES WITH READ LOCK"); err != nil {
		t.Fatal(err)
	}
	done := false
	release = func() {
		if done {
			return
		}
		done = true
		if _, err := c.ExecContext(context.Background(), "UNLOCK TABLES"); err != nil {
			t.Errorf("unlock tables: %v", err)
		}
		c.Close()
	}
	t.Cleanup(release)
	return release
}

// conns counts the connections to the test's database on db's server.
func (e *myEnv) conns(t *testing.T, db *sql.DB) int {
	t.Helper()
	var n int
	if err := db.QueryRowContext(context.Background(),
		"SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE DB = ?", e.db).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// myIsReadOnly reports whether err is the replica's read-only refusal.
func myIsReadOnly(err error) bool { return err != nil && strings.Contains(err.Error(), "1290") }
