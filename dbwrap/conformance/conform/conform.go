// Package conform is what the copied test suites of other projects (sqlx,
// pgx's stdlib, lib/pq) call, through a small source rewrite, to open their
// databases: on the bare driver (CONFORM_MODE=bare) or through dbwrap over a
// primary and a streaming replica (CONFORM_MODE=dbwrap).
//
// Staleness is ruled out without changing the shared clusters: every
// connection to the replica is dialled through [DialContext], whose
// connection holds each query message back until the replica has replayed
// everything the primary has flushed (so every commit that returned before
// the query was sent). This is what synchronous_commit = remote_apply would
// give, seen from the reader's side, but it needs no synchronous standby,
// which would make every other test's commits wait for the replica.
//
// It imports no driver, so lib/pq's own package tests can use it.
package conform

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/reqcanary/canary/dbwrap"
)

// Environment variables the harness sets for the suites.
const (
	EnvMode    = "CONFORM_MODE"    // "bare" or "dbwrap"
	EnvPrimary = "CONFORM_PRIMARY" // URL DSN of the primary
	EnvReplica = "CONFORM_REPLICA" // URL DSN of the streaming replica
)

// BarrierTimeout bounds how long a query to the replica waits for the
// replica to replay the primary's flushed WAL.
const BarrierTimeout = 15 * time.Second

// Routed reports whether the suite runs through dbwrap.
func Routed() bool { return os.Getenv(EnvMode) == "dbwrap" }

// Replica returns the replica's host and port, from CONFORM_REPLICA. It
// panics when that is missing or malformed: the harness always sets it.
func Replica() (host string, port uint16) {
	u, err := url.Parse(os.Getenv(EnvReplica))
	if err != nil || u.Hostname() == "" || u.Port() == "" {
		panic(fmt.Sprintf("conform: %s must be a postgres:// URL with host and port, got %q", EnvReplica, os.Getenv(EnvReplica)))
	}
	p, err := strconv.ParseUint(u.Port(), 10, 16)
	if err != nil {
		panic(fmt.Sprintf("conform: %s: port: %v", EnvReplica, err))
	}
	return u.Hostname(), uint16(p)
}

// IsPrimary reports whether host and port are the primary's (from
// CONFORM_PRIMARY). The suites route only their databases on the test
// primary: a DSN that names a fake server, a wrong port or several hosts is
// opened on the bare driver.
func IsPrimary(host string, port uint16) bool {
	u, err := url.Parse(os.Getenv(EnvPrimary))
	return err == nil && u.Hostname() == host && u.Port() == strconv.Itoa(int(port))
}

