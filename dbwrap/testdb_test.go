package dbwrap

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/reqcanary/canary/internal/testenv"
)

// Ports of the test clusters, asked of the servers once.
var testSeq atomic.Int64

// server identity as the server itself reports it.
type answer struct {
	InRecovery bool
	Port       int
	PID        int
}

const whoQuery = "select pg_is_in_recovery(), inet_server_port(), pg_backend_pid()"

type rowQueryer interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// who asks the server that runs whoQuery through q which one it is.
func who(t testing.TB, ctx context.Context, q rowQueryer) answer {
	t.Helper()
	var a answer
	if err := q.QueryRowContext(ctx, whoQuery).Scan(&a.InRecovery, &a.Port, &a.PID); err != nil {
		t.Fatalf("who: %v", err)
	}
	return a
}

// testApp returns a unique application_name for one test's connections.
func testApp(t testing.TB) string {
	name := strings.ToLower(t.Name())
	name = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		return '_'
	}, name)
	if len(name) > 36 {
		name = name[:36]
	}
	// The pid keeps names (and the tables named after them) apart between
	// test processes of different checkouts sharing the servers.
	return fmt.Sprintf("dbwrap_%s_%d_%d", name, os.Getpid()%1000000, testSeq.Add(1))
}

func withApp(dsn, app string) string {
	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	return dsn + sep + "application_name=" + app
}

// pgEnv is the real primary and replica of one test.
type pgEnv struct {
	primaryDSN, replicaDSN   string // with the test's application_name
	app                      string
	primaryPort, replicaPort int
	primary, replica         *sql.DB // bare pgx pools, for checks and setup
	lock                     *replicaLock
}

func newPGEnv(t *testing.T) *pgEnv {
	t.Helper()
	p, r := testenv.PGPrimary(t), testenv.PGReplica(t)
	e := &pgEnv{app: testApp(t), lock: lockReplica(t)}
	e.primaryDSN, e.replicaDSN = withApp(p, e.app), withApp(r, e.app)
	var err error
	if e.primary, err = sql.Open("pgx", withApp(p, e.app+"_check")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.primary.Close() })
	if e.replica, err = sql.Open("pgx", withApp(r, e.app+"_check")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.replica.Close() })
	ctx := context.Background()
	a := who(t, ctx, e.primary)
	if a.InRecovery {
		t.Fatalf("CANARY_PG_PRIMARY is in recovery")
	}
	e.primaryPort = a.Port
	b := who(t, ctx, e.replica)
	if !b.InRecovery {
		t.Fatalf("CANARY_PG_REPLICA is not in recovery")
	}
	e.replicaPort = b.Port
	return e
}

// config returns a Config for the test servers with fast polling.
func (e *pgEnv) config() Config {
	return Config{
		DriverName:   "pgx",
		Primary:      e.primaryDSN,
		Replicas:     []string{e.replicaDSN},
		PollInterval: 50 * time.Millisecond,
		RecoverAfter: 300 * time.Millisecond,
	}
}

// open opens a dbwrap DB closed at the end of the test, and waits until
// the poller has judged the replica (see waitPolled).
func (e *pgEnv) open(t *testing.T, cfg Config) *sql.DB {
	t.Helper()
	db, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	waitPolled(t, db)
	return db
}

// waitPolled waits, as an application would with WaitPolled, until db's
// poller has reached a first verdict on every replica: only then does a
// replica found fit serve reads.
func waitPolled(t testing.TB, db *sql.DB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := WaitPolled(ctx, db); err != nil {
		t.Fatal(err)
	}
}

// table creates a table unique to the test on the primary, waits until the
// replica has it, and drops it at the end.
func (e *pgEnv) table(t *testing.T, columns string) string {
	t.Helper()
	ctx := context.Background()
	name := "dbwrap_t_" + strings.TrimPrefix(e.app, "dbwrap_")
	if _, err := e.primary.ExecContext(ctx, "CREATE TABLE "+name+" ("+columns+")"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.primary.ExecContext(context.Background(), "DROP TABLE IF EXISTS "+name) })
	e.waitReplicated(t)
	return name
}

// waitReplicated waits until the replica has replayed everything the
// primary wrote so far.
func (e *pgEnv) waitReplicated(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	var lsn string
	if err := e.primary.QueryRowContext(ctx, "select pg_current_wal_insert_lsn()::text").Scan(&lsn); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		var ok bool
		err := e.replica.QueryRowContext(ctx, "select pg_last_wal_replay_lsn() >= $1::pg_lsn", lsn).Scan(&ok)
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica did not replay %s in 30 s (last error %v)", lsn, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// backends counts the connections of the test's application_name on db's
// server.
func (e *pgEnv) backends(t *testing.T, db *sql.DB) int {
	t.Helper()
	var n int
	if err := db.QueryRowContext(context.Background(),
		"select count(*) from pg_stat_activity where application_name = $1", e.app).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// eventually retries f every 20 ms until it returns true or 30 s pass.
func eventually(t *testing.T, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// closedPort returns a local TCP port that nothing listens on.
func closedPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return port
}
