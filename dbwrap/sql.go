package dbwrap

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"

	"github.com/reqcanary/canary/tenant"
)

// Open opens a *sql.DB that routes between cfg.Primary and cfg.Replicas,
// whose inner connections are made by the database/sql driver registered as
// cfg.DriverName. Like sql.Open it connects to nothing yet; it starts the
// replica poller when there are replicas, unless cfg.DeferStart (then
// [Start] does). Close the DB to stop it and close every connection.
//
// A replica serves reads only once the poller has found it fit; until its
// first poll verdict, the reads go to the primary ([ReasonNotPolled]).
// [WaitPolled] waits for those verdicts.
//
// With sqlx, name the inner driver so its placeholders are right:
// sqlx.NewDb(db, "pgx").
func Open(cfg Config) (*sql.DB, error) {
	if cfg.DriverName == "" {
		return nil, configError("DriverName", "is required")
	}
	if cfg.Primary == "" {
		return nil, configError("Primary", "is required")
	}
	drv, err := innerDriver(cfg.DriverName)
	if err != nil {
		return nil, err
	}
	var cs Connectors
	if cs.Primary, err = dsnConnector(drv, cfg.Primary); err != nil {
		return nil, fmt.Errorf("dbwrap: Primary: %w", err)
	}
	index := make(map[string]int, len(cfg.Replicas))
	for i, dsn := range cfg.Replicas {
		if dsn == "" {
			return nil, configError("Replicas", "entry %d is empty", i)
		}
		if _, dup := index[dsn]; dup {
			return nil, configError("Replicas", "entry %d repeats an earlier DSN", i)
		}
		index[dsn] = i
		rc, err := dsnConnector(drv, dsn)
		if err != nil {
			return nil, fmt.Errorf("dbwrap: Replicas[%d]: %w", i, err)
		}
		cs.Replicas = append(cs.Replicas, rc)
	}
	var same map[tenant.Cohort][]int
	if len(cfg.CohortReplicas) > 0 {
		cs.CohortReplicas = make(map[tenant.Cohort][]driver.Connector, len(cfg.CohortReplicas))
		same = make(map[tenant.Cohort][]int, len(cfg.CohortReplicas))
		for cohort, dsns := range cfg.CohortReplicas {
			list := make([]driver.Connector, len(dsns))
			idx := make([]int, len(dsns))
			for i, dsn := range dsns {
				idx[i] = -1
				if dsn == "" {
					return nil, configError("CohortReplicas", "cohort %q entry %d is empty", cohort, i)
				}
				if j, ok := index[dsn]; ok {
					idx[i] = j
					continue
				}
				if list[i], err = dsnConnector(drv, dsn); err != nil {
					return nil, fmt.Errorf("dbwrap: CohortReplicas[%q][%d]: %w", cohort, i, err)
				}
			}
			cs.CohortReplicas[cohort] = list
			same[cohort] = idx
		}
	}
	c, err := newConnector(cs, same, cfg)
	if err != nil {
		return nil, err
	}
	return sql.OpenDB(c), nil
}

// OpenDB opens a *sql.DB over the inner connectors cs, configured by cfg
// (whose DSN fields must be empty). It starts the poller like [Open].
// Closing the DB stops the poller and closes the inner connectors that
// implement io.Closer.
func OpenDB(cs Connectors, cfg Config) (*sql.DB, error) {
	c, err := NewConnector(cs, cfg)
	if err != nil {
		return nil, err
	}
	return sql.OpenDB(c), nil
}

// NewConnector returns the wrapper's driver.Connector over the inner
// connectors cs, configured by cfg (whose DSN fields must be empty). The
// returned connector also implements io.Closer: sql.DB.Close calls it; if
// you do not hand it to sql.OpenDB, call Close yourself to stop its poller.
// With cfg.DeferStart, start it with [Start] on the *sql.DB that
// sql.OpenDB makes of it.
func NewConnector(cs Connectors, cfg Config) (driver.Connector, error) {
	switch {
	case cfg.Primary != "":
		return nil, configError("Primary", "must be empty with Connectors (set Connectors.Primary)")
	case len(cfg.Replicas) > 0:
		return nil, configError("Replicas", "must be empty with Connectors (set Connectors.Replicas)")
	case len(cfg.CohortReplicas) > 0:
		return nil, configError("CohortReplicas", "must be empty with Connectors (set Connectors.CohortReplicas)")
	}
	return newConnector(cs, nil, cfg)
}

