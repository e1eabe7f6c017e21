package dbwrap

import (
	"context"
	"database/sql/driver"
	"errors"
	"sync"
	"time"
)

// Bounds of the replay probe (see replayProbe).
const (
	probeMinGap  = time.Millisecond      // between two probes of a replica that is replaying
	probeMaxGap  = 10 * time.Millisecond // between two probes of a replica that is not
	probeTimeout = time.Second           // of one probe query, at most
	// probeMinTimeout is the least a probe query may take: the timeout is
	// Config.ConsistencyWait within these bounds.
	probeMinTimeout = 10 * time.Millisecond
)

// errNotInRecovery: the server asked for its replay position is no replica.
var errNotInRecovery = errors.New("dbwrap: not in recovery")

// replayPositioner is implemented by a dialect that reads a replica's replay
// position with a cheaper query than ReplicaStatus (Postgres:
// pg_last_wal_replay_lsn() alone).
type replayPositioner interface {
	replayPosition(ctx context.Context, q Querier) (uint64, error)
}

// replayProbe asks one replica for its replay position on behalf of the
// reads that wait for it to replay their token (Config.ConsistencyWait). At
// most one probe query of a replica is in flight at a time, on a connection
// of the probe's own, and every read waiting for that replica shares its
// answer; probes follow each other at least probeMinGap apart, up to
// probeMaxGap while the replica's position does not move (a paused or
// stuck replica costs at most 1/probeMaxGap queries a second, whatever the
// number of waiting reads). No probe runs when no read waits: reads whose
// token the poller's last position already covers, and reads without a
// token, cost nothing.
type replayProbe struct {
	mu       sync.Mutex
	inflight chan struct{} // closed when the current probe ends; nil when none runs
	conn     driver.Conn   // used only by the probe in flight
	last     time.Time     // when the last probe ended
	gap      time.Duration // before the next probe
	closed   bool
}

// await returns a channel closed when a probe of s that started no earlier
// than now has ended: it joins the probe in flight, or runs one itself (the
// caller then runs the query, and the channel is already closed on return).
// It returns nil when the probe is closed.
func (p *replayProbe) await(c *connector, s *server) <-chan struct{} {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	if ch := p.inflight; ch != nil {
		p.mu.Unlock()
		return ch
	}
	ch := make(chan struct{})
	p.inflight = ch
	wait := p.gap - time.Since(p.last)
	p.mu.Unlock()

	if wait > 0 {
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-c.done:
			t.Stop()
		}
	}
	before := s.replay.Load()
	pos, err := p.query(c, s)

	p.mu.Lock()
	switch {
	case err == nil && pos > before:
		s.replay.Store(max(s.replay.Load(), pos))
		p.gap = probeMinGap
	default:
		p.gap = min(max(2*p.gap, probeMinGap), probeMaxGap)
	}
	p.last = time.Now()
	p.inflight = nil
	p.mu.Unlock()
	close(ch)
	return ch
}

// query reads the replica's replay position on the probe's connection.
func (p *replayProbe) query(c *connector, s *server) (uint64, error) {
	ctx, cancel := context.WithTimeout(c.probeCtx, min(max(c.set.wait, probeMinTimeout), probeTimeout))
	defer cancel()
	if p.conn == nil {
		ci, err := s.connector.Connect(ctx)
		if err != nil {
			return 0, err
		}
		p.conn = ci
	}
	d := c.set.dialect
	var pos uint64
	var err error
	if rp, ok := d.(replayPositioner); ok {
		pos, err = rp.replayPosition(ctx, rowQuerier{p.conn})
	} else {
		var st ReplicaStatus
		if st, err = d.ReplicaStatus(ctx, rowQuerier{p.conn}); err == nil && !st.InRecovery {
			return 0, errNotInRecovery
		}
		pos = st.Replay
	}
	if err != nil && (d.IsConnError(err) || ctx.Err() != nil) {
		_ = p.conn.Close()
		p.conn = nil
	}
	return pos, err
}

// close waits for the probe in flight (the connector's probe context is
// cancelled first) and closes the probe's connection.
func (p *replayProbe) close() {
	p.mu.Lock()
	p.closed = true
	ch := p.inflight
	p.mu.Unlock()
	if ch != nil {
		<-ch
	}
	if p.conn != nil {
		_ = p.conn.Close()
		p.conn = nil
	}
}
