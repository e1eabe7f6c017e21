package dbwrap

import (
	"context"
	"database/sql/driver"
	"errors"
	"io"
	"net"
	"syscall"
	"time"
)

// Dialect is what dbwrap needs to know about one kind of database beyond
// database/sql: how to read the primary's write position right after a write
// (the consistency token), how to read a replica's replay position and lag,
// and how to recognise a write refused by a replica and a broken connection.
//
// Positions are 64-bit and ordered: a replica has replayed a write when its
// replay position is at least the position read after the write.
//
// Implementations must be safe for concurrent use. dbwrap ships [Postgres]
// and [MariaDB].
type Dialect interface {
	// System is the OpenTelemetry db.system value, e.g. "postgresql".
	System() string
	// WritePosition returns the primary's current write position, read on
	// q (the primary connection that just wrote).
	WritePosition(ctx context.Context, q Querier) (uint64, error)
	// ReplicaStatus reads a replica's state on q.
	ReplicaStatus(ctx context.Context, q Querier) (ReplicaStatus, error)
	// IsReadOnlyError reports whether err is a replica refusing a write
	// (PostgreSQL: SQLSTATE 25006); such a read is retried on the primary.
	IsReadOnlyError(err error) bool
	// IsConnError reports whether err means the connection or the server
	// failed (as opposed to an error in the statement); such a read is
	// retried on another server when no rows were returned yet.
	IsConnError(err error) bool
}

// ReplicaStatus is what a Dialect reports about a replica.
type ReplicaStatus struct {
	// InRecovery is false when the server is not (or no longer) a replica,
	// e.g. after a promotion: it then serves no reads.
	InRecovery bool
	// Replay is the position up to which the replica has applied changes.
	Replay uint64
	// Receive is the position up to which it has received changes (0 when
	// unknown).
	Receive uint64
	// LastReplay is the commit time of the last replayed transaction (zero
	// when unknown). It is stale when the primary is idle, so it is used
	// only while the replica has not replayed all it received.
	LastReplay time.Time
	// Now is the replica's clock at the time of the query (zero when
	// unknown; then the local clock is used).
	Now time.Time
}

// Querier runs a statement on one inner connection and returns the values of
// its first row (nil when it returned no row). Values are the inner driver's
// driver.Value types (int64, float64, bool, []byte, string, time.Time, nil).
type Querier interface {
	QueryRow(ctx context.Context, query string) ([]driver.Value, error)
}

// NoDialect, set as Config.Dialect, turns the dialect off even for a driver
// name that has a default one.
var NoDialect Dialect = noDialect{}

type noDialect struct{}

func (noDialect) System() string { return "" }
func (noDialect) WritePosition(context.Context, Querier) (uint64, error) {
	return 0, errors.ErrUnsupported
}
func (noDialect) ReplicaStatus(context.Context, Querier) (ReplicaStatus, error) {
	return ReplicaStatus{}, errors.ErrUnsupported
}
func (noDialect) IsReadOnlyError(error) bool { return false }
func (noDialect) IsConnError(err error) bool { return isConnError(err) }

// dialectFor returns the default dialect of a driver name, or nil.
func dialectFor(driverName string) Dialect {
	switch driverName {
	case "pgx", "pgx/v5", "pgx/v4", "postgres", "cloudsqlpostgres":
		return Postgres()
	case "mysql":
		return MariaDB()
	}
	return nil
}

// isConnError is the driver-agnostic part of connection-error detection:
// driver.ErrBadConn, network errors, refused or reset connections and
// unexpected EOFs.
func isConnError(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, driver.ErrBadConn) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, net.ErrClosed) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne)
}