// Start starts the background work of a database opened with
// Config.DeferStart: the replica poller, which then decides which replicas
// serve reads, and the replica gauges. It returns at once; the first poll
// runs in the background, and each replica serves reads once a poll has
// found it fit, as right after Open without DeferStart (until then, reads go
// to the primary with [ReasonNotPolled]; [WaitPolled] waits for it). Close
// the DB to stop it.
//
// Start is idempotent: once it has succeeded, and for a database opened
// without DeferStart, it does nothing and returns nil, until the DB is
// closed. It returns an error matching [ErrClosed] after the DB was closed,
// one matching [ErrNotDBWrap] for a *sql.DB dbwrap did not open, and an
// error for a nil db; each starts with "dbwrap: Start:". It is safe for concurrent use,
// with Close too.
func Start(db *sql.DB) error {
	if db == nil {
		return errors.New("dbwrap: Start: db is nil")
	}
	d, ok := db.Driver().(*wrapDriver)
	if !ok {
		return fmt.Errorf("dbwrap: Start: %w", ErrNotDBWrap)
	}
	if err := d.c.start(); err != nil {
		return fmt.Errorf("dbwrap: Start: %w", err)
	}
	return nil
}

// WaitPolled waits until the replica poller of db has reached a first
// verdict on every replica, or until ctx is done. Until a replica's first
// verdict, reads that it would serve go to the primary (reason
// [ReasonNotPolled]); a replica found fit serves reads as soon as WaitPolled
// returns nil, one found unfit (or that could not be reached) stays out of
// service. Use it to start serving only once the replicas take reads, or in
// tests that expect them to.
//
// The first verdict usually takes one poll (a connection and a few queries).
// It takes longer for a replica that is behind every write position the
// poller has sampled: until it replays the oldest one (fit, if within
// MaxReplicaLag) or that sample is older than MaxReplicaLag (unfit), at most
// about MaxReplicaLag plus one PollInterval. For a database opened with
// Config.DeferStart it also waits for [Start]. Without replicas it returns
// nil at once.
//
// It returns ctx's error (wrapped) when ctx is done first, an error matching
// [ErrClosed] when db is or gets closed, one matching [ErrNotDBWrap] for a
// *sql.DB dbwrap did not open, and an error for a nil db; each starts with
// "dbwrap: WaitPolled:". It is safe for concurrent use.
func WaitPolled(ctx context.Context, db *sql.DB) error {
	if db == nil {
		return errors.New("dbwrap: WaitPolled: db is nil")
	}
	d, ok := db.Driver().(*wrapDriver)
	if !ok {
		return fmt.Errorf("dbwrap: WaitPolled: %w", ErrNotDBWrap)
	}
	c := d.c
	select {
	case <-c.done:
		return fmt.Errorf("dbwrap: WaitPolled: %w", ErrClosed)
	default:
	}
	select {
	case <-c.polled:
		return nil
	case <-c.done:
		return fmt.Errorf("dbwrap: WaitPolled: %w", ErrClosed)
	case <-ctx.Done():
		return fmt.Errorf("dbwrap: WaitPolled: %w", ctx.Err())
	}
}

// innerDriver returns the driver registered as name.
func innerDriver(name string) (driver.Driver, error) {
	db, err := sql.Open(name, "")
	if err != nil {
		return nil, configError("DriverName", "%v", err)
	}
	defer db.Close()
	return db.Driver(), nil
}

// dsnConnector returns a connector for dsn, as sql.Open would build it.
func dsnConnector(drv driver.Driver, dsn string) (driver.Connector, error) {
	if dc, ok := drv.(driver.DriverContext); ok {
		return dc.OpenConnector(dsn)
	}
	return dsnConn{drv: drv, dsn: dsn}, nil
}

// dsnConn is the connector of a driver without DriverContext, like
// database/sql's own dsnConnector.
type dsnConn struct {
	drv driver.Driver
	dsn string
}

func (d dsnConn) Connect(context.Context) (driver.Conn, error) { return d.drv.Open(d.dsn) }
func (d dsnConn) Driver() driver.Driver                        { return d.drv }