// OpenDB opens a dbwrap database over primary and one replica. driverName
// picks dbwrap's dialect ("postgres" or "pgx"). It returns once the poller
// has judged the replica, so reads go to it from the first statement.
func OpenDB(driverName string, primary, replica driver.Connector) (*sql.DB, error) {
	// A short RecoverAfter: a replica the poller finds unfit for a moment
	// (a poll that timed out on a busy machine) serves reads again soon,
	// so that reads go to the replica as they would on a quiet machine.
	db, err := dbwrap.OpenDB(dbwrap.Connectors{Primary: primary, Replicas: []driver.Connector{replica}},
		dbwrap.Config{DriverName: driverName, PollInterval: 200 * time.Millisecond, RecoverAfter: 200 * time.Millisecond})
	if err != nil {
		return nil, fmt.Errorf("conform: dbwrap.OpenDB: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := dbwrap.WaitPolled(ctx, db); err != nil {
		db.Close()
		return nil, fmt.Errorf("conform: %w", err)
	}
	// Until the replica serves reads, the suite would silently run on the
	// primary alone. A replica these settings cannot reach at all (the
	// suites' wrong users, databases and parameters) is left to dbwrap.
	probe, err := replica.Connect(ctx)
	if err != nil {
		return db, nil
	}
	probe.Close()
	for {
		r, err := dbwrap.Explain(ctx, db, "select 1")
		if err != nil {
			db.Close()
			return nil, fmt.Errorf("conform: %w", err)
		}
		if r.Target == dbwrap.TargetReplica {
			return db, nil
		}
		select {
		case <-ctx.Done():
			db.Close()
			return nil, fmt.Errorf("conform: the replica does not serve reads (%s): %w", r, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// ReplicaQueries returns how many query messages (simple query, parse or
// bind) the suite has sent to the replica: the reads dbwrap routed there.
func ReplicaQueries() int64 { return bar.queries.Load() }

// DialContext dials a replica connection whose query messages wait for the
// replay barrier. Use it as the replica connector's dialer (pgx DialFunc).
func DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return &barrierConn{Conn: c}, nil
}

// PQDialer is a lib/pq Dialer (and DialerContext) for replica connections.
type PQDialer struct{}

// Dial dials with DialContext.
func (PQDialer) Dial(network, addr string) (net.Conn, error) {
	return DialContext(context.Background(), network, addr)
}

// DialTimeout dials with DialContext, bounded by timeout.
func (PQDialer) DialTimeout(network, addr string, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return DialContext(ctx, network, addr)
}

// DialContext dials with the package's DialContext.
func (PQDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	return DialContext(ctx, network, addr)
}

// barrierConn is a replica connection: before a write that starts a query
// (frontend message 'Q', 'P' or 'B'), it waits until the replica has
// replayed the primary's flushed WAL. Its first write (the startup or cancel
// request, which has no type byte) passes.
type barrierConn struct {
	net.Conn
	started bool
}

func (c *barrierConn) Write(p []byte) (int, error) {
	if c.started && len(p) > 0 && (p[0] == 'Q' || p[0] == 'P' || p[0] == 'B') {
		if err := bar.wait(); err != nil {
			return 0, err
		}
	}
	c.started = true
	return c.Conn.Write(p)
}

var bar barrier

// barrier holds one connection to the primary and one to the replica (the
// positions are cluster-wide) and serialises the waits.
type barrier struct {
	mu      sync.Mutex
	p, r    *pgconn.PgConn
	queries atomic.Int64
}

func (b *barrier) wait() error {
	b.queries.Add(1)
	b.mu.Lock()
	defer b.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), BarrierTimeout)
	defer cancel()
	err := b.waitLocked(ctx)
	if err != nil {
		// Start over with new connections next time.
		for _, c := range []*pgconn.PgConn{b.p, b.r} {
			if c != nil {
				c.Close(context.Background())
			}
		}
		b.p, b.r = nil, nil
		return fmt.Errorf("conform: replay barrier: %w", err)
	}
	return nil
}

func (b *barrier) waitLocked(ctx context.Context) error {
	var err error
	if b.p == nil {
		if b.p, err = pgconn.Connect(ctx, os.Getenv(EnvPrimary)); err != nil {
			return fmt.Errorf("connect primary: %w", err)
		}
	}
	if b.r == nil {
		if b.r, err = pgconn.Connect(ctx, os.Getenv(EnvReplica)); err != nil {
			return fmt.Errorf("connect replica: %w", err)
		}
	}
	res := b.p.ExecParams(ctx, "select pg_current_wal_flush_lsn()::text", nil, nil, nil, nil).Read()
	if res.Err != nil || len(res.Rows) != 1 {
		return fmt.Errorf("primary position: %v", res.Err)
	}
	lsn := res.Rows[0][0]
	pause := 200 * time.Microsecond
	for {
		res := b.r.ExecParams(ctx, "select coalesce(pg_last_wal_replay_lsn() >= $1::pg_lsn, false)",
			[][]byte{lsn}, nil, nil, nil).Read()
		if res.Err != nil || len(res.Rows) != 1 {
			return fmt.Errorf("replica position: %v", res.Err)
		}
		if string(res.Rows[0][0]) == "t" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the replica did not replay %s in %v", lsn, BarrierTimeout)
		case <-time.After(pause):
		}
		pause = min(2*pause, 10*time.Millisecond)
	}
}
