package dbwrap

import (
	"database/sql/driver"
	"sync/atomic"
	"time"
)

// Target is where a statement goes: the primary or a replica.
type Target uint8

const (
	// TargetPrimary is the primary server.
	TargetPrimary Target = iota
	// TargetReplica is one of the replicas.
	TargetReplica
)

// String returns "primary" or "replica".
func (t Target) String() string {
	if t == TargetReplica {
		return "replica"
	}
	return "primary"
}

// server is one physical database server: the primary (index 0) or a
// replica. Its health fields are written by the poller and by failed reads,
// and read by routing, all atomically.
type server struct {
	idx       int
	name      string // "primary", "replica-0", "canary-replica-0"
	target    Target
	connector driver.Connector

	// Replicas. A replica starts out of service and unpolled: it serves
	// reads only once a poll has found it fit.
	healthy atomic.Bool   // serves reads
	polled  atomic.Bool   // the poller has reached a first verdict (fit or not)
	replay  atomic.Uint64 // last polled replay position (0 unknown)
	lag     atomic.Int64  // last measured lag, ns (-1 unknown)
	streak  atomic.Int64  // start of the current healthy streak, unix ns (0: none)
	probe   replayProbe   // asked by reads that wait for their token (ConsistencyWait)

	// Primary: connection attempts fail fast until this time (unix ns).
	downUntil atomic.Int64
	lastErr   atomic.Pointer[error]
}

func newServer(idx int, name string, t Target, c driver.Connector) *server {
	s := &server{idx: idx, name: name, target: t, connector: c}
	s.lag.Store(-1)
	return s
}

// failFast returns the last connection error while the primary is marked
// down.
func (s *server) failFast(now time.Time) error {
	if until := s.downUntil.Load(); until != 0 && now.UnixNano() < until {
		if p := s.lastErr.Load(); p != nil {
			return *p
		}
	}
	return nil
}
