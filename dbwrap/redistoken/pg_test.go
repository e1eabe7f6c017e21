package redistoken

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/reqcanary/canary/dbwrap"
	"github.com/reqcanary/canary/internal/testenv"
	"github.com/reqcanary/canary/tenant"
)

// The helpers below are the few of dbwrap's own test helpers (testdb_test.go)
// that the tests of this package need, on the real PostgreSQL primary and
// replica of internal/testenv.

var testSeq atomic.Int64

// pgEnv is the real primary and replica of one test.
type pgEnv struct {
	primaryDSN, replicaDSN string // with the test's application_name
	app                    string
	primary, replica       *sql.DB // bare pgx pools, for checks and setup
}

// newPGEnv returns the test's servers, holding the shared replica lock
// (testenv.ReplicaLockFile) for the test, or the exclusive one when
// pausesReplay: a test that pauses replay must say so here, since one test
// holds one lock only.
func newPGEnv(t *testing.T, pausesReplay bool) *pgEnv {
	t.Helper()
	p, r := testenv.PGPrimary(t), testenv.PGReplica(t)
	if pausesReplay {
		testenv.LockReplicaExclusive(t)
	} else {
		testenv.LockReplicaShared(t)
	}
	e := &pgEnv{app: testApp(t)}
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
	for _, s := range []struct {
		db       *sql.DB
		env      string
		recovery bool
	}{{e.primary, testenv.EnvPGPrimary, false}, {e.replica, testenv.EnvPGReplica, true}} {
		var inRecovery bool
		if err := s.db.QueryRow("select pg_is_in_recovery()").Scan(&inRecovery); err != nil {
			t.Fatalf("%s: %v", s.env, err)
		}
		if inRecovery != s.recovery {
			t.Fatalf("%s: pg_is_in_recovery() = %v, want %v", s.env, inRecovery, s.recovery)
		}
	}
	return e
}

// testApp returns a unique application_name for one test's connections (the
// pid keeps checkouts sharing the servers apart).
func testApp(t testing.TB) string {
	name := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		return '_'
	}, strings.ToLower(t.Name()))
	if len(name) > 32 {
		name = name[:32]
	}
	return fmt.Sprintf("redistoken_%s_%d_%d", name, os.Getpid()%1000000, testSeq.Add(1))
}

func withApp(dsn, app string) string {
	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	return dsn + sep + "application_name=" + app
}

// config returns a dbwrap.Config for the test servers with fast polling.
func (e *pgEnv) config() dbwrap.Config {
	return dbwrap.Config{
		DriverName:   "pgx",
		Primary:      e.primaryDSN,
		Replicas:     []string{e.replicaDSN},
		PollInterval: 50 * time.Millisecond,
		RecoverAfter: 300 * time.Millisecond,
	}
}

// open opens a dbwrap DB closed at the end of the test, once its poller has
// judged the replica (dbwrap.WaitPolled).
func (e *pgEnv) open(t *testing.T, cfg dbwrap.Config) *sql.DB {
	t.Helper()
	db, err := dbwrap.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := dbwrap.WaitPolled(ctx, db); err != nil {
		t.Fatal(err)
	}
	return db
}

// table creates a table unique to the test on the primary, waits until the
// replica has it, and drops it at the end.
func (e *pgEnv) table(t *testing.T, columns string) string {
	t.Helper()
	name := "t_" + e.app
	if _, err := e.primary.Exec("CREATE TABLE " + name + " (" + columns + ")"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.primary.Exec("DROP TABLE IF EXISTS " + name) })
	e.waitReplicated(t)
	return name
}

// pauseReplay pauses replay on the replica until the end of the test (the
// test's newPGEnv must have said pausesReplay).
func (e *pgEnv) pauseReplay(t *testing.T) {
	t.Helper()
	t.Cleanup(func() {
		if _, err := e.replica.Exec("select pg_wal_replay_resume()"); err != nil {
			t.Errorf("resume replay: %v", err)
		}
	})
	if _, err := e.replica.Exec("select pg_wal_replay_pause()"); err != nil {
		t.Fatal(err)
	}
}

// waitReplicated waits until the replica has replayed everything the
// primary wrote so far.
func (e *pgEnv) waitReplicated(t *testing.T) {
	t.Helper()
	var lsn string
	if err := e.primary.QueryRow("select pg_current_wal_insert_lsn()::text").Scan(&lsn); err != nil {
		t.Fatal(err)
	}
	within(t, 30*time.Second, "the replica replays "+lsn, func() bool {
		var ok bool
		err := e.replica.QueryRow("select pg_last_wal_replay_lsn() >= $1::pg_lsn", lsn).Scan(&ok)
		return err == nil && ok
	})
}

// within retries f every 10 ms until it returns true or d passes.
func within(t *testing.T, d time.Duration, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// userKey is the key dbwrap hands its TokenStore for the labels' user
// (length of the tenant, tenant and user hash): the tests look for it in
// Redis, under the store's prefix.
func userKey(l tenant.Labels) string {
	return strconv.Itoa(len(l.Tenant)) + ":" + l.Tenant + ":" + l.UserHash
}
